"""Trainability: one small member per family learns the embedded digits with its own recipe
(adapted to digits, ``train/configs/__init__.py``) in a short budget. A broken
initialisation, loss or recipe adaptation stays near chance (10 %); each threshold is far
above it and below the measured top-1 with a margin. The full-length runs are in
TRAINABILITY.md (``benchmarks/trainability.py``).

Measured (seed 0, float32 CPU, default XLA options: the tests' cheap-compile options apply to
the registry-wide train-step test only, tests/conftest.py). CPU seconds are of one process
running ``loop.train_and_evaluate`` with these fields on the 2-core machine; wall times under pytest
were 2-5x that while a trainability sweep shared the cores:

* resnet20, 8×8, 15 epochs: 98.9 %, 22 s wall idle (31 CPU s); 10 epochs reached 75 %, too
  close to 80 %.
* densenet40_k12, 8×8, 3 epochs: 99.2 %, 41.5 s wall idle at a5f801b (5 epochs: 99.2 %, 47 s; 8
  epochs: 99.4 %).
* shufflenet_v2_x0_5, 32×32, 5 epochs: 83.1 %, 39 CPU s (threshold 60).
* mobilenetv1_025_paper, 32×32, 5 epochs: 77.2 %, 40 CPU s (threshold 55).
* nin_cifar10, 8×8, 5 epochs: 88.6 %, 24 s wall idle at f83da8d (threshold 80; 95.0 % before its
  recipe took the authors' weight decay 1e-4 and classifier rate ×0.1).
* highway_fc, 28×28, 3 epochs: 80.6 %, 34 CPU s (threshold 60); highway_cifar at 8×8 for 5
  epochs reached only 20.8 %, so the family is covered by its fully connected member.
* seresnet18, 32×32, 8 epochs: 82.2 %, 234 CPU s (threshold 60), since ba7f7e8 (the timm twin's
  zero-init of each block's last BN): 5 epochs reached 52.8 % (158 CPU s), 1 epoch 11.1 %. With
  γ = 1 before it, 1 epoch reached 76.1 % (55 CPU s).
* ghostnet_050, 32×32, 3 epochs: 88.3 %, 66 CPU s (threshold 60).
* lenet5, 32×32, batch 1 (SDLM), 5 epochs: 90.8 %, 71 CPU s (threshold 70; 2 epochs stayed
  at 10 %: the first epoch's curvature estimate and lr schedule need the length).
* bn_inception, 32×32, 3 epochs: 90.0 %, 73 CPU s at 4fa9bef (threshold 75; 5 epochs: 94.4 %).
* alexnet, 63×63 (its smallest input), 5 epochs: 77.5 %, 63 CPU s at 4fa9bef (threshold 50). Its
  recipe's plateau schedule (train/optim.py) keeps the rate while the loss improves; with the
  fixed drops at 1/3, 2/3 and 8/9 of the run it had before, its 15-epoch default run reached
  93.6 %, now 98.9 % (TRAINABILITY.md).
* squeezenet1_0_complex_bypass, 32×32, 5 epochs: 94.2 %, 31 CPU s (threshold 70); 10.0 % with
  ``head_lr_mult=1`` (its classifier conv's ReLU dies under the recipe's per-class step; the
  trainer's ×C/C_home rule, train/configs/__init__.py, is what this case pins).

* efficientnet_b0, 32×32, 5 epochs: 88.6 %, 51 s wall idle at 387df30 (threshold 70; 3 epochs: 56.9 % at
  a5f801b); 34.4 %
  without the recipe's off-ImageNet zero-γ (``adapted_model_overrides={}``), the init this case
  pins (efficientnet_b1's default run: 32.2 % without it, 98.3 % with it, TRAINABILITY.md).

The numbers above the squeezenet line (seresnet18's 8-epoch ones aside) were measured before
022b79b (the classifier-rate rule for SGD recipes on fewer classes); the SGD cases among them
(shufflenet_v2_x0_5, seresnet18, ghostnet_050, bn_inception) passed their thresholds again after
it (4 tests, 256 s under pytest). bn_inception and alexnet passed theirs again at 60b012a, where
their recipes' colour jitter / PCA lighting turned off on small images (2 tests, 255 s under
pytest).

Not covered yet: darknet (darknet53's
default run, 15 epochs: 97.5 %, 1,473 s at 5c861fd, ~90 s an epoch; 3 epochs holding the whole
schedule reached 16.4 %: too slow to learn within a test's budget) and vgg (vgg11's default run,
25 epochs since 136d107: 98.3 %, 1,648 s at 9264a54; at 15 epochs: 96.7 % under the plateau
schedule, 1,063 s at 3d1255b, 91.4 % at epoch 11; 92.8 % at 691962c, 86.4 % before the twin's FC init),
and, for cost: wrn (wrn_40_4 5 epochs 97.8 % but 360 CPU s), nasnet
(nasnetamobile 5 epochs 94.7 %, 275 CPU s), inception_v4 (inception_resnet_v1's default run, 15
epochs at 75×75: 98.3 %, 526 s), inception_v3 (its default run on the digits, 75×75 with the aux
head off, 0.32 GFLOPs per image: 98.3 % in 1,058 s at 8dd412d with its clipping per tensor;
63.1 % at dc147b0 with one global norm), fractalnet (fractalnet20_cifar's default run, 80 epochs at
8×8 since its recipe's small-data floor: 97.5 %, 3,631 s at d6f8f3e; at 13 epochs 42.5 %, 30.8 % at its
fifth: learns too slowly under its per-block dropout for a test's budget; without that dropout,
drop-path kept, 97.5 % at 13 epochs, 458abfc)
and zfnet (its default run, 15 epochs at 207×207: 98.6 %,
1,538 s at 2c5e2ce).
"""

