"""Trainability: one small member per family learns the embedded digits with its own recipe
(adapted to digits, ``train/configs/__init__.py``) in a short budget. A broken
initialisation, loss or recipe adaptation stays near chance (10 %); each threshold is far
above it and below the measured top-1 with a margin. The full-length runs are in
TRAINABILITY.md (``benchmarks/trainability.py``).

Measured (seed 0, float32 CPU; CPU seconds include compilation, on a 2-core machine shared
with a trainability sweep, so wall times were 4-10× the CPU time):

* resnet20, 8×8, 15 epochs: 99.4 % in the default run (TRAINABILITY.md, 30 epochs); 15 epochs
  104 s on an idle machine; 10 epochs reached 75 %, too close to 80 %.
* densenet40_k12, 8×8, 8 epochs: 99.4 %, 100 CPU s.
* shufflenet_v2_x0_5, 32×32, 5 epochs: 83.1 %, 39 CPU s (threshold 60); this test: passed,
  355 s wall under load.
* mobilenetv1_025_paper, 32×32, 5 epochs: 77.2 %, 40 CPU s (threshold 55); this test: passed,
  49 CPU s for the whole pytest process, 309 s wall under load.

Not covered yet (the session's deadline left no CPU time to measure them; each needs one
measured run before it is listed): alexnet, darknet, efficientnet, fractalnet, googlenet,
highway, inception_v3, inception_v4, lenet, nasnet, nin, senet, vgg, wrn, zfnet.
Measured and left out for cost: ghostnet_050 at 32×32 for 5 epochs reached 95.3 % but took
144 CPU s; a shorter budget needs its own measurement. Tried and left out: squeezenet1_1 at
32×32 for 5 epochs stayed at chance (10.0 %, 38 CPU s); whether that is the short budget or
a defect is not known yet (its default-command row in TRAINABILITY.md will tell), so it is
not listed as passing.
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
    "densenet40_k12": (dict(image_size=8, num_epochs=8.0), 80.0),
    "shufflenet_v2_x0_5": (dict(image_size=32, num_epochs=5.0), 60.0),
    "mobilenetv1_025_paper": (dict(image_size=32, num_epochs=5.0), 55.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CASES))
def test_small_member_learns_digits_with_its_recipe(arch: str, tmp_path: pathlib.Path) -> None:
    from train import loop
    from train.configs.default import get_config

    explicit, threshold = CASES[arch]
    cfg = get_config()
    cfg.arch, cfg.dataset = arch, "digits"
    fields = dict(explicit, log_every_steps=1000, eval_every_epochs=1000, tensorboard=False)
    for k, v in fields.items():
        setattr(cfg, k, v)
    metrics = loop.train_and_evaluate(cfg, str(tmp_path / "run"), explicit=["dataset", *fields])
    assert metrics["top1"] >= threshold, metrics
