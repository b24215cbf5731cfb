"""FractalNet recipe (Larsson et al., "FractalNet: Ultra-Deep Neural Networks without
Residuals", ICLR 2017, Sec. 4 "Training").

SGD with momentum 0.9, batch 100, 400 epochs (CIFAR), learning rate 0.02 divided by 10
each time the remaining epochs halve (at 1/2 and 3/4 of training); Xavier init; standard
CIFAR augmentation (translations + flips → pad-4 crops + flips). Regularisation: dropout
0-0.1-0.2-0.3-0.4 per block (the model's default ``proj_drop_rate``) and drop-path mixing
50 % global (one column) and 50 % local (join inputs dropped with p = 0.15) mini-batches,
enabled here through ``model_overrides``. Weight decay is not stated; the default 1e-4 is kept.
Reported C10+ error (Table 1), 40-layer FractalNet with drop-path + dropout: 4.59 %
(single deepest column: 4.68 %, Table 3).
"""

RECIPES = {
    "fractalnet*": dict(optimizer="sgd", learning_rate=0.02, lr_batch_denom=0, batch_size=100,
                        momentum=0.9, schedule="step", step_epochs=(0.5, 0.75), step_factor=0.1,
                        num_epochs=400.0, warmup_epochs=0.0, train_crop="pad_crop", random_flip=True,
                        model_overrides={"local_drop_rate": 0.15, "global_drop_rate": 0.5}),
}
