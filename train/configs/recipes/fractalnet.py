"""FractalNet recipe (Larsson et al., "FractalNet: Ultra-Deep Neural Networks without
Residuals", ICLR 2017, Sec. 4 "Training").

SGD with momentum 0.9, batch 100, 400 epochs (CIFAR), learning rate 0.02 "dropped by a
factor of 10 whenever the number of remaining epochs halves": at 1/2, 3/4, 7/8, … of the
run (``step_epochs`` below, as fractions: 1 − 2^-k for k = 1…8; at k = 9 fewer than one
of the 400 epochs would remain). Xavier init; standard CIFAR augmentation (translations +
flips → pad-4 crops + flips). Regularisation (Sec. 4.1, "for experiments using dropout"):
dropout 0-10-20-30-40 % per block (``proj_drop_rate``; off in the model) and drop-path mixing
50 % global (one column) and 50 % local (join inputs dropped with p = 0.15) mini-batches, both
through ``model_overrides`` for the 20-layer network, whose metadata cites Table 1's
"+ drop-path + dropout" row. The 40-layer network's row, "FractalNet (40 layers, 22.9M params)",
carries no "+ drop-path + dropout" (fidelity audit 2026-12, §16: no drop-path; that it had no
dropout either is read from the label and Sec. 4.1's wording, Table 1 not re-fetched): neither
is set for it. Weight decay is not stated in the
paper; the default 1e-4 is kept (the authors' Caffe template sets decay_mult 1 on weights
only, the value lives in a solver that is not published).
PreciseBN for the 20-layer network (``precise_bn_samples``, pycls's 8192 images, at most an
epoch; not in the paper): the network evaluated (every column, mean joins, no dropout) is never
the one a training batch runs (one column under global drop-path, dropped inputs and units
otherwise), so BatchNorm running averages describe other sub-networks. Measured on the digits
(fractalnet20_cifar, default command, 286 steps at 8×8): 10.00 % test top-1 with running
averages, one class predicted for every digit; the statistics recomputed through the evaluated
network give the row in TRAINABILITY.md. At 32×32 (``--config.image_size=32``: 8 epochs, the CIFAR
floor) the test top-1 after epochs 1-5 was 10.0, 20.0, 23.1, 38.1, 34.4 % (run stopped at fdb9879), no
better than the 8×8 run's 30.8 % at its fifth: the larger maps (dropout on 1×1 maps at 8×8) do not make
the short run learn (whether many more epochs would is not measured). Without the dropout, drop-path
kept (``--config.model_overrides.proj_drop_rate="(0.0, 0.0, 0.0, 0.0, 0.0)"``, otherwise the default
command, 458abfc): 97.50 % (test top-1 36.9, 59.2, 72.8, 78.1, 91.1 % after epochs 1-5): the per-block
dropout, not drop-path, is what the 13-epoch run cannot absorb. With it, at 40 epochs
(``--config.num_epochs=40``, a0636be, 2,100 s): test top-1 84.2 % at epoch 20 (the first drop), 92.2 % at 28,
then flat, 92.78 % at the end. So the recipe keeps its regularisation and trains at least 80 epochs on small
data (``small_data_min_epochs``): twice the first phase that reached 84 % at 40. The default command
then reaches 97.50 % (1,760 steps, 3,631 s at d6f8f3e; 96.1 % at epoch 30, before the first drop at 40).
Reported C10+ error (Table 1): 20 layers with drop-path + dropout 4.60 % (deepest column
alone 4.68 %); 40 layers 5.24 %.
"""

_STEPS = tuple(1.0 - 2.0**-k for k in range(1, 9))

RECIPES = {
    "fractalnet*": dict(optimizer="sgd", learning_rate=0.02, lr_batch_denom=100, batch_size=100,
                        momentum=0.9, schedule="step", step_epochs=_STEPS, step_factor=0.1,
                        num_epochs=400.0, warmup_epochs=0.0, train_crop="pad_crop", random_flip=True),
    "fractalnet20_cifar": dict(model_overrides={"local_drop_rate": 0.15, "global_drop_rate": 0.5,
                                                "proj_drop_rate": (0.0, 0.1, 0.2, 0.3, 0.4)},
                               precise_bn_samples=8192, small_data_min_epochs=80.0),
}