from __future__ import annotations

import pathlib

import pytest

# arch → (explicit fields, threshold % test top-1 on the 360 test digits; chance is 10 %).
# Fields: the image size the trainer picks for digits (8×8 for CIFAR nets, 32×32 for ImageNet
# nets) and a short budget; every other field (optimiser, schedule shape, lr rule,
# regularisation, loss) comes from the recipe.
CASES = {
    "resnet20": (dict(image_size=8, num_epochs=15.0), 80.0),
    "densenet40_k12": (dict(image_size=8, num_epochs=3.0), 80.0),
    "shufflenet_v2_x0_5": (dict(image_size=32, num_epochs=5.0), 60.0),
    "mobilenetv1_025_paper": (dict(image_size=32, num_epochs=5.0), 55.0),
    "nin_cifar10": (dict(image_size=8, num_epochs=5.0), 80.0),
    "highway_fc": (dict(image_size=28, num_epochs=3.0), 60.0),
    "seresnet18": (dict(image_size=32, num_epochs=8.0), 60.0),
    "ghostnet_050": (dict(image_size=32, num_epochs=3.0), 60.0),
    "lenet5": (dict(image_size=32, num_epochs=5.0), 70.0),
    "bn_inception": (dict(image_size=32, num_epochs=3.0), 75.0),
    "alexnet": (dict(image_size=63, num_epochs=5.0), 50.0),
    "squeezenet1_0_complex_bypass": (dict(image_size=32, num_epochs=5.0), 70.0),
    "efficientnet_b0": (dict(image_size=32, num_epochs=5.0), 70.0),
}

# Convolution path (flaxnets.layers.conv_impl): the native conv for ghostnet_050, whose train step
# on the CPU formulations (stride-1 depthwise with its own gradient) compiled for ~90 % of the
# test's time: 140 s against 231 s wall on a slow machine, 78.3 % against 79.7 % top-1. The
# formulations equal lax's conv op by op (tests/test_layers.py) and train on the CPU path in
# test_models.py's behaviour test; what this test pins is the init, loss and recipe.
CONV_IMPL = {"ghostnet_050": "native"}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CASES))
def test_small_member_learns_digits_with_its_recipe(arch: str, tmp_path: pathlib.Path) -> None:
    from flaxnets import layers
    from train import loop
    from train.configs.default import get_config

    explicit, threshold = CASES[arch]
    cfg = get_config()
    cfg.arch, cfg.dataset = arch, "digits"
    fields = dict(explicit, log_every_steps=1000, eval_every_epochs=1000, tensorboard=False)
    for k, v in fields.items():
        setattr(cfg, k, v)
    with layers.conv_impl(CONV_IMPL.get(arch, "auto")):
        metrics = loop.train_and_evaluate(cfg, str(tmp_path / "run"), explicit=["dataset", *fields])
    assert metrics["top1"] >= threshold, metrics
