"""Wide ResNet (CIFAR): derived counts vs the paper, layout, dropout."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import random_variables
from flaxnets.models.wrn import WideResNet, wrn_param_count
from flaxnets.summary import count_params


def _params(model) -> dict:
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))["params"]


@pytest.mark.parametrize("name, paper_m", [("wrn_28_10", 36.5), ("wrn_40_4", 8.9), ("wrn_16_8", 11.0)])
def test_counts_match_paper(name: str, paper_m: float) -> None:
    model = flaxnets.create_model(name)
    n = count_params(_params(model))
    assert n == wrn_param_count(model.depth, model.widen_factor) == flaxnets.model_info(name).params
    assert round(n / 1e6, 1) == paper_m


def test_layout() -> None:
    p = _params(flaxnets.create_model("wrn_28_10"))
    assert p["conv1"]["kernel"].shape == (3, 3, 3, 16)
    for g, (c_in, c) in enumerate(((16, 160), (160, 320), (320, 640))):
        blocks = [k for k in p if k.startswith(f"block{g + 1}.layer.")]
        assert len(blocks) == 4  # N = (28 - 4) / 6
        first = p[f"block{g + 1}.layer.0"]
        assert first["convShortcut"]["kernel"].shape == (1, 1, c_in, c)
        assert first["bn1"]["scale"].shape == (c_in,)  # pre-activation: BN on the block input
        assert "convShortcut" not in p[f"block{g + 1}.layer.1"]
    assert p["bn1"]["scale"].shape == (640,) and p["fc"]["kernel"].shape == (640, 10)
    with pytest.raises(ValueError, match="6N\\+4"):
        _params(WideResNet(depth=27))


def test_dropout_only_in_training() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 3)), jnp.float32)
    model, plain = WideResNet(depth=10, widen_factor=1, proj_drop_rate=0.3), WideResNet(depth=10, widen_factor=1)
    variables = random_variables(model, x)

    @jax.jit
    def run(rngs):
        train = [model.apply(variables, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": r})[0] for r in rngs]
        return train, model.apply(variables, x), plain.apply(variables, x)

    (t0, t1), eval_drop, eval_plain = run((jax.random.PRNGKey(0), jax.random.PRNGKey(1)))
    assert not np.allclose(t0, t1)
    chex.assert_trees_all_close(eval_drop, eval_plain)
