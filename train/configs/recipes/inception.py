"""Inception-family recipes.

GoogLeNet (Szegedy et al. 2015, Sec. 6): asynchronous SGD, momentum 0.9, learning rate
decreased by 4% every 8 epochs (exponential, 0.96 / 8 epochs), photometric distortions
(Howard 2013), patches of 8–100% of the image area with aspect ratio in [3/4, 4/3], aux
losses weighted 0.3. The paper gives no initial lr, batch or length; they come from the only
public replication, BVLC/caffe ``models/bvlc_googlenet/solver.prototxt``: base_lr 0.01 at
batch 32, ×0.96 every 320k iterations (= 8 epochs at 32), momentum 0.9, weight decay 2e-4,
max_iter 10M (= 250 epochs at 32); the global-batch rate follows the project's linear rule
(0.01 per 32 images, i.e. 0.08 at 256). Reported:
top-5 error 10.07% single model / 1 crop (Table 3), 6.67% for the 7-model ensemble, 144
crops (Table 2). torchvision's BN variant reaches 69.78 / 89.53 top-1/top-5.

BN-Inception (Ioffe & Szegedy 2015, Sec. 4.2.1, "BN-x30" of Sec. 4.2.2): Inception's
lr 0.0015 ×30 = 0.045, decayed 6× faster (0.96^6 per 8 epochs), dropout removed, L2 weight
decay ÷5 (4e-5, taking 2e-4 for Inception's, which neither paper states), LRN removed,
reduced photometric distortions. Batch 32 per asynchronous worker (Sec. 4.2); with no
synchronous reference the per-worker rate is scaled linearly with the global batch
(0.045 per 32 images, as slim's "0.045 × NUM_GPUS" MobileNet flags do for its per-clone
rate). Reported:
74.8% top-1 single crop (Fig. 3); 25.2% / 7.82% top-1/top-5 error single crop, 21.99% /
5.82% multi-crop (Fig. 4).

Inception-v3 (Szegedy et al. 2016, Sec. 8): RMSProp decay 0.9, ε 1.0, lr 0.045 decayed by
0.94 every 2 epochs, gradient clipping at 2.0, label smoothing 0.1 (Sec. 7), aux loss 0.4
(reference code), batch 32 on each of 50 asynchronous replicas, 100 epochs, 299 input; weight
decay 4e-5 is the TF-slim reference value. The asynchronous rate does not carry over to a
synchronous global batch; Google's synchronous reference (tensorflow/tpu
models/experimental/inception/inception_v3.py: ``learning_rate`` 0.165,
``initial_learning_rate = FLAGS.learning_rate * FLAGS.train_batch_size / 256``, RMSProp
momentum 0.9) gives the rate: 0.165 per 256 images. Reported: 21.2% / 5.6% top-1/top-5
error single crop (Table 3), 18.77% / 4.2% with 144 crops (Table 4).

Gradient clipping (Inception-v3, Sec. 8: "gradient clipping [Pascanu et al.] with threshold 2.0
was found to be useful to stabilize the training"): the paper does not say which norm. The
synchronous reference above clips nothing; TF-slim, Google's TensorFlow training library of the
time, clips each variable's gradient by its own norm when asked (tf.contrib.slim
``learning.py``: ``create_train_op(clip_gradient_norm=…)`` → ``clip_gradient_norms`` →
``tf.clip_by_norm`` per gradient). The recipe clips per tensor (``grad_clip_mode``). At
initialisation the gradient norms grow from the classifier to the stem, batch normalisation's
gradient explosion in networks without skip connections (Yang et al., "A Mean Field Theory of
Batch Normalization", ICLR 2019): inception_v3 at 75×75 on a batch of 64 digits, ‖g‖ 5.4 at
``fc``, 10 at ``Mixed_6e``, 88 at ``Mixed_5b``, 286 at ``Conv2d_1a_3x3`` (weights' norm 6.2),
421 over all. Clipped per tensor, the stem's step is bounded and the top's left as it is; one
norm over all gradients scaled every update down by 2/‖g‖ (×1/210 at first) and stalled
training: on the digits (batch 64, lr 0.041) the training loss was still 2.19 after 120 steps
with the global norm (test top-1 20.6 %), against 1.12 after 60 steps per tensor (test top-1
75.3 %; unclipped 77.8 %); the full default run (330 steps) ended at 63.06 % with the global
norm (TRAINABILITY.md at dc147b0) and at 98.33 % per tensor (at 8dd412d).
Inception-v4 (Szegedy et al. 2017 Sec. 4) restates v3's optimiser
and schedule and says nothing of clipping; its deeper stack without skip connections explodes
more (75×75, 64 digits: ‖g‖ 3.6 at ``last_linear``, 6,161 at the first conv whose weights'
norm is 6.2; 7,245 over all), and unclipped it did not learn (60 steps: loss 2.89, test top-1
18.6 %; the full run 56.67 % at 03fe8e7); with v3's clipping per tensor, loss 0.96 and 51.4 %
after 60 steps. Inception-ResNet (residual) learns unclipped (98.3 / 99.2 %) and keeps none.

Inception-v4 / Inception-ResNet (Szegedy et al. 2017, Sec. 4): RMSProp decay 0.9, ε 1.0,
lr 0.045 decayed by 0.94 every 2 epochs, 20 asynchronous replicas (no batch size or length
given). No synchronous reference exists for these networks; they take Inception-v3's
synchronous rule (0.165 per 256, tpu ``inception_v3.py``), the same optimiser and schedule
shape at the same resolution; the length is the dataset default. Reported single crop top-1/top-5 error (Table 2,
measured on the non-blacklisted subset of the validation set, about 0.3 % / 0.15 % more
optimistic than all 50,000 images, Sec. 5):
Inception-v4 20.0 / 5.0, Inception-ResNet-v1 21.3 / 5.5, Inception-ResNet-v2 19.9 / 4.9;
144 crops (Table 4): 17.7 / 3.8, 18.8 / 4.3, 17.8 / 3.7.

EMA: Inception-v3 (Sec. 8) and Inception-v4 / -ResNet (Sec. 4) evaluate "a running average of
the parameters computed over time"; neither paper gives the decay. 0.995 is that of Google's
Inception-v3 TPU reference (tensorflow/tpu models/experimental/inception/inception_v3.py,
``MOVING_AVERAGE_DECAY = 0.995``, ``--moving_average`` on by default), also used for v4 /
Inception-ResNet, whose authors published no trainer.
"""

