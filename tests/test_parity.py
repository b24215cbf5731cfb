"""Numerical parity with the torchvision/timm twins: same weights → same logits.

For every registered model with a twin: build the twin with random weights and random
BatchNorm statistics, convert its ``state_dict`` with :func:`flaxnets.from_torch`, and
compare eval-mode logits on one random input at the default size and at the model's extra
sizes (a non-square odd size where the twin accepts it). Max abs difference ≤ 1e-4 (fp32).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import build_twin, random_input

import flaxnets
from flaxnets.summary import count_params

TWINS = [n for n in flaxnets.list_models() if flaxnets.model_info(n).twin]
_BIG = 40_000_000  # models above this many params are marked slow


def _marks(name: str):
    info = flaxnets.model_info(name)
    big = (info.params or 0) > _BIG or info.input_size[0] > 300
    return [pytest.mark.parity] + ([pytest.mark.slow] if big else [])


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in TWINS])
def test_logits_match_twin(name: str) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    info = flaxnets.model_info(name)
    twin = build_twin(name)
    twin_params = sum(p.numel() for p in twin.parameters())
    variables = flaxnets.from_torch(name, twin.state_dict())
    assert count_params(variables["params"]) == twin_params
    if info.params is not None:
        assert twin_params == info.params
    model = flaxnets.create_model(name)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    h, w, c = info.input_size
    for i, (hh, ww) in enumerate(((h, w), *info.twin_sizes)):
        x = random_input((2, c, hh, ww), seed=i)
        with torch.no_grad():
            expected = twin(torch.from_numpy(x)).numpy()
        got = np.asarray(apply(variables, x.transpose(0, 2, 3, 1)))
        assert got.shape == expected.shape
        err = float(np.max(np.abs(got - expected)))
        assert err <= 1e-4, f"{name} at {hh}×{ww}: max abs diff {err:.2e}"
