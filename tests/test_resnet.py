"""ResNet-specific options: shortcut A/B/C, v1 stride placement, zero-init, stochastic depth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import random_variables
from flaxnets.summary import count_params


def _params(name: str, size: int = 32, **kw):
    model = flaxnets.create_model(name, **kw)
    x = jnp.zeros((1, size, size, 3))
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))["params"]


@pytest.mark.parametrize("name,paper_millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                                 ("resnet56", 0.85), ("resnet110", 1.7), ("resnet1202", 19.4)])
def test_cifar_counts_round_to_paper_table6(name: str, paper_millions: float) -> None:
    n = count_params(_params(name))
    assert n == flaxnets.model_info(name).params
    digits = 1 if paper_millions >= 1 else 2
    assert round(n / 1e6, digits) == paper_millions


def test_shortcut_options() -> None:
    a = _params("resnet20")  # option A: no projection parameters anywhere
    assert not any("downsample" in "/".join(map(str, p)) for p, _ in jax.tree_util.tree_leaves_with_path(a))
    b = _params("resnet20", shortcut="B")  # projections only where the shape changes (2 places)
    assert sorted(k for k in b if "downsample" in b[k]) == ["layer2.0", "layer3.0"]
    c = _params("resnet20", shortcut="C")  # projections on every block
    assert sum("downsample" in c[k] for k in c) == 9
    assert count_params(a) < count_params(b) < count_params(c)


def test_option_a_zero_pads_new_channels() -> None:
    from flaxnets.models.resnet import Shortcut

    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
    y = Shortcut(6, 2, "A", None, None).apply({}, x)
    assert y.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not np.any(y[..., :2]) and not np.any(y[..., 4:])


def test_v1_moves_stride_to_1x1() -> None:
    def shapes(name):
        model = flaxnets.create_model(name)
        out = {}

        def record(next_fun, args, kwargs, ctx):
            y = next_fun(*args, **kwargs)
            if ctx.method_name == "__call__" and ctx.module.path[:1] == ("layer2.0",):
                out["/".join(ctx.module.path)] = y.shape
            return y

        with __import__("flax.linen", fromlist=["x"]).intercept_methods(record):
            x = jnp.zeros((1, 64, 64, 3))
            jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
        return out

    v15, v1 = shapes("resnet50"), shapes("resnet50_v1")
    assert v15["layer2.0/conv1"][1] == 16 and v15["layer2.0/conv2"][1] == 8
    assert v1["layer2.0/conv1"][1] == 8 and v1["layer2.0/conv2"][1] == 8


def test_zero_init_last_makes_blocks_identity() -> None:
    model = flaxnets.create_model("resnet20", zero_init_last=True)
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    assert not np.any(v["params"]["layer1.0"]["bn2"]["scale"])
    assert np.all(v["params"]["layer1.0"]["bn1"]["scale"] == 1)


def test_stochastic_depth_linear_rates_and_train_only() -> None:
    model = flaxnets.create_model("resnet20", drop_path_rate=0.5)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 16, 16, 3)), jnp.float32)
    v = random_variables(model, x)
    rates = []

    def record(next_fun, args, kwargs, ctx):
        if type(ctx.module).__name__ == "DropPath" and ctx.method_name == "__call__":
            rates.append(ctx.module.rate)
        return next_fun(*args, **kwargs)

    with __import__("flax.linen", fromlist=["x"]).intercept_methods(record):
        e1 = model.apply(v, x, train=False)
    assert len(rates) == 9 and rates[0] == pytest.approx(0.5 / 9) and rates[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(e1, flaxnets.create_model("resnet20").apply(v, x, train=False), atol=1e-5)
    outs = [model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(i)})[0]
            for i in range(2)]
    assert not np.allclose(outs[0], outs[1])  # different blocks dropped per rng
