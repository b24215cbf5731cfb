"""Trainability: a small member of a family learns the embedded digits with its own recipe
(adapted to digits, ``train/configs/__init__.py``) in a short budget. A broken
initialisation, loss or recipe adaptation stays near chance (10 %); the threshold is far
above it. The full-length runs are in TRAINABILITY.md (``benchmarks/trainability.py``).

Covered so far: ResNet (CIFAR ResNet-20 at 8×8, 15 epochs, 104 s on an idle 2-core machine; 10
epochs reached 75 % in a full-suite run, too close to the threshold; 634 s for 10 epochs on a machine shared
by ~7 jobs). Not yet: the other families. LeNet-5 (batch 16, 4 epochs) and Highway-FC (5
epochs) stayed at chance (10.0 %) with their adapted recipes, so they are not listed as
passing; see TRAINABILITY.md.
"""

from __future__ import annotations

import pathlib

import pytest

THRESHOLD = 80.0  # % test top-1 on the 360 test digits; chance is 10 %

# arch → explicit fields: the smallest image size the model allows and a short budget; every
# other field (optimiser, schedule shape, lr rule, regularisation) comes from the recipe.
CASES = {
    "resnet20": dict(image_size=8, num_epochs=15.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CASES))
def test_small_member_learns_digits_with_its_recipe(arch: str, tmp_path: pathlib.Path) -> None:
    from train import loop
    from train.configs.default import get_config

    cfg = get_config()
    cfg.arch, cfg.dataset = arch, "digits"
    fields = dict(CASES[arch], log_every_steps=1000, eval_every_epochs=1000, tensorboard=False)
    for k, v in fields.items():
        setattr(cfg, k, v)
    metrics = loop.train_and_evaluate(cfg, str(tmp_path / "run"), explicit=["dataset", *fields])
    assert metrics["top1"] >= THRESHOLD, metrics
