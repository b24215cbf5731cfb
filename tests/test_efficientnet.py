"""EfficientNet: compound scaling of Table 1 (Eq. 3), per-variant BN/dropout, drop-connect."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import cheap_jit
from flaxnets.models.efficientnet import B0_STAGES, round_filters, round_repeats


def _shapes(name: str, size: int = 64, **kw):
    model = flaxnets.create_model(name, **kw)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


def _stage_layout(params) -> list[tuple[int, int]]:
    """(blocks, output channels) per MBConv stage, read from the parameter tree."""
    out = []
    for i in range(1, 8):
        blocks = [k for k in params if k.startswith(f"features.{i}.")]
        first = params[f"features.{i}.0"]
        proj = first[f"block.{len(first) - 1}"]  # the last unit of a block is the projection
        out.append((len(blocks), proj["0"]["kernel"].shape[-1]))
    return out


def test_b0_is_table_1() -> None:
    params = _shapes("efficientnet_b0")["params"]
    assert params["features.0"]["0"]["kernel"].shape == (3, 3, 3, 32)
    assert _stage_layout(params) == [(1, 16), (2, 24), (2, 40), (3, 80), (3, 112), (4, 192), (1, 320)]
    assert params["features.8"]["0"]["kernel"].shape == (1, 1, 320, 1280)
    # MBConv1 has no expansion conv; MBConv6 expands ×6; SE squeezes to in/4.
    assert set(params["features.1.0"]) == {"block.0", "block.1", "block.2"}
    blk = params["features.2.0"]
    assert blk["block.0"]["0"]["kernel"].shape == (1, 1, 16, 96)
    assert blk["block.1"]["0"]["kernel"].shape == (3, 3, 1, 96)
    assert blk["block.2"]["fc1"]["kernel"].shape == (1, 1, 96, 4)
    assert params["features.3.0"]["block.1"]["0"]["kernel"].shape == (5, 5, 1, 144)


@pytest.mark.parametrize("name, w, d", [("efficientnet_b4", 1.4, 1.8), ("efficientnet_b7", 2.0, 3.1)])
def test_compound_scaling(name: str, w: float, d: float) -> None:
    params = _shapes(name)["params"]
    expected = [(math.ceil(n * d), round_filters(c, w)) for *_, c, n in B0_STAGES]
    assert _stage_layout(params) == expected
    assert params["features.0"]["0"]["kernel"].shape[-1] == round_filters(32, w)
    head = params[f"features.{len(B0_STAGES) + 1}"]["0"]["kernel"].shape[-1]
    assert head == 4 * round_filters(320, w)


def test_scaling_rules() -> None:
    assert [round_repeats(n, 3.1) for *_, n in B0_STAGES] == [4, 7, 7, 10, 10, 13, 4]
    assert round_filters(32, 1.1) == 32 and round_filters(40, 1.1) == 48  # 35.2 → 32, 44 → 48
    assert round_filters(112, 1.4) == 160 and round_filters(16, 2.0) == 32


def test_variant_settings() -> None:
    small, big = flaxnets.create_model("efficientnet_b0"), flaxnets.create_model("efficientnet_b6")
    assert (small.bn_eps, small.bn_momentum, small.drop_rate) == (1e-5, 0.1, 0.2)
    assert (big.bn_eps, big.bn_momentum, big.drop_rate) == (1e-3, 0.01, 0.5)
    sizes = [flaxnets.model_info(f"efficientnet_b{i}").input_size[0] for i in range(8)]
    assert sizes == [224, 240, 260, 300, 380, 456, 528, 600]


def test_drop_connect_only_in_training() -> None:
    """With drop-connect on, train outputs depend on the dropout rng; eval outputs do not."""
    model = flaxnets.create_model("efficientnet_b0", num_classes=5, drop_path_rate=0.9, drop_rate=0.0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 32, 32, 3)), jnp.float32)
    variables = cheap_jit(model.init)(jax.random.PRNGKey(0), x)  # eager init/apply dispatch op by op: slow

    @cheap_jit
    def run(key):
        train, _ = model.apply(variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": key})
        return train, model.apply(variables, x, train=False, rngs={"dropout": key})

    (t1, e1), (t2, e2) = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2))
    assert not np.allclose(t1, t2)
    np.testing.assert_array_equal(e1, e2)
    # Without drop-connect (and dropout) training is deterministic.
    plain = flaxnets.create_model("efficientnet_b0", num_classes=5, drop_rate=0.0)
    plain_train = cheap_jit(lambda key: plain.apply(variables, x, train=True, mutable=["batch_stats"],
                                                    rngs={"dropout": key})[0])
    np.testing.assert_array_equal(plain_train(jax.random.PRNGKey(1)), plain_train(jax.random.PRNGKey(2)))


def test_zero_init_last_zeroes_each_residual_projection_bn() -> None:
    """``zero_init_last`` (the recipe's off-ImageNet init): the projection BN scale of each of
    B0's 9 residual blocks (repeats 1,2,2,3,3,4,1 → 0+1+1+2+2+3+0) is 0, every other scale 1."""
    model = flaxnets.create_model("efficientnet_b0", num_classes=5, zero_init_last=True)
    params = cheap_jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]
    scales = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
              if jax.tree_util.keystr(p).endswith("['scale']")}
    zero = {k for k, v in scales.items() if not v.any()}
    assert len(zero) == 9 and all(np.all(v == 1) for k, v in scales.items() if k not in zero)
    blocks = {k.split("'")[1] for k in zero}
    assert blocks == {"features.2.1", "features.3.1", "features.4.1", "features.4.2", "features.5.1",
                      "features.5.2", "features.6.1", "features.6.2", "features.6.3"}
    assert all("['block.3']['1']" in k for k in zero)  # the 1×1 projection's BN (after expand, dw, SE)


def test_recipe() -> None:
    from train.configs.recipes import recipe_for

    r = recipe_for("efficientnet_b3")
    assert r["optimizer"] == "rmsprop" and r["schedule"] == "exponential"
    assert r["learning_rate"] * 256 / r["lr_batch_denom"] == pytest.approx(0.016)
    assert (r["decay_rate"], r["decay_epochs"], r["weight_decay"]) == (0.97, 2.4, 1e-5)
    assert r["model_overrides"]["drop_path_rate"] == 0.2
    # The reference's BatchNorm (efficientnet_builder: momentum 0.99, eps 1e-3) for every variant.
    assert (r["model_overrides"]["bn_momentum"], r["model_overrides"]["bn_eps"]) == (0.01, 1e-3)
