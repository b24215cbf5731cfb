"""Recipes of the classic families: LeNet-5, AlexNet, ZFNet, VGG, Network in Network.

LeNet-5 (LeCun et al. 1998, Sec. II.C/III.C and Appendix C): 20 passes over MNIST, one
sample at a time, stochastic diagonal Levenberg-Marquardt with global rate η = 5e-4 for 2
passes, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4, 1e-5 after (μ = 0.02); no weight decay, no
distortions for the 0.95 % test error (0.8 % with distortions). Here: SDLM
(``optimizer="sdlm"``, ``train/optim.py``: step η/(μ + h_kk)·g with μ = 0.02, h_kk the
diagonal Gauss-Newton curvature of the cross-entropy, a running mean over ≈ 500 samples
instead of the paper's re-estimate on 500 samples before each pass) with the paper's η and
epochs; the step factor 0.5 at epochs 2/5/8/12 approximates the paper's 0.4/0.5/0.5/0.2
steps. Plain SGD at these global rates (5e-4 per sample) stays at chance: SDLM's
per-parameter steps reach η/μ = 0.025. Digits are never flipped. The rates are per sample
(batch 1): a larger batch scales them linearly (``lr_batch_denom=1``).

AlexNet (Krizhevsky et al. 2012, Sec. 3.4, 4.1, 5): SGD batch 128, momentum 0.9, weight
decay 5e-4, lr 0.01 divided by 10 when the validation error stopped improving (3 times,
≈ 90 epochs; here ``schedule="plateau"``, 3 drops, on the training loss: train/optim.py
``plateau_transform``). Fixed drops at 30/60/80 of 90 epochs (torchvision's reference) cut
the rate while a short run still improves: on the digits (15 epochs) alexnet ended at 93.61 %
with them, 99.44 % with the drops at 80/90/95 % of the run. Images resized to 256 and random 224 crops + flips,
PCA lighting σ = 0.1, test on 10 crops (corners + centre, flipped). Reported (1 CNN,
Table 2): top-1 error 40.7 %, top-5 18.2 %.

ZFNet (Zeiler & Fergus 2014, Sec. 3): SGD batch 128, lr 0.01, momentum 0.9, lr annealed
manually on plateaus (``schedule="plateau"``; the number of drops is not stated: AlexNet's 3),
dropout 0.5 on FC6/7, 70 epochs, shorter side 256 → 224 crops +
flips (10 sub-crops). Weight decay is not stated; AlexNet's 5e-4 is used. Reported
(1 convnet as per Fig. 3, Table 2): top-1 error 38.4 %, top-5 16.5 %. Filter renormalisation
(Sec. 3): "we renormalize each filter in the convolutional layers whose RMS value exceeds a
fixed radius of 10^-1 to this fixed radius. This is crucial, especially in the first layer of
the model, where the input images are roughly in the [-128,128] range" (``filter_rms_radius``,
train/optim.py ``renormalize_filters``). The paper's inputs are mean-subtracted 0–255 pixels;
ours are divided by the per-channel std as well (0–1 scale, ImageNet std ≈ 0.226), i.e.
255 × 0.226 ≈ 57.6 times smaller, so conv1 filters 57.6 times larger compute the paper's
function: conv1's radius is 0.1 × 57.6, the deeper convs' 0.1 (their inputs are then the
paper's). The FC layers are not renormalised ("in the convolutional layers").

VGG (Simonyan & Zisserman 2015, Sec. 3.1/3.2): SGD batch 256, momentum 0.9, weight decay
5e-4, dropout 0.5 on FC6/7, lr 0.01 divided by 10 when validation accuracy stopped
improving (3 times), 370K iterations = 74 epochs (here ``schedule="plateau"``, 3 drops, as
AlexNet's; fixed drops at 50 %/75 %/90 % left vgg11 at 71.39 % on the digits, at 80/90/95 %
89.17 %), scale
jittering S ∈ [256, 512] with 224 crops + flips, evaluation at Q ∈ {256, 384, 512} with
dense (fully-convolutional) evaluation. Reported (Table 3, single scale, D / E):
top-1 error 25.6 % / 25.5 %, top-5 8.1 % / 8.0 %; multi-scale (Table 4) 24.8 % / 24.8 %.
Configurations A, A-LRN and B (``vgg11*``, ``vgg13*``) were trained at a fixed S = 256 only
(Table 3: their single row each; the registered top-1s are those rows), so their recipe keeps
S = 256, and their multi-scale evaluation uses Q = {S − 32, S, S + 32} = {224, 256, 288}
(Sec. 4.2: "the models trained with fixed S were evaluated over three test image sizes, close
to the training one"); C/D/E use S ∈ [256, 512] and Q = {256, 384, 512}.

Network in Network (Lin et al. 2014, Sec. 4.1): batch 128, learning rate lowered by 10
when training accuracy stops improving, twice (final rate 1 % of the initial); initial
weights, learning rate and weight decay "following Krizhevsky", not given numerically.
``nin_cifar10`` keeps the paper's schedule (``schedule="plateau"``, 2 drops, watching the
training loss where the paper watched training accuracy) and takes what the paper leaves
out from the first author's released CIFAR-10 model (Caffe Model Zoo gist
mavenlin/e56253735ef32c3c296d, 89.6 % = Table 1's 10.41 % error; read in the copy
natanielruiz/net-archive ``nin-cifar10/solver.prototxt`` and ``train_val.prototxt``): SGD
momentum 0.9, lr 0.1 at batch 128, weight decay 1e-4 on weights only (biases: decay 0),
the classifier cccp6 at lr ×0.1 (``blobs_lr: 0.1``), 120,000 iterations of 128 = 307.2
epochs of the 50,000 images (that solver drops once, at 100,000 iterations). Its other
Caffe setting, biases at lr ×2, is not reproduced.
CIFAR-10 without augmentation (GCN + ZCA in the paper): 10.41 % test error (Table 1).
The paper reports no ImageNet result; ``nin`` is the authors' released ImageNet model
(gist mavenlin/d802a5849de39225bcc6, 59.36 % top-1; ``nin_imagenet/solver.prototxt`` and
``train_val.prototxt`` in the same copy) with its solver: SGD momentum 0.9, lr 0.01 at
batch 64, weight decay 5e-4 on weights only, ×0.1 every 200,000 iterations, 450,000
iterations (= 22.48 epochs of 1,281,167 images; drops at 44 % and 89 % of the run), random
224 crops + mirror.
"""

