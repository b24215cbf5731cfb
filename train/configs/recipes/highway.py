"""Highway network recipes (Srivastava et al., "Training Very Deep Networks", NIPS 2015).

MNIST (Sec. 3.1, Fig. 1): plain SGD with momentum and an exponentially decaying learning
rate, hyper-parameters (lr, momentum, decay, gate bias in [−1, −10]) chosen per depth by
random search; the paper reports training curves, not a single setting, so the values
below are a representative point of that search space, not the paper's numbers.
CIFAR-10 (Sec. 3.2, Table 2): SGD with momentum, standard augmentation (random
translations + flips, here pad-4 crops + flips); reported accuracy Highway B (19 layers,
≈2.3M params) 92.46 % (max; 92.28 ± 0.16 mean), Highway A 89.18 %, Highway C 91.20 %.
"""

RECIPES = {
    "highway_fc": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=0, batch_size=128,
                       momentum=0.9, weight_decay=0.0, schedule="exponential", decay_rate=0.95,
                       decay_epochs=1.0, num_epochs=400.0, train_crop="center", random_flip=False),
    "highway_cifar": dict(optimizer="sgd", learning_rate=0.1, lr_batch_denom=128, batch_size=128,
                          momentum=0.9, weight_decay=5e-4, schedule="step", step_epochs=(0.5, 0.75),
                          num_epochs=400.0, train_crop="pad_crop", random_flip=True),
}
