"""ShuffleNet v1 / v2 recipes.

ShuffleNet v1 (Zhang et al. 2018, Sec. 4): ResNeXt's settings (SGD momentum 0.9, random
resized crops + flip) except weight decay 4e-5 instead of 1e-4, a linear-decay learning
rate from 0.5 to 0, slightly less aggressive scale augmentation (not quantified; default
crop range kept), batch 1024 on 4 GPUs for 3×10^5 iterations (≈ 240 epochs of ImageNet): the ``linear``
schedule from 0.5 at batch 1024 to 0, no warm-up (none is mentioned).
Reported (Table 2, 1×, top-1 = 100 − error): g=1 66.4, g=2 67.3, g=3 67.4, g=4 67.2,
g=8 67.6; ShuffleNet 2× (g=3) 73.7 (Table 5).

The authors' later PyTorch release (megvii-model/ShuffleNet-Series ``ShuffleNetV1/train.py``)
trains the same way (batch 1024, lr 0.5 linear to 0 over 300,000 iterations, momentum 0.9, wd
4e-5) and adds label smoothing 0.1 (``--label-smooth``), ColorJitter(0.4, 0.4, 0.4) and no
decay on biases/BN (``get_parameters``). Its models are re-trainings (its v2 0.5× reaches 38.9 %
error against the paper's 39.7 %), not the paper's runs, and the paper names none of these, so
the recipe leaves them out.

ShuffleNet v2 (Ma et al. 2018, Sec. 5): trained with ShuffleNet v1's settings. Reported
(Table 8, top-1 = 100 − error): 0.5× 60.3, 1× 69.4, 1.5× 72.6, 2× 74.9; torchvision's
weights: 60.55 / 69.36 / 73.00 / 76.23.
"""

RECIPES = {
    "shufflenet_v*": dict(optimizer="sgd", learning_rate=0.5, lr_batch_denom=1024, batch_size=1024,
                          momentum=0.9, weight_decay=4e-5, schedule="linear", warmup_epochs=0.0,
                          num_epochs=240.0, train_crop="random_resized"),
}
