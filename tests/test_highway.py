"""Highway networks: gate formula, negative gate-bias init, carry behaviour, derived counts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import cheap_jit
from flaxnets.models.highway import Highway, highway_param_count
from flaxnets.summary import count_params


@pytest.mark.parametrize("kernel_size", [None, 3])
@pytest.mark.parametrize("gate_bias", [-1.0, -3.0])
def test_gate_bias_is_initialised_as_configured(kernel_size, gate_bias: float) -> None:
    x = jnp.ones((1, 5, 5, 4)) if kernel_size else jnp.ones((1, 4))
    params = Highway(kernel_size, gate_bias).init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_array_equal(params["t"]["bias"], np.full((4,), gate_bias, np.float32))
    assert not np.allclose(params["h"]["bias"], gate_bias)


def test_dense_layer_output_equals_formula() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)
    layer = Highway(None, -2.0, act=jnp.tanh)
    p = layer.init(jax.random.PRNGKey(1), x)["params"]
    xn = np.asarray(x, np.float64)
    h = np.tanh(xn @ np.asarray(p["h"]["kernel"]) + np.asarray(p["h"]["bias"]))
    t = 1.0 / (1.0 + np.exp(-(xn @ np.asarray(p["t"]["kernel"]) + np.asarray(p["t"]["bias"]))))
    expected = h * t + xn * (1.0 - t)
    np.testing.assert_allclose(np.asarray(layer.apply({"params": p}, x)), expected, atol=1e-5)
    assert not np.allclose(expected, xn, atol=1e-3)  # the test distinguishes H from carry


def test_closed_gate_carries_the_input() -> None:
    """T → 0 (very negative gate bias) makes the layer the identity; T → 1 gives H(x)."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)), jnp.float32)
    closed = Highway(3, gate_bias=-60.0)
    p = closed.init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_allclose(np.asarray(closed.apply({"params": p}, x)), np.asarray(x), atol=1e-6)
    opened = Highway(3, gate_bias=60.0)
    y = opened.apply({"params": p | {"t": {**p["t"], "bias": jnp.full((3,), 60.0)}}}, x)
    h = jax.nn.relu(jax.lax.conv_general_dilated(
        x, p["h"]["kernel"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        + p["h"]["bias"])
    np.testing.assert_allclose(np.asarray(y), np.asarray(h), atol=1e-5)


def test_network_gate_bias_option_reaches_every_layer() -> None:
    model = flaxnets.create_model("highway_fc", gate_bias=-3.0)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1))))
    gates = [k for k in params["params"] if "highway" in k]
    assert len(gates) == 49
    real = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
    for k in gates:
        assert np.all(np.asarray(real[k]["t"]["bias"]) == -3.0)


def test_derived_param_counts() -> None:
    # Sec. 3.1: highway layer of 50 blocks ≈ plain layer of 71 units (≈5000 params each).
    assert 2 * (50 * 50 + 50) == 5100 and 71 * 71 + 71 == 5112
    assert highway_param_count(((50, 49),), conv=False, in_ch=784) == 784 * 50 + 50 + 49 * 5100 + 510
    assert flaxnets.model_info("highway_fc").params == 289_660
    # CIFAR: plain 3→32, 2 H32, plain 32→48, H48, plain 48→80, 4 H80, plain 80→128, 4 H128, fc.
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
    hw = lambda c: 2 * conv(c, c)  # noqa: E731
    expected = (conv(3, 32) + 2 * hw(32) + conv(32, 48) + hw(48) + conv(48, 80) + 4 * hw(80)
                + conv(80, 128) + 4 * hw(128) + 128 * 10 + 10)
    assert expected == 1_863_658 == flaxnets.model_info("highway_cifar").params
    model = flaxnets.create_model("highway_cifar")
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    assert count_params(v["params"]) == expected
    # 15 convolutions: 4 plain + 11 highway.
    assert sum(1 for k in v["params"] if "highway" in k) == 11


def test_fc_first_layer_is_a_dense_layer_on_the_flattened_image() -> None:
    """highway_fc's whole-image convolution is the paper's 784 → 50 fully connected layer."""
    from flaxnets.features import FeatureExtractor

    model = flaxnets.create_model("highway_fc", num_classes=0)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 28, 28, 1)), jnp.float32)
    p = model.init(jax.random.PRNGKey(0), x)["params"]
    kernel = p["stage0.plain"]["kernel"]
    assert kernel.shape == (28, 28, 1, 50)
    # Highway layers with a closed gate carry their input: the map is the plain layer's output.
    closed = {k: (v | {"t": {**v["t"], "bias": jnp.full((50,), -60.0)}}) if "highway" in k else v
              for k, v in p.items()}
    (out,) = FeatureExtractor(model, ("stage0.highway48",)).apply({"params": closed}, x)
    dense = jax.nn.relu(x.reshape(2, 784) @ kernel.reshape(784, 50) + p["stage0.plain"]["bias"])
    assert out.shape == (2, 1, 1, 50)
    np.testing.assert_allclose(np.asarray(out).reshape(2, 50), np.asarray(dense), atol=1e-5)
    assert model.apply({"params": p}, x).shape == (2, 50)


def test_fc_recipe_gate_bias_keeps_the_signal_through_49_layers() -> None:
    """The cause of highway_fc staying at chance with a −2 gate bias: 49 layers carrying
    1 − σ(−2) ≈ 0.88 each pass 0.2 % of the signal (logits ≈ constant, loss ln 10). The recipe's
    bias (−4, 0.982^49 ≈ 41 %) keeps the logits spread at initialisation."""
    from train.configs.recipes import recipe_for

    bias = recipe_for("highway_fc")["model_overrides"]["gate_bias"]
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 28, 28, 1))
    model = flaxnets.create_model("highway_fc")
    params = cheap_jit(model.init)(jax.random.PRNGKey(0), x[:1])["params"]
    spread = {}
    apply = cheap_jit(lambda p: model.apply({"params": p}, x))
    for b in (-2.0, bias):  # the gate bias enters only the init: set it in place
        p = {k: {**v, "t": {**v["t"], "bias": jnp.full_like(v["t"]["bias"], b)}} if "highway" in k else v
             for k, v in params.items()}
        spread[b] = float(jnp.std(apply(p)))
    assert spread[-2.0] < 0.01 and spread[bias] > 0.05, spread
