"""MobileNet v1 / v2 recipes.

MobileNet v1 (Howard et al. 2017, Sec. 4): RMSProp with asynchronous gradient descent as
for Inception-v3 (decay 0.9, ε = 1.0), no auxiliary heads, no label smoothing, less
augmentation (smaller crops are limited; no value given, so the default crop range is
kept), and "very little or no weight decay on the depthwise filters". The learning rate is
not given in the v1 paper; the v2 paper (Sec. 6.1) says it followed the v1 setup: lr 0.045
decayed ×0.98 per epoch, weight decay 4e-5, batch 96 per asynchronous worker. The
depthwise filters get no weight decay (``depthwise_weight_decay=0``: kernels of shape
(k, k, 1, C)); the v1 paper allows "very little or no", we take "no", as TF-slim's
``mobilenet_v1_arg_scope`` does (research/slim/nets/mobilenet_v1.py: ``weight_decay=0.00004``,
``regularize_depthwise=False``). RMSProp momentum is
not stated for v1; "similar to Inception V3" points to Google's Inception references, which
use RMSPROP_MOMENTUM = 0.9 (research/inception/inception_train.py, tpu inception_v3.py), as
does the v2 paper: 0.9.
Reported top-1 (Table 6/7): 1.0 MobileNet-224 70.6, 0.75 68.4, 0.5 63.7, 0.25 50.6;
ρ: 192 → 69.1, 160 → 67.2, 128 → 64.4 (α = 1).

MobileNet v2 (Sandler et al. 2018, Sec. 6.1): RMSProp decay 0.9 and momentum 0.9, BN after
every layer, weight decay 4e-5, lr 0.045 × 0.98 per epoch, 16 asynchronous workers with
batch 96 each (lr given per batch of 96 here). EMA of the weights, decay 0.9999: the official
training flags (tensorflow/models research/slim/nets/mobilenet/README.md,
``--moving_average_decay=0.9999``); slim's train_image_classifier.py averages
``slim.get_model_variables()`` (BN moving statistics included) with
``tf.train.ExponentialMovingAverage(decay, global_step)``, i.e. the ``"tf"`` warm-up.
Rule for the rest: the paper where it states a value, the official flags (the README's "set of
parameters that achieves 72.0% for full size MobileNetV2") where it is silent. The paper is
silent on label smoothing and the flags set ``--label_smoothing=0.1``: 0.1 here. The paper
states the decay interval, "0.98 per epoch", which is kept; the flags decay every 2.5 epochs
(``--num_epochs_per_decay = 2.5 / NUM_GPUS``; slim's train_image_classifier.py counts
``decay_steps = num_samples_per_epoch * num_epochs_per_decay / batch_size`` in per-clone
batches of 96, so ``learning_rate_decay_factor=0.98`` applies every 2.5 epochs), so the
reference run decays slower than the paper's text; ``--config.decay_epochs=2.5`` reproduces it.
Reported top-1 (Table 4): 72.0 (1.0),
74.7 (1.4); torchvision's ``mobilenet_v2`` weights: 71.88 / 90.29.
"""

_RMSPROP = dict(optimizer="rmsprop", rmsprop_decay=0.9, rmsprop_eps=1.0, learning_rate=0.045,
                lr_batch_denom=96, batch_size=96, schedule="exponential", decay_rate=0.98,
                decay_epochs=1.0, weight_decay=4e-5, label_smoothing=0.0)

RECIPES = {
    "mobilenetv1_*": dict(_RMSPROP, momentum=0.9, depthwise_weight_decay=0.0),
    "mobilenet_v2*": dict(_RMSPROP, momentum=0.9, ema_decay=0.9999, ema_warmup="tf", label_smoothing=0.1),
}
