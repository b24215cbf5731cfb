"""Highway network recipes (Srivastava et al., "Training Very Deep Networks", NIPS 2015).

MNIST (Sec. 3.1, Fig. 1): plain SGD with momentum and an exponentially decaying learning
rate, hyper-parameters (lr, momentum, decay, gate bias in [−1, −10]) chosen per depth by
random search; the paper reports training curves, not a single setting, so the values
below are a representative point of that search space, not the paper's numbers. The paper
gives no epoch count for these runs, so none is set (the MNIST default budget applies).
The transform-gate bias is one of the searched hyper-parameters, set here through
``model_overrides``: −4, the initial bias of the paper's best 50-layer CIFAR-100 net (Fig. 2;
its best MNIST net started from −2). At −2 each of the 49 highway layers carries
1 − σ(−2) ≈ 0.88 of its input, so a fresh net passes 0.88^49 ≈ 0.2 % of the signal to the
softmax (measured on digits: logits std 0.002, loss stuck at ln 10 for 6 epochs at lr 0.005
and at 0.05); at −4, 0.982^49 ≈ 41 % (logits std 0.14, 90 % test top-1 after 6 epochs).
CIFAR-10 (Sec. 3.3.1, Table 2): SGD with momentum, a fixed decay schedule, standard
augmentation (random translations + flips, here pad-4 crops + flips); the paper gives no
values. They come from the authors' released 19-layer CIFAR-10 solver
(flukeskywalker/highway-networks, fidelity audit 2026-12 §15): Nesterov momentum, base_lr
0.025 at batch 100, weight decay 1e-3 (none on biases), ×0.1 at 100k / 150k / 175k of 200k
iterations (epochs 200 / 300 / 350 of 400). Not reproduced: its GCN preprocessing, 8-px
padding and dropout 0.2. Reported accuracy Highway B (19 layers, ≈2.3M params) 92.46 %
(max; 92.28 ± 0.16 mean), Highway A 89.18 %, Highway C 91.20 %.
"""

RECIPES = {
    "highway_fc": dict(optimizer="sgd", learning_rate=0.01, lr_batch_denom=128, batch_size=128,
                       momentum=0.9, weight_decay=0.0, schedule="exponential", decay_rate=0.95,
                       decay_epochs=1.0, train_crop="center", random_flip=False,
                       model_overrides={"gate_bias": -4.0}),
    "highway_cifar": dict(optimizer="sgd", learning_rate=0.025, lr_batch_denom=100, batch_size=100,
                          momentum=0.9, nesterov=True, weight_decay=1e-3, schedule="step",
                          step_epochs=(0.5, 0.75, 0.875),
                          num_epochs=400.0, train_crop="pad_crop", random_flip=True),
}
