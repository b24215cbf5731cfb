"""SqueezeNet: the paper's bypass variants (Sec. 6) and their derived parameter counts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import flaxnets
from conftest import random_variables
from flaxnets.summary import count_params


def _shapes(name: str, size: int = 64, **kw):
    model = flaxnets.create_model(name, **kw)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


def _fire_params(cin: int, s: int, e: int) -> int:
    # squeeze 1×1, expand 1×1, expand 3×3 (all with bias)
    return cin * s + s + s * e + e + 9 * s * e + e


def test_squeezenet1_0_count_from_table1() -> None:
    # Table 1: conv1 7×7×96, fire2..fire9 (s1x1, e1x1 = e3x3), conv10 1×1×1000.
    fires = [(96, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128), (256, 48, 192),
             (384, 48, 192), (384, 64, 256), (512, 64, 256)]
    total = 7 * 7 * 3 * 96 + 96 + sum(_fire_params(*f) for f in fires) + 512 * 1000 + 1000
    assert total == flaxnets.model_info("squeezenet1_0").params
    assert count_params(_shapes("squeezenet1_0")["params"]) == total


def test_bypass_param_counts_and_placement() -> None:
    plain = traverse_util.flatten_dict(_shapes("squeezenet1_0")["params"])
    simple = traverse_util.flatten_dict(_shapes("squeezenet1_0_simple_bypass")["params"])
    complex_ = traverse_util.flatten_dict(_shapes("squeezenet1_0_complex_bypass")["params"])
    assert set(simple) == set(plain)  # identity bypass: no parameters
    extra = {k: v for k, v in complex_.items() if k not in plain}
    # 1×1 convs around fire2, fire4, fire6, fire8 (torchvision indices 3, 5, 8, 10).
    assert {k[0] for k in extra} == {"features.3", "features.5", "features.8", "features.10"}
    assert all(k[1] == "bypass" for k in extra)
    assert extra[("features.10", "bypass", "kernel")].shape == (1, 1, 384, 512)
    n_extra = count_params(extra)
    assert n_extra == 96 * 128 + 128 * 256 + 256 * 384 + 384 * 512 + 128 + 256 + 384 + 512
    assert count_params(complex_) == flaxnets.model_info("squeezenet1_0_complex_bypass").params


def test_simple_bypass_changes_the_function() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 47, 47, 3)), jnp.float32)
    plain = flaxnets.create_model("squeezenet1_0", num_classes=5)
    simple = flaxnets.create_model("squeezenet1_0_simple_bypass", num_classes=5)
    variables = random_variables(plain, x)
    a = plain.apply(variables, x)
    b = simple.apply(variables, x)  # same parameters, identity shortcuts added
    assert a.shape == b.shape == (1, 5)
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_bypass_option_validated() -> None:
    model = flaxnets.create_model("squeezenet1_1", bypass="residual")
    with pytest.raises(ValueError, match="bypass"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))


def test_squeezenet1_1_complex_bypass_widths() -> None:
    # v1.1 has the same fire widths; its fire2 bypass maps conv1's 64 channels to 128.
    params = traverse_util.flatten_dict(_shapes("squeezenet1_1", bypass="complex")["params"])
    assert params[("features.3", "bypass", "kernel")].shape == (1, 1, 64, 128)
    assert ("features.4", "bypass", "kernel") not in params