# RMSProp momentum 0.9: RMSPROP_MOMENTUM of research/inception/inception_train.py and the tpu
# inception_v3.py (the papers do not state it). lr: 0.165 per 256 (see the docstring).
_RMSPROP = dict(optimizer="rmsprop", learning_rate=0.165, lr_batch_denom=256, momentum=0.9,
                rmsprop_decay=0.9, rmsprop_eps=1.0,
                schedule="exponential", decay_rate=0.94, decay_epochs=2.0,
                train_crop="random_resized", image_size=299, ema_decay=0.995, ema_warmup="tf")

RECIPES = {
    "googlenet*": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=32, momentum=0.9,
                       schedule="exponential", decay_rate=0.96, decay_epochs=8.0, weight_decay=2e-4,
                       num_epochs=250.0,
                       train_crop="random_resized", crop_area_range=(0.08, 1.0),
                       aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0), color_jitter=0.4,
                       aux_loss_weight=0.3),
    "bn_inception": dict(optimizer="sgd", learning_rate=0.045, lr_batch_denom=32, momentum=0.9,
                         schedule="exponential", decay_rate=0.96 ** 6, decay_epochs=8.0,
                         weight_decay=4e-5, train_crop="random_resized", color_jitter=0.1),
    # Clipping per tensor: see the docstring ("Gradient clipping").
    "inception_v3": dict(_RMSPROP, label_smoothing=0.1, grad_clip_norm=2.0, grad_clip_mode="per_tensor",
                         aux_loss_weight=0.4, weight_decay=4e-5, num_epochs=100.0),
    # Inception-v4 (Sec. 4 states v3's optimiser, not its clipping): v3's clipping per tensor, for
    # the stronger gradient explosion of the deeper network (docstring, "Gradient clipping").
    "inception_v4": dict(_RMSPROP, weight_decay=4e-5, grad_clip_norm=2.0, grad_clip_mode="per_tensor"),
    "inception_resnet_v*": dict(_RMSPROP, weight_decay=4e-5),
}
