"""DenseNet-specific behaviour: derived parameter counts (paper Table 2), layer layout,
dropout, and the memory-efficient (rematerialised) variant."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import cheap_jit, random_variables
from flaxnets.models.densenet import DenseNet, cifar_config, densenet_param_count
from flaxnets.summary import count_params


def _shapes(model, size: int) -> dict:
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


# Table 2 of the paper, parameters in millions (rounded to one decimal).
@pytest.mark.parametrize("name, paper_m", [
    ("densenet40_k12", 1.0), ("densenet_bc_100_k12", 0.8),
    ("densenet_bc_250_k24", 15.3), ("densenet_bc_190_k40", 25.6),
])
def test_cifar_counts_match_table2(name: str, paper_m: float) -> None:
    variables = _shapes(flaxnets.create_model(name), 32)
    n = count_params(variables["params"])
    assert n == flaxnets.model_info(name).params
    assert round(n / 1e6, 1) == paper_m


@pytest.mark.parametrize("name", ["densenet121", "densenet161", "densenet264"])
def test_closed_form_count_equals_model(name: str) -> None:
    model = flaxnets.create_model(name)
    expected = densenet_param_count(model.block_config, model.growth_rate, model.num_init_features,
                                    model.bn_size, model.compression, model.stem, 1000)
    assert count_params(_shapes(model, 64)["params"]) == expected == flaxnets.model_info(name).params


def test_densenet264_layout() -> None:
    # Table 1, k = 32, blocks 6-12-64-48: 64 → 256 → 128 → 512 → 256 → 2304 → 1152 → 2688.
    p = _shapes(flaxnets.create_model("densenet264"), 64)["params"]
    assert p["classifier"]["kernel"].shape == (2688, 1000)
    assert p["features.transition3"]["conv"]["kernel"].shape == (1, 1, 2304, 1152)
    assert len([k for k in p["features.denseblock3"]]) == 64
    assert p["features.denseblock4"]["denselayer48"]["conv2"]["kernel"].shape == (3, 3, 128, 32)


def test_cifar_layouts() -> None:
    assert cifar_config(40, 12, False)["block_config"] == (12, 12, 12)
    assert cifar_config(100, 12, True)["block_config"] == (16, 16, 16)
    assert cifar_config(250, 24, True)["block_config"] == (41, 41, 41)
    plain = _shapes(flaxnets.create_model("densenet40_k12"), 32)["params"]
    layer = plain["features.denseblock1"]["denselayer1"]
    assert set(layer) == {"norm1", "conv1"} and layer["conv1"]["kernel"].shape == (3, 3, 16, 12)
    # No compression: 16 + 12·12 = 160 maps in, 160 out.
    assert plain["features.transition1"]["conv"]["kernel"].shape == (1, 1, 160, 160)
    assert "features.norm4" in plain and "features.norm0" not in plain
    bc = _shapes(flaxnets.create_model("densenet_bc_100_k12"), 32)["params"]
    assert bc["features.conv0"]["kernel"].shape == (3, 3, 3, 24)  # 2k
    assert bc["features.denseblock1"]["denselayer1"]["conv1"]["kernel"].shape == (1, 1, 24, 48)  # 4k
    assert bc["features.transition1"]["conv"]["kernel"].shape == (1, 1, 216, 108)  # θ = 0.5


def _small(**kw) -> DenseNet:
    return DenseNet(**{"block_config": (3, 2), "growth_rate": 4, "num_init_features": 8, "stem": "cifar",
                       "num_classes": 5, **kw})


def test_dropout_only_in_training() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 3)), jnp.float32)
    model, plain = _small(proj_drop_rate=0.5), _small()
    variables = random_variables(model, x)

    @cheap_jit
    def run(rngs):
        train = [model.apply(variables, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": r})[0] for r in rngs]
        no_drop = plain.apply(variables, x, train=True, mutable=["batch_stats"])[0]
        return train, no_drop, model.apply(variables, x), plain.apply(variables, x)

    (t0, t1), no_drop, eval_drop, eval_plain = run((jax.random.PRNGKey(0), jax.random.PRNGKey(1)))
    assert not np.allclose(t0, t1)
    assert not np.allclose(t0, no_drop)
    chex.assert_trees_all_close(eval_drop, eval_plain)


@pytest.mark.parametrize("bn_size", [4, None])
def test_memory_efficient_same_params_outputs_and_grads(bn_size) -> None:
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 3)), jnp.float32)
    base, eff = _small(bn_size=bn_size), _small(bn_size=bn_size, memory_efficient=True)
    variables = random_variables(base, x)
    chex.assert_trees_all_equal_shapes_and_dtypes(
        jax.eval_shape(lambda: eff.init(jax.random.PRNGKey(0), x)),
        jax.eval_shape(lambda: base.init(jax.random.PRNGKey(0), x)))

    def loss(model):
        def fn(params):
            logits, state = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                        train=True, mutable=["batch_stats"])
            return jnp.sum(jnp.sin(logits)), (logits, state)
        return fn

    @cheap_jit
    def run(params):
        (_, (ob, sb)), gb = jax.value_and_grad(loss(base), has_aux=True)(params)
        (_, (oe, se)), ge = jax.value_and_grad(loss(eff), has_aux=True)(params)
        evals = eff.apply(variables, x), base.apply(variables, x)
        return (ob, sb, gb), (oe, se, ge), evals

    (ob, sb, gb), (oe, se, ge), (eval_eff, eval_base) = run(variables["params"])
    chex.assert_trees_all_close(oe, ob, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(se, sb, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(ge, gb, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(eval_eff, eval_base, atol=1e-5)
    # The rematerialisation really is there (one per dense layer), and only with the option.
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda p: loss(eff)(p)[0]))(variables["params"]))
    assert jaxpr.count("remat") + jaxpr.count("checkpoint[") >= 5
    jaxpr_base = str(jax.make_jaxpr(jax.grad(lambda p: loss(base)(p)[0]))(variables["params"]))
    assert "remat" not in jaxpr_base and "checkpoint[" not in jaxpr_base
    # Linear program size: one concatenation per block (its buffer), not one per layer.
    assert jaxpr_base.count(" concatenate[") == 2 and jaxpr_base.count("dynamic_update_slice") >= 5


def test_memory_efficient_registered_model_same_variables() -> None:
    a = _shapes(flaxnets.create_model("densenet121"), 64)
    b = _shapes(flaxnets.create_model("densenet121", memory_efficient=True), 64)
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)


def test_memory_efficient_stores_linear_not_quadratic_residuals() -> None:
    """What autodiff keeps for the backward pass: the plain net stores every layer's
    concatenated (and normalised) input — quadratic in the block depth — the memory-efficient
    one only the layers' outputs. Measured on the JAX program, before any backend compiler."""
    saved_residuals = pytest.importorskip("jax._src.ad_checkpoint").saved_residuals
    x = jnp.zeros((2, 32, 32, 3))

    def residual_bytes(memory_efficient: bool) -> int:
        model = flaxnets.create_model("densenet_bc_100_k12", memory_efficient=memory_efficient)
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
        v = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def loss(params):
            out, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                                 mutable=["batch_stats"])
            return out.sum()

        return sum(a.size * a.dtype.itemsize for a, _ in saved_residuals(loss, v["params"]))

    plain, efficient = residual_bytes(False), residual_bytes(True)
    assert efficient < 0.5 * plain, (plain, efficient)


def test_memory_efficient_feature_maps_equal_plain() -> None:
    """The taps sit outside the rematerialised part: same maps with and without remat."""
    from flaxnets.features import FeatureExtractor

    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 8, 8, 3)), jnp.float32)
    taps = ("features.denseblock1", "features.denseblock2")
    variables = random_variables(_small(), x)
    plain = FeatureExtractor(_small(num_classes=0), taps)
    eff = FeatureExtractor(_small(num_classes=0, memory_efficient=True), taps)
    a, b = jax.jit(lambda v: (plain.apply(v, x), eff.apply(v, x)))(variables)
    assert [m.shape for m in a] == [(2, 8, 8, 8 + 3 * 4), (2, 4, 4, 10 + 2 * 4)]
    chex.assert_trees_all_close(a, b, atol=1e-6)
