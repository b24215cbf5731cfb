"""SqueezeNet recipes.

Iandola et al. 2016 defer the training protocol to the authors' Caffe release
(github.com/forresti/SqueezeNet); none of the numbers below is in the paper itself. The
first release of ``SqueezeNet_v1.0/solver.prototxt`` and ``train_val.prototxt`` (Feb 2016,
the configuration the released v1.0 model was trained with): SGD momentum 0.9, global
batch 1024 (32 × ``iter_size`` 32), base lr 0.08, Caffe "poly" decay with power 0.5 to zero
over 85,000 iterations (≈ 68 epochs), weight decay 2e-4 on every weight and bias, random
227 crops of 256-resized images, no mirroring, dropout 0.5 after fire9. That is what the
recipe uses (``schedule="poly"``, ``poly_power=0.5``); crops are 224 (the registered input
size). A later commit (Mar 2016) changed the solver to lr 0.04, power 1.0 (linear decay),
batch 512 (32 × ``iter_size`` 16), 170,000 iterations (the same ≈ 68 epochs), saying it
converges more reliably with accuracy ≥ the old one, while the provided v1.0 model came
from the old configuration. SqueezeNet v1.1 (Apr 2016) was only ever released with that
later solver, so its recipe uses it.
Reported top-1 / top-5 (Table 2/3): SqueezeNet 57.5 / 80.3; with simple bypass 60.4 / 82.5;
with complex bypass 58.8 / 82.0. v1.1 has no paper number (torchvision: 58.18 / 80.62).
"""

# Off ImageNet, on small images (digits, CIFAR), the trainer's smallest size for an ImageNet
# network, 32×32, leaves SqueezeNet's classifier conv10 a 1×1 map (v1.1: conv1 stride 2 → 15,
# three ceil-mode 3×3/2 max pools → 7, 3, 1), and its ReLU before the global average pool
# becomes a clipped logit: a class whose value is ≤ 0 on an image gets no gradient from it.
# At 48×48 (23 → 11 → 5 → 2) conv10 sees 2×2 positions, the pool averages four clipped values.
# Measured on the digits at fbf7b7c (`python -m train.main --arch=squeezenet1_1`, 30 epochs):
# 32×32 91.94 % (94.44 % with the classifier at ×1, 92.22 % at ×0.1: the rate is not the
# cause), 48×48 96.67 %, 64×64 95.83 % (23 epochs under the compute budget). SqueezeNet v1.0
# (also 1×1 at 32×32: 13 → 6 → 3 → 1) learns there: 98.89 % (simple bypass 99.72 %, complex
# 99.44 %, 30 epochs); at 48×48 the compute budget cuts its run to 15 epochs (squeezenet1_0
# 97.78 %, simple bypass 77.22 %, complex 99.44 % at 1b4a659), so v1.1 alone trains at 48×48.
SMALL_DATA_SIDE = 48

RECIPES = {
    "squeezenet*": dict(optimizer="sgd", learning_rate=0.08, lr_batch_denom=1024, batch_size=1024,
                        momentum=0.9, weight_decay=2e-4, decay_bn_and_bias=True, num_epochs=68.0,
                        schedule="poly", poly_power=0.5, train_crop="scale_jitter",
                        scale_jitter_range=(256, 256), random_flip=False),
    # The v1.1 release's solver (also the v1.0 solver after Mar 2016): poly power 1 = linear.
    "squeezenet1_1*": dict(learning_rate=0.04, lr_batch_denom=512, batch_size=512, poly_power=1.0,
                           small_data_image_size=SMALL_DATA_SIDE),
}
