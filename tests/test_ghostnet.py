"""GhostNet: Ghost module, SE placement/gate, Table 7 params and complexity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import flaxnets
from conftest import random_variables
from flaxnets import layers
from flaxnets.models.ghostnet import GHOSTNET_CFG, GhostBottleneck, GhostModule
from flaxnets.summary import count_params


def _params(name: str, size: int = 224):
    model = flaxnets.create_model(name)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return v["params"]


def test_ghost_module_intrinsic_and_ghost_maps() -> None:
    """n = 5 outputs: ⌈5/2⌉ = 3 intrinsic maps, 3 depthwise ghosts, cut to 5; the first 3
    outputs are the primary conv's maps and the ghosts are depthwise functions of them."""
    mod = GhostModule(5, conv=layers.make_conv(), norm=layers.batch_norm(False))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 6, 6, 4)), jnp.float32)
    variables = random_variables(mod, x)
    p = traverse_util.flatten_dict(variables["params"])
    assert p[("primary_conv.0", "kernel")].shape == (1, 1, 4, 3)
    assert p[("cheap_operation.0", "kernel")].shape == (3, 3, 1, 3)  # depthwise
    y = mod.apply(variables, x)
    assert y.shape == (1, 6, 6, 5)
    intrinsic = jax.nn.relu(jnp.einsum("bhwc,cd->bhwd", x, p[("primary_conv.0", "kernel")][0, 0])
                            + variables["params"]["primary_conv.1"]["bias"])
    np.testing.assert_allclose(np.asarray(y[..., :3]), np.asarray(intrinsic), rtol=1e-5, atol=1e-5)


def test_se_blocks_and_reduction_follow_table1() -> None:
    p = traverse_util.flatten_dict(_params("ghostnet_100"))
    with_se = {k[0] for k in p if len(k) > 1 and k[1] == "se"}
    expected = {f"blocks.{i}.{j}" for i, stage in enumerate(GHOSTNET_CFG)
                for j, row in enumerate(stage) if row[3] > 0}
    assert with_se == expected and len(expected) == 7  # Table 1: 7 bottlenecks with SE
    # reduction make_divisible(72 / 4, 4) = 20, (672 / 4) = 168
    assert p[("blocks.3.0", "se", "conv_reduce", "kernel")].shape == (1, 1, 72, 20)
    assert p[("blocks.7.0", "se", "conv_reduce", "kernel")].shape == (1, 1, 672, 168)
    assert p[("conv_head", "kernel")].shape == (1, 1, 960, 1280)


def test_se_gate_is_hard_sigmoid() -> None:
    """A saturated gate (zero kernel, bias 10) is exactly 1 for hard-sigmoid (not sigmoid),
    so the block equals the same block without SE."""
    kw = dict(conv=layers.make_conv(), norm=layers.batch_norm(False))
    with_se = GhostBottleneck(32, 24, 3, 1, 0.25, **kw)
    without = GhostBottleneck(32, 24, 3, 1, 0.0, **kw)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 5, 5, 16)), jnp.float32)
    variables = random_variables(with_se, x)
    params = dict(variables["params"])
    se = params.pop("se")
    params["se"] = {"conv_reduce": se["conv_reduce"],
                    "conv_expand": {"kernel": np.zeros_like(se["conv_expand"]["kernel"]),
                                    "bias": np.full_like(se["conv_expand"]["bias"], 10.0)}}
    a = with_se.apply({**variables, "params": params}, x)
    b = without.apply({**variables, "params": {k: v for k, v in params.items() if k != "se"}}, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name,paper_m", [("ghostnet_050", 2.6), ("ghostnet_100", 5.2),
                                          ("ghostnet_130", 7.4)])
def test_params_match_table7(name: str, paper_m: float) -> None:
    # Table 7 lists 7.3M for 1.3×; the network (and timm's twin) has 7,358,820 → 7.4M.
    n = count_params(_params(name))
    assert n == flaxnets.model_info(name).params
    assert round(n / 1e6, 1) == paper_m


def test_complexity_close_to_paper() -> None:
    # Table 7: 141M FLOPs (mult-adds) for GhostNet 1.0×; XLA counts mul and add separately.
    macs = flaxnets.summary("ghostnet_100", (224, 224, 3)).flops / 2
    assert abs(macs / 141e6 - 1) < 0.1, macs