from flaxnets.registry import IMAGENET_STD

# VGG Sec. 3.1 warm start: configuration A is trained from random weights; B–E then start
# with "the first four convolutional layers and the last three fully-connected layers" of
# net A, the intermediate layers random, no lower learning rate for the copied layers. The
# shape-consistent reading (A's conv1 → conv1_1, conv2 → conv2_1, conv3_1 → conv3_1,
# conv3_2 → conv3_2, fc6–fc8 → fc6–fc8) in the torchvision module names of flaxnets.models.vgg
# (features.N counts every conv/ReLU/pool): A = vgg11 has conv1 features.0, conv2 features.3,
# conv3_1/3_2 features.6/8; B–E (vgg13, vgg16_c, vgg16, vgg19) have conv1_1 features.0,
# conv2_1 features.5, conv3_1/3_2 features.10/12; classifier.0/3/6 are fc6/fc7/fc8 in all.
# "*=" drops every other tensor of A. Used by train/configs/vgg_from_a.py.
VGG_FROM_A = ("features.0=features.0", "features.3=features.5", "features.6=features.10",
              "features.8=features.12", "classifier.0=classifier.0", "classifier.3=classifier.3",
              "classifier.6=classifier.6", "*=")

# ZFNet Sec. 3 radius 0.1 in the paper's input units (0–255 pixels minus the mean) → conv1's
# radius for inputs also divided by the std (the model's ImageNet std, mean over channels).
ZFNET_CONV1_RADIUS = round(0.1 * 255 * sum(IMAGENET_STD) / len(IMAGENET_STD), 2)

