"""Wide ResNet (CIFAR) recipe (Zagoruyko & Komodakis 2016, Sec. 3 "Experimental results").

SGD with Nesterov momentum 0.9 and no dampening, weight decay 5e-4 (the authors' Torch
code decays all parameters), batch 128, lr 0.1 multiplied by 0.2 at epochs 60, 120 and
160 of 200; flip + pad-4 random crops with mean/std normalisation (the authors pad by
reflection: ``scripts/train_cifar.sh`` ``randomcrop_type=reflection``, and the paper fills
missing pixels "with reflections of original image"; the pipeline's ``pad_crop`` pads with
zeros, a deviation kept here); dropout 0.3 between
the convolutions of a block is an option (``model_overrides.proj_drop_rate=0.3``).
Reported CIFAR-10 test error without dropout (Table 5, mean/std normalisation, median of 5
runs): WRN-28-10 4.00 %, WRN-16-8 4.27 %, WRN-40-4 4.53 % (4.17 / 4.81 / 4.97 % are Table 4,
ZCA whitening); the best CIFAR-10 result, WRN-28-10 with dropout 0.3, is 3.89 % (mean/std;
szagoruyko/wide-residual-networks README; fidelity audit 2026-12 §12).
"""

RECIPES = {
    "wrn_*": dict(optimizer="sgd", learning_rate=0.1, lr_batch_denom=128, batch_size=128, momentum=0.9,
                  nesterov=True, weight_decay=5e-4, decay_bn_and_bias=True, num_epochs=200.0,
                  schedule="step", step_epochs=(0.3, 0.6, 0.8), step_factor=0.2, warmup_epochs=0.0,
                  train_crop="pad_crop", pad_crop_padding=4, random_flip=True),
}
