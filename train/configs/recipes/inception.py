"""Inception-family recipes.

GoogLeNet (Szegedy et al. 2015, Sec. 6): asynchronous SGD, momentum 0.9, learning rate
decreased by 4% every 8 epochs (exponential, 0.96 / 8 epochs), photometric distortions
(Howard 2013), patches of 8–100% of the image area with aspect ratio in [3/4, 4/3], aux
losses weighted 0.3. The paper gives no initial lr or batch; 0.01 at 256 is ours. Reported:
top-5 error 10.07% single model / 1 crop (Table 3), 6.67% for the 7-model ensemble, 144
crops (Table 2). torchvision's BN variant reaches 69.78 / 89.53 top-1/top-5.

BN-Inception (Ioffe & Szegedy 2015, Sec. 4.2.1, "BN-x30" of Sec. 4.2.2): Inception's
lr 0.0015 ×30 = 0.045, decayed 6× faster (0.96^6 per 8 epochs), dropout removed, L2 weight
decay ÷5 (4e-5, taking 2e-4 for Inception's, which neither paper states), LRN removed,
reduced photometric distortions. Reported:
74.8% top-1 single crop (Fig. 3); 25.2% / 7.82% top-1/top-5 error single crop, 21.99% /
5.82% multi-crop (Fig. 4).

Inception-v3 (Szegedy et al. 2016, Sec. 8): RMSProp decay 0.9, ε 1.0, lr 0.045 decayed by
0.94 every 2 epochs, gradient clipping at 2.0, label smoothing 0.1 (Sec. 7), aux loss 0.4
(reference code), batch 32 on each of 50 asynchronous replicas, 299 input (we state the lr at
batch 1600 and scale linearly; weight decay 4e-5 is the TF-slim reference value). Reported: 21.2% / 5.6% top-1/top-5
error single crop (Table 3), 18.77% / 4.2% with 144 crops (Table 4).

Inception-v4 / Inception-ResNet (Szegedy et al. 2017, Sec. 4): RMSProp decay 0.9, ε 1.0,
lr 0.045 decayed by 0.94 every 2 epochs. Reported single crop top-1/top-5 error (Table 2):
Inception-v4 20.0 / 5.0, Inception-ResNet-v1 21.3 / 5.5, Inception-ResNet-v2 19.9 / 4.9;
144 crops (Table 4): 17.7 / 3.8, 18.8 / 4.3, 17.8 / 3.7.
"""

_RMSPROP = dict(optimizer="rmsprop", learning_rate=0.045, rmsprop_decay=0.9, rmsprop_eps=1.0,
                schedule="exponential", decay_rate=0.94, decay_epochs=2.0,
                train_crop="random_resized", image_size=299)

RECIPES = {
    "googlenet*": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=256, momentum=0.9,
                       schedule="exponential", decay_rate=0.96, decay_epochs=8.0, weight_decay=2e-4,
                       train_crop="random_resized", crop_area_range=(0.08, 1.0),
                       aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0), color_jitter=0.4,
                       aux_loss_weight=0.3),
    "bn_inception": dict(optimizer="sgd", learning_rate=0.045, lr_batch_denom=256, momentum=0.9,
                         schedule="exponential", decay_rate=0.96 ** 6, decay_epochs=8.0,
                         weight_decay=4e-5, train_crop="random_resized", color_jitter=0.1),
    "inception_v3": dict(_RMSPROP, label_smoothing=0.1, grad_clip_norm=2.0, aux_loss_weight=0.4,
                         weight_decay=4e-5, lr_batch_denom=1600),
    "inception_v4": dict(_RMSPROP, weight_decay=4e-5, lr_batch_denom=1600),
    "inception_resnet_v*": dict(_RMSPROP, weight_decay=4e-5, lr_batch_denom=1600),
}
