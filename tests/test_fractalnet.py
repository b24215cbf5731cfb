"""FractalNet: fractal structure, derived count, single-column eval, drop-path behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import cheap_jit
from flaxnets.models.fractalnet import FractalNet, column_ends, fractal_param_count, join, local_drop_mask
from flaxnets.summary import count_params

SMALL = dict(channels=(4, 8), columns=3, proj_drop_rate=(0.0, 0.0), num_classes=5)


def _x(shape=(2, 8, 8, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_fractal_structure_and_depth() -> None:
    model = flaxnets.create_model("fractalnet_cifar")
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    blocks = [k for k in v["params"] if k.startswith("block")]
    assert blocks == [f"block{b}" for b in range(1, 6)]
    for b in blocks:
        units = list(v["params"][b])
        for c in range(1, 5):  # column c has 2^(c-1) convs
            assert sorted(u for u in units if u.startswith(f"col{c}.")) == [
                f"col{c}.{i}" for i in range(2 ** (c - 1))]
        assert len(units) == 2**4 - 1
    assert 5 * 2 ** (4 - 1) == 40  # deepest path: 40 conv layers
    # Joins: at step 2 columns 3 and 4 meet, at step 8 all four (f_{C+1} = join(f_C∘f_C, conv)).
    assert column_ends(1, 4) == [4] and column_ends(2, 4) == [3, 4]
    assert column_ends(4, 4) == [2, 3, 4] and column_ends(8, 4) == [1, 2, 3, 4]


def test_derived_param_count() -> None:
    expected, c_in = 0, 3
    for c in (64, 128, 256, 512, 512):
        # 4 convs read the block input, 11 read the block's own width; BN scale + bias each.
        expected += 4 * 9 * c_in * c + 11 * 9 * c * c + 15 * 2 * c
        c_in = c
    expected += 512 * 10 + 10
    assert expected == fractal_param_count((64, 128, 256, 512, 512), 4) == 76_106_634
    assert flaxnets.model_info("fractalnet_cifar").params == expected
    model = FractalNet(**SMALL)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), _x()))
    assert count_params(v["params"]) == fractal_param_count((4, 8), 3, num_classes=5)


def _generator_count(columns: int, filters=(64, 128, 256, 512, 512), classes: int = 10) -> int:
    """Parameters of the authors' Caffe network (gustavla/fractalnet ``generation/fractalnet.py``
    walked step by step: column c (0 = shallowest) convolves at steps ``step`` with
    ``(step + 1) % 2^(C-1-c) == 0``; ``globals.crox``: 3×3 conv with bias, BatchNorm with no
    learned parameters, InnerProduct with bias)."""
    total, c_in = 0, 3
    for f in filters:
        bottoms = [c_in] * columns  # each column's current input width
        for step in range(2 ** (columns - 1)):
            for c in range(columns):
                if (step + 1) % 2 ** (columns - 1 - c) == 0:
                    total += 9 * bottoms[c] * f + f
                    bottoms[c] = f
        c_in = f
    return total + c_in * classes + classes


def test_counts_against_table_1_and_the_authors_code() -> None:
    """Table 1 quotes 38.6M (20 layers, C = 3) and 22.9M (40 layers, C = 4). The widths of
    Sec. 4 and of the authors' generator give 33.7M / 76.1M with our units (conv without
    bias + BN scale/shift) and 33.71M / 76.08M with theirs (conv bias, BN without affine):
    the difference between the two unit conventions is 2·c − c per conv, i.e. c per conv."""
    ours20 = flaxnets.model_info("fractalnet20_cifar").params
    ours40 = flaxnets.model_info("fractalnet_cifar").params
    assert ours20 == fractal_param_count((64, 128, 256, 512, 512), 3) == 33_724_618
    assert ours40 == 76_106_634
    per_conv_c = sum(c for c in (64, 128, 256, 512, 512))
    assert ours20 - _generator_count(3) == 7 * per_conv_c  # 2^3 − 1 convs per block
    assert ours40 - _generator_count(4) == 15 * per_conv_c
    # Neither convention reproduces Table 1: 38.6M − 33.7M ≈ 4.9M, and 22.9M < the C = 3 count.
    assert abs(_generator_count(3) - 38.6e6) > 4.8e6 and _generator_count(4) > 3 * 22.9e6
    assert count_params(jax.eval_shape(lambda: flaxnets.create_model("fractalnet20_cifar").init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))["params"]) == ours20


def _unit(p, s, z):
    y = jax.lax.conv_general_dilated(z, p["conv"]["kernel"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = (y - s["bn"]["mean"]) / jnp.sqrt(s["bn"]["var"] + 1e-5) * p["bn"]["scale"] + p["bn"]["bias"]
    return jax.nn.relu(y)


@pytest.mark.parametrize("column", [1, 2, 3])
def test_single_column_eval_is_a_plain_chain(column: int) -> None:
    x = _x()
    full = FractalNet(**SMALL)
    v = cheap_jit(full.init)(jax.random.PRNGKey(0), x)
    rng = np.random.default_rng(3)  # non-trivial BN statistics
    stats = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), a.dtype),
                                   v["batch_stats"])
    v = {"params": v["params"], "batch_stats": stats}
    got = cheap_jit(lambda v: FractalNet(**SMALL, eval_column=column).apply(v, x, train=False))(v)
    z = x
    for b in ("block1", "block2"):
        for i in range(2 ** (column - 1)):
            name = f"col{column}.{i}"
            z = _unit(v["params"][b][name], v["batch_stats"][b][name], z)
        z = z.reshape(z.shape[0], z.shape[1] // 2, 2, z.shape[2] // 2, 2, z.shape[3]).max(axis=(2, 4))
    z = z.mean(axis=(1, 2)) @ v["params"]["fc"]["kernel"] + v["params"]["fc"]["bias"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(z), rtol=1e-5, atol=1e-5)
    whole = cheap_jit(lambda v: full.apply(v, x, train=False))(v)
    assert not np.allclose(np.asarray(whole), np.asarray(got), atol=1e-4)


def test_dropout_comes_before_batchnorm() -> None:
    """The authors' unit is conv → dropout → BatchNorm → ReLU (``globals.crox``): in training
    the BatchNorm normalises the dropped-out convolution, whose variance dropout 0.5 doubles
    (zero-mean input, inverted scaling); dropout after it would leave it as without dropout."""
    from flaxnets import layers
    from flaxnets.models.fractalnet import FractalUnit

    x = _x((16, 8, 8, 3))

    def bn_var(rate: float) -> np.ndarray:
        unit = FractalUnit(64, layers.make_conv(), layers.batch_norm(True), rate)
        v = unit.init(jax.random.PRNGKey(0), x, False)
        _, new = unit.apply(v, x, True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(1)})
        return np.asarray(new["batch_stats"]["bn"]["var"] - 0.9 * v["batch_stats"]["bn"]["var"]) / 0.1

    ratio = bn_var(0.5) / bn_var(0.0)
    assert 1.6 < float(np.median(ratio)) < 2.4, ratio


def test_join_and_local_mask() -> None:
    a, b, c = jnp.full((2,), 1.0), jnp.full((2,), 3.0), jnp.full((2,), 8.0)
    np.testing.assert_allclose(join([a, b, c]), np.full((2,), 4.0))
    np.testing.assert_allclose(join([a, b, c], jnp.array([True, False, True])), np.full((2,), 4.5))
    for seed in range(20):
        key = jax.random.PRNGKey(seed)
        assert int(local_drop_mask(key, 4, 1.0).sum()) == 1  # all dropped → keep one
        assert bool(local_drop_mask(key, 4, 0.0).all())
    kept = np.mean([np.asarray(local_drop_mask(jax.random.PRNGKey(s), 4, 0.15)) for s in range(400)])
    assert 0.8 < kept < 0.9  # ≈ 1 - 0.15 (+ the keep-one rule)


def _grad_fn(model, x):
    """Jitted ``key -> grads`` of a train-mode loss (one compile; eager dispatch is slow)."""
    v = cheap_jit(model.init)(jax.random.PRNGKey(0), x)

    @cheap_jit
    def grads(key):
        def loss(p):
            out, _ = model.apply({"params": p, "batch_stats": v["batch_stats"]}, x, train=True,
                                 mutable=["batch_stats"], rngs={"dropout": key})
            return jnp.sum(out**2)

        return jax.grad(loss)(v["params"])

    return grads


def _live_columns(grads) -> set[int]:
    live = set()
    for b in ("block1", "block2"):
        for name, g in grads[b].items():
            if any(np.any(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(g)):
                live.add(int(name[3:].split(".")[0]))
    return live


def test_global_drop_path_trains_one_column() -> None:
    x = _x()
    model = FractalNet(**SMALL, global_drop_rate=1.0)
    chosen = set()
    grads = _grad_fn(model, x)
    for seed in range(6):
        live = _live_columns(grads(jax.random.PRNGKey(seed)))
        assert len(live) == 1, live
        chosen |= live
    assert len(chosen) >= 2  # the column is sampled, not fixed


def test_local_drop_path_in_train_mode_only() -> None:
    x = _x()
    plain = _live_columns(_grad_fn(FractalNet(**SMALL), x)(jax.random.PRNGKey(0)))
    assert plain == {1, 2, 3}
    model = FractalNet(**SMALL, local_drop_rate=1.0)  # every join keeps exactly one input
    v = cheap_jit(model.init)(jax.random.PRNGKey(0), x)
    train = cheap_jit(lambda key: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": key})[0])
    outs = {tuple(np.round(np.asarray(train(jax.random.PRNGKey(s))).ravel(), 4)) for s in range(6)}
    assert len(outs) > 1  # random paths
    e1 = cheap_jit(lambda v: model.apply(v, x, train=False))(v)
    e2 = cheap_jit(lambda v: FractalNet(**SMALL).apply(v, x, train=False))(v)
    np.testing.assert_allclose(np.asarray(e1), np.asarray(e2))  # no drop-path in evaluation


def test_recipe_regularises_the_row_each_model_cites() -> None:
    """Sec. 4.1 uses dropout (0-40 % per block) only "for experiments using dropout": the model
    has none by default (a train step needs no rng), the 20-layer recipe adds dropout and
    drop-path for its "+ drop-path + dropout" row, the 40-layer recipe neither (a plain row)."""
    from train.configs.recipes import recipe_for

    model = FractalNet(channels=(4, 8), columns=3, num_classes=5)
    x = _x()
    v = model.init(jax.random.PRNGKey(0), x)
    out, _ = model.apply(v, x, train=True, mutable=["batch_stats"])  # no "dropout" rng needed
    assert out.shape == (2, 5)
    assert flaxnets.create_model("fractalnet20_cifar").proj_drop_rate is None
    plain, regularised = recipe_for("fractalnet_cifar"), recipe_for("fractalnet20_cifar")
    assert regularised["model_overrides"] == {"local_drop_rate": 0.15, "global_drop_rate": 0.5,
                                              "proj_drop_rate": (0.0, 0.1, 0.2, 0.3, 0.4)}
    assert not dict(plain.get("model_overrides") or {})
    # PreciseBN where the trained sub-networks differ from the evaluated one (recipe docstring).
    assert (regularised["precise_bn_samples"], plain.get("precise_bn_samples", 0)) == (8192, 0)