# The plain VGGs (Table 1's A-E, no BatchNorm) on a small dataset: the fewest epochs the compute
# budget may leave (train/configs budget_epochs; the trainer's ImageNet floor is 15). Sec. 3.1
# warns that a bad initialisation stalls deep plain nets (why B-E start from a trained A there).
# Measured on the digits at 15 epochs (TRAINABILITY.md rows and their runs' evaluations): vgg16
# stayed at chance for 4 epochs (test top-1 15.6, 18.1, 11.1, 16.1 %) and ended in its first
# phase, the plateau schedule never having dropped the rate (training accuracy 92 %, test 93.3,
# 90.8, 95.6 % over its last epochs, final 92.22 %); vgg11_lrn ended at 93.89 % the same way
# (training accuracy 91 %), vgg11 at 96.67 % and 92.78 % in two runs. At 25 (the same run, 10
# more epochs) vgg16's plateau schedule dropped the rate after epoch 19 or 20 and ended at 98.06 %
# (test 97.8-98.3 % over its last 6 epochs; 2,361 s at 242e831); vgg11_lrn ended at 98.33 % with
# its rate never dropped (test 93.9-98.6 % over its last 6 epochs). Other rows: TRAINABILITY.md.
VGG_PLAIN_MIN_EPOCHS = 25.0

RECIPES = {
    "lenet5": dict(optimizer="sdlm", learning_rate=5e-4, lr_batch_denom=1, batch_size=1, momentum=0.0,
                   weight_decay=0.0, num_epochs=20.0, schedule="step",
                   step_epochs=(2.0, 5.0, 8.0, 12.0), step_factor=0.5, image_size=32,
                   train_crop="center", random_flip=False, eval_modes=("center",)),
    "alexnet*": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=128, batch_size=128,
                     momentum=0.9, weight_decay=5e-4, decay_bn_and_bias=False, num_epochs=90.0,
                     schedule="plateau", plateau_drops=3, step_factor=0.1,
                     train_crop="scale_jitter", scale_jitter_range=(256, 256), random_flip=True,
                     pca_lighting=0.1, eval_modes=("center", "10crop")),
    "zfnet": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=128, batch_size=128,
                  momentum=0.9, weight_decay=5e-4, num_epochs=70.0, schedule="plateau",
                  plateau_drops=3, step_factor=0.1, train_crop="scale_jitter",
                  scale_jitter_range=(256, 256), random_flip=True, eval_modes=("center", "10crop"),
                  filter_rms_radius=(f"conv1={ZFNET_CONV1_RADIUS}", "conv*=0.1")),
    "vgg*": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=256, batch_size=256,
                 momentum=0.9, weight_decay=5e-4, num_epochs=74.0, schedule="plateau",
                 plateau_drops=3, step_factor=0.1, train_crop="scale_jitter",
                 scale_jitter_range=(256, 512), random_flip=True, eval_modes=("center", "multiscale", "dense")),
    # Q follows the training scales (Sec. 4.2; train.loop.multiscale_sizes): {256, 384, 512} for
    # S ∈ [256, 512]; A, A-LRN, B: fixed S = 256 (Table 3) → {224, 256, 288}.
    "vgg11*": dict(scale_jitter_range=(256, 256)),
    "vgg13*": dict(scale_jitter_range=(256, 256)),
    # The paper's configurations (no BatchNorm) train at least VGG_PLAIN_MIN_EPOCHS on small data.
    **{name: dict(small_data_min_epochs=VGG_PLAIN_MIN_EPOCHS)
       for name in ("vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19")},
    "nin_cifar10": dict(optimizer="sgd", learning_rate=0.1, lr_batch_denom=128, batch_size=128,
                        momentum=0.9, weight_decay=1e-4, head_lr_mult=0.1,
                        num_epochs=120_000 * 128 / 50_000, schedule="plateau", plateau_drops=2,
                        step_factor=0.1, train_crop="center", random_flip=False,
                        eval_modes=("center",)),
    "nin": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=64, batch_size=64,
                momentum=0.9, weight_decay=5e-4, num_epochs=450_000 * 64 / 1_281_167, schedule="step",
                step_epochs=(200_000 / 450_000, 400_000 / 450_000), step_factor=0.1,
                train_crop="scale_jitter", scale_jitter_range=(256, 256), random_flip=True,
                eval_modes=("center",)),
}
