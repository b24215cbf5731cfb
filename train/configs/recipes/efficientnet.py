"""EfficientNet recipes (Tan & Le 2019, Sec. 5.2, and the reference TPU implementation).

Sec. 5.2: RMSProp with decay 0.9 and momentum 0.9, batch-norm momentum 0.99, weight decay
1e-5, initial learning rate 0.256 decayed by 0.97 every 2.4 epochs, swish activations,
fixed AutoAugment, stochastic depth with survival probability 0.8 (drop-connect 0.2,
growing linearly with the block index), dropout 0.2 (B0) … 0.5 (B7; the models' default
``drop_rate``). The rate 0.256 belongs to batch 4096 (reference code: 0.016 per 256
images, linear scaling), with 5 warm-up epochs, 350 epochs, RMSProp ε = 1e-3 and label
smoothing 0.1 from the reference code. BatchNorm: the reference builds every variant with
``batch_norm_momentum=0.99, batch_norm_epsilon=1e-3`` (tensorflow/tpu
models/official/efficientnet/efficientnet_builder.py, ``efficientnet()``): momentum 0.99 (TF) is
PyTorch-style 0.01 here, and ε 1e-3 is set for training from scratch. The registered B0–B4
keep their torchvision twins' ε 1e-5 (B5–B7 already use 1e-3), so twin weights load unchanged;
the recipe's ``model_overrides`` apply to runs of this recipe only.
AutoAugment runs after the random-resized crop + flip with the ImageNet policy of the
AutoAugment paper's appendix (Table 9); the reference TPU code uses its own ImageNet policy
("v0", 25 other sub-policies) and its own magnitude mapping, so this is the paper's
AutoAugment, not necessarily the exact one EfficientNet was trained with. EMA of the weights
and BatchNorm statistics, decay 0.9999 (tensorflow/tpu models/official/efficientnet/main.py:
``moving_average_decay`` 0.9999, ``tf.train.ExponentialMovingAverage(decay,
num_updates=global_step)`` over ``utils.get_ema_vars()`` = trainable variables plus BN moving
mean/variance); ``num_updates`` is the ``"tf"`` warm-up ``min(d, (1+t)/(10+t))``.
Off ImageNet (``adapted_model_overrides``, applied by ``adapt_recipe`` only): zero-γ, the
projection BatchNorm's scale of every residual MBConv block starts at 0 (Goyal et al. 2017,
Sec. 5.1, the ResNet recipe's init here). The references start it at 1 (TF TPU
efficientnet_model.py, torchvision, timm), and so does every ImageNet run of this recipe. On
the digits (572 steps instead of ~109k, the 5-epoch warm-up compressed to 57 steps)
efficientnet_b1 did not learn with γ = 1: ``python -m train.main --arch=efficientnet_b1``
at 21a954d ended at 32.2 % (train accuracy ≈ 10 % for its first 250 steps, under
AutoAugment's ImageNet policy or the SVHN one, and in a diagnostic loop also under plain SGD,
at ¼ of the rate or with a 150-step warm-up: the training loss rose above chance's within ~60
steps); with zero-γ, each block starting as the identity, 98.33 % (eval 89 % by epoch 6).
Reported (Table 2) top-1 / top-5: B0 77.1 / 93.3, B1 79.1 / 94.4, B2 80.1 / 94.9,
B3 81.6 / 95.7, B4 82.9 / 96.4, B5 83.6 / 96.7, B6 84.0 / 96.8, B7 84.3 / 97.0.
"""

RECIPES = {
    "efficientnet_b*": dict(
        optimizer="rmsprop", rmsprop_decay=0.9, momentum=0.9, rmsprop_eps=1e-3,
        learning_rate=0.256, lr_batch_denom=4096, schedule="exponential", decay_rate=0.97,
        decay_epochs=2.4, warmup_epochs=5.0, num_epochs=350.0, weight_decay=1e-5,
        label_smoothing=0.1, train_crop="random_resized", auto_augment="autoaugment", eval_crop_ratio=0.875,
        ema_decay=0.9999, ema_warmup="tf",
        model_overrides=dict(drop_path_rate=0.2, bn_momentum=0.01, bn_eps=1e-3),
        adapted_model_overrides=dict(zero_init_last=True),
    ),
}
