"""SqueezeNet recipes.

Iandola et al. 2016 defer the training protocol to the authors' Caffe release
(github.com/forresti/SqueezeNet, ``SqueezeNet_v1.0/solver.prototxt`` and
``train_val.prototxt``): SGD momentum 0.9, global batch 1024 (32 × ``iter_size`` 32),
base lr 0.08, "poly" decay with power 0.5 to zero over 85,000 iterations (≈ 68 epochs),
weight decay 2e-4 on every weight and bias, random 227 crops of 256-resized images, no
mirroring, dropout 0.5 after fire9. The trainer has no polynomial schedule, so cosine
(also decaying to zero) stands in for poly(0.5); crops are 224 (the registered input size).
Reported top-1 / top-5 (Table 2/3): SqueezeNet 57.5 / 80.3; with simple bypass 60.4 / 82.5;
with complex bypass 58.8 / 82.0. v1.1 has no paper number (torchvision: 58.18 / 80.62).
"""

RECIPES = {
    "squeezenet*": dict(optimizer="sgd", learning_rate=0.08, lr_batch_denom=1024, batch_size=1024,
                        momentum=0.9, weight_decay=2e-4, decay_bn_and_bias=True, num_epochs=68.0,
                        schedule="cosine", train_crop="scale_jitter", scale_jitter_range=(256, 256),
                        random_flip=False),
}
