"""DenseNet recipes (Huang et al. 2017, Sec. 4.2 "Training").

All networks: SGD, Nesterov momentum 0.9 without dampening, weight decay 1e-4 (the
authors' Torch code, built on fb.resnet.torch, decays every parameter, BatchNorm
included), lr 0.1.
CIFAR (C10+): batch 64, 300 epochs, lr ÷10 at 50 % and 75 % of training, pad-4 crop +
flip; dropout 0.2 only without augmentation (``model_overrides.proj_drop_rate=0.2``).
Reported C10+ errors (Table 2): DenseNet (L=40, k=12) 5.24 %, DenseNet-BC (L=100, k=12)
4.51 %, (L=250, k=24) 3.62 %, (L=190, k=40) 3.46 %.
ImageNet: batch 256, 90 epochs, lr ÷10 at epochs 30 and 60, the fb.resnet.torch
augmentation (liuzhuang13/DenseNet ``datasets/imagenet.lua``: RandomSizedCrop 224,
ColorJitter brightness/contrast/saturation 0.4, PCA Lighting 0.1, flip). Reported (Table 3) single-crop / 10-crop
top-1 error: DenseNet-121 25.02 / 23.61 %, -169 23.80 / 22.08 %, -201 22.58 / 21.46 %,
-264 22.15 / 20.80 %; top-5 single-crop 7.71 / 6.85 / 6.34 / 6.12 %. DenseNet-161 (k=48)
is not in Table 3: the authors' README gives 22.2 % single-crop top-1 error.
"""

_COMMON = dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
               decay_bn_and_bias=True, schedule="step", step_factor=0.1, warmup_epochs=0.0)

RECIPES = {
    # ImageNet: 90 epochs, ÷10 at 30 and 60.
    "densenet*": dict(_COMMON, batch_size=256, lr_batch_denom=256, num_epochs=90.0,
                      step_epochs=(30.0, 60.0), train_crop="random_resized", color_jitter=0.4,
                      pca_lighting=0.1),
    # CIFAR: 300 epochs at batch 64, ÷10 at 50 % and 75 %.
    "densenet40_k12": dict(_COMMON, batch_size=64, color_jitter=0.0, pca_lighting=0.0, lr_batch_denom=64,
                           num_epochs=300.0,
                           step_epochs=(0.5, 0.75), train_crop="pad_crop", random_flip=True),
    "densenet_bc_*": dict(_COMMON, batch_size=64, color_jitter=0.0, pca_lighting=0.0, lr_batch_denom=64,
                          num_epochs=300.0,
                          step_epochs=(0.5, 0.75), train_crop="pad_crop", random_flip=True),
    # Small data (``small_data_min_epochs``): the two deepest BC nets at the CIFAR floor of 8 epochs on
    # the digits (measured at 458c4dc, 8×8) were still fitting when the rate dropped at epoch 4: L=250, k=24 was at
    # 73.6 % test top-1 then and ended at 87.50 %; L=190, k=40 fit slower still (train loss 2.10 at
    # epoch 2.3, near chance's ln 10 = 2.30; 23.6 % at epoch 4, 34.17 % at the end). L=100, k=12 trains
    # 20 epochs there (its compute budget) and reaches 99.72 %: L=250 takes that length, L=190 half
    # again, so each first stage (half the run) is 10 and 15 epochs. Measured at 386d64b: 98.06 % and
    # 97.50 % (TRAINABILITY.md).
    "densenet_bc_250_k24": dict(small_data_min_epochs=20.0),
    "densenet_bc_190_k40": dict(small_data_min_epochs=30.0),
}
