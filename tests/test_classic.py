"""Classic families: LeNet-5, AlexNet, ZFNet, VGG, Network in Network.

Paper-only models have no twin, so their parameter counts are derived here layer by layer
from the papers' tables (the registry's ``params`` must equal these derivations), and
their distinctive pieces (C3's connection table, LRN, map sizes, VGG dense evaluation)
are checked directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

import flaxnets
from conftest import cheap_jit, random_input, random_variables
from flaxnets import layers
from flaxnets.models import lenet
from flaxnets.summary import count_params


def _param_shapes(name: str, size=None, **kw) -> dict:
    model = flaxnets.create_model(name, **kw)
    h, w, c = size or flaxnets.model_info(name).input_size
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, h, w, c))))["params"]


def _per_module(params: dict) -> dict[str, int]:
    return {k: count_params(v) for k, v in params.items()}


def _conv(k: int, c_in: int, c_out: int, groups: int = 1) -> int:
    return k * k * (c_in // groups) * c_out + c_out


def _fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# --- LeNet-5 -----------------------------------------------------------------------------

# Table 1 of LeCun et al. 1998 as printed: rows are S2 maps 0-5, columns C3 maps 0-15.
TABLE1 = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def test_lenet5_connection_table_is_table1() -> None:
    rows = [r for r in TABLE1.split() if r]
    expected = np.array([[ch == "X" for ch in r] for r in rows])
    mask = lenet.connection_mask()
    assert mask.shape == (6, 16)
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 60  # 60 kernels
    per_map = mask.sum(axis=0)
    # 6 maps from 3 contiguous S2 maps, 6 from 4 contiguous, 3 from 4 discontinuous, 1 from all.
    assert list(per_map) == [3] * 6 + [4] * 9 + [6]
    for j in range(6):
        assert set(np.flatnonzero(mask[:, j])) == {(j + d) % 6 for d in range(3)}
    for j in range(6, 12):
        assert set(np.flatnonzero(mask[:, j])) == {(j - 6 + d) % 6 for d in range(4)}


def test_lenet5_c3_only_reads_connected_maps() -> None:
    """d C3_j / d S2_i is zero exactly where Table 1 has no X."""
    conv = lenet.PartialConv()
    x = jnp.asarray(random_input((1, 14, 14, 6)))
    variables = conv.init(jax.random.PRNGKey(0), x)
    assert variables["params"]["kernel"].shape == (5, 5, 60)
    reads = np.zeros((6, 16), bool)
    for j in range(16):
        g = jax.grad(lambda x, j=j: conv.apply(variables, x)[..., j].sum())(x)
        reads[:, j] = np.abs(np.asarray(g)).sum(axis=(0, 1, 2)) > 0
    np.testing.assert_array_equal(reads, lenet.connection_mask())


def test_lenet5_param_count_derivation() -> None:
    """Paper Sec. II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164; + output."""
    c1 = 6 * (5 * 5 * 1 + 1)  # 156
    s2 = 6 * 2  # one coefficient and one bias per map: 12
    c3 = 60 * 5 * 5 + 16  # 60 kernels of Table 1 + 16 biases: 1,516
    s4 = 16 * 2  # 32
    c5 = 120 * (16 * 5 * 5 + 1)  # 48,120
    f6 = 84 * (120 + 1)  # 10,164
    out = 10 * (84 + 1)  # dense output instead of RBF: 850
    assert (c1, s2, c3, s4, c5, f6) == (156, 12, 1_516, 32, 48_120, 10_164)
    counts = _per_module(_param_shapes("lenet5"))
    assert counts == {"C1": c1, "S2": s2, "C3": c3, "S4": s4, "C5": c5, "F6": f6, "output": out}
    assert flaxnets.model_info("lenet5").params == c1 + s2 + c3 + s4 + c5 + f6 + out == 60_850


def test_lenet5_subsampling_and_squash() -> None:
    x = jnp.asarray(random_input((2, 4, 4, 3)))
    layer = lenet.Subsample()
    coef, bias = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.1, 0.0, -0.3])
    y = layer.apply({"params": {"coef": coef, "bias": bias}}, x)
    xs = np.asarray(x).reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    expected = 1.7159 * np.tanh(2.0 / 3.0 * (xs * np.asarray(coef) + np.asarray(bias)))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)


def test_lenet5_rejects_other_sizes() -> None:
    model = flaxnets.create_model("lenet5")
    with pytest.raises(ValueError, match="32×32"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1))))


# --- LRN ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 4])
def test_lrn_matches_torch(size: int) -> None:
    torch = pytest.importorskip("torch")
    x = random_input((2, 13, 6, 5)) * 10.0  # NCHW, 13 channels, large enough to matter
    for alpha, beta, k in ((1e-4, 0.75, 2.0), (1e-1, 0.5, 1.0)):
        ref = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(torch.from_numpy(x)).numpy()
        lrn = layers.LocalResponseNorm(size, alpha, beta, k, alpha_over_size=True)
        got = np.asarray(lrn.apply({}, jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_lrn_paper_formula() -> None:
    """Krizhevsky et al. Sec. 3.3: b_i = a_i / (k + α Σ_{j=max(0,i−n/2)}^{min(N−1,i+n/2)} a_j²)^β."""
    n, alpha, beta, k = 5, 1e-2, 0.75, 2.0
    a = random_input((2, 3, 4, 11)) * 5.0  # NHWC, N = 11 channels
    expected = np.empty_like(a)
    for i in range(11):
        lo, hi = max(0, i - n // 2), min(10, i + n // 2)
        s = (a[..., lo:hi + 1] ** 2).sum(-1)
        expected[..., i] = a[..., i] / (k + alpha * s) ** beta
    got = layers.LocalResponseNorm(n, alpha, beta, k, alpha_over_size=False).apply({}, jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


# --- AlexNet -----------------------------------------------------------------------------


def test_alexnet_paper_param_count_derivation() -> None:
    """Sec. 3.5 / Fig. 2: conv2, conv4, conv5 see only their GPU's half of the maps."""
    expected = {
        "conv1": _conv(11, 3, 96),  # 34,944
        "conv2": _conv(5, 96, 256, groups=2),  # 5·5·48·256 + 256 = 307,456
        "conv3": _conv(3, 256, 384),  # all maps of layer 2: 885,120
        "conv4": _conv(3, 384, 384, groups=2),  # 3·3·192·384 + 384 = 663,936
        "conv5": _conv(3, 384, 256, groups=2),  # 3·3·192·256 + 256 = 442,624
        "fc6": _fc(6 * 6 * 256, 4096),  # 37,752,832
        "fc7": _fc(4096, 4096),  # 16,781,312
        "fc8": _fc(4096, 1000),  # 4,097,000
    }
    params = _param_shapes("alexnet_paper")
    assert _per_module(params) == expected
    assert params["conv2"]["kernel"].shape == (5, 5, 48, 256)
    assert sum(expected.values()) == flaxnets.model_info("alexnet_paper").params == 60_965_224
    assert abs(sum(expected.values()) - 60e6) / 60e6 < 0.02  # "60 million parameters"


def test_alexnet_paper_map_sizes() -> None:
    rows = {path: shape[1:] for path, shape, _ in flaxnets.summary("alexnet_paper", flops=False).rows}
    assert rows["conv1"] == (55, 55, 96)
    assert rows["conv2"] == (27, 27, 256)
    assert rows["conv3"] == rows["conv4"] == (13, 13, 384)
    assert rows["conv5"] == (13, 13, 256)
    assert "55×55×96" in str(flaxnets.summary("alexnet_paper", flops=False))


def test_alexnet_paper_lrn_uses_paper_alpha() -> None:
    """norm1 divides by (2 + 1e-4·Σa²)^0.75, not Caffe's α/n."""
    model = flaxnets.create_model("alexnet_paper")
    x = jnp.asarray(random_input((1, 224, 224, 3)))
    v = random_variables(model, x)
    _, state = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
    conv1 = np.maximum(np.asarray(state["intermediates"]["conv1"]["__call__"][0]), 0.0) * 30.0
    got = layers.LocalResponseNorm(5, 1e-4, 0.75, 2.0).apply({}, jnp.asarray(conv1))
    caffe = layers.LocalResponseNorm(5, 1e-4, 0.75, 2.0, alpha_over_size=True).apply({}, jnp.asarray(conv1))
    assert not np.allclose(np.asarray(got), np.asarray(caffe), rtol=1e-4)
    assert model.apply(v, x).shape == (1, 1000)


# --- ZFNet -------------------------------------------------------------------------------


def test_zfnet_map_sizes_match_fig3() -> None:
    model = flaxnets.create_model("zfnet")
    x = jnp.zeros((1, 224, 224, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    _, state = jax.eval_shape(
        lambda v: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), v)
    out = {k: m["__call__"][0].shape[1:] for k, m in state["intermediates"].items() if k != "__call__"}
    assert out["conv1"] == (110, 110, 96)
    assert out["norm1"] == (55, 55, 96)  # after the 3×3/2 pool
    assert out["conv2"] == (26, 26, 256)
    assert out["norm2"] == (13, 13, 256)
    assert out["conv3"] == out["conv4"] == (13, 13, 384) and out["conv5"] == (13, 13, 256)
    assert v["params"]["fc6"]["kernel"].shape == (6 * 6 * 256, 4096)  # pool5: 6×6×256


def test_zfnet_param_count_derivation() -> None:
    expected = {
        "conv1": _conv(7, 3, 96), "conv2": _conv(5, 96, 256), "conv3": _conv(3, 256, 384),
        "conv4": _conv(3, 384, 384), "conv5": _conv(3, 384, 256),
        "fc6": _fc(6 * 6 * 256, 4096), "fc7": _fc(4096, 4096), "fc8": _fc(4096, 1000),
    }
    assert _per_module(_param_shapes("zfnet")) == expected
    assert sum(expected.values()) == flaxnets.model_info("zfnet").params == 62_357_608


# --- VGG ---------------------------------------------------------------------------------


def _vgg_count(convs: list[tuple[int, int, int]]) -> int:
    """(kernel, in, out) convs + FC 7·7·512-4096-4096-1000."""
    return sum(_conv(k, i, o) for k, i, o in convs) + _fc(7 * 7 * 512, 4096) + _fc(4096, 4096) + _fc(4096, 1000)


def test_vgg_paper_only_counts() -> None:
    a = [(3, 3, 64), (3, 64, 128), (3, 128, 256), (3, 256, 256), (3, 256, 512), (3, 512, 512),
         (3, 512, 512), (3, 512, 512)]
    c = [(3, 3, 64), (3, 64, 64), (3, 64, 128), (3, 128, 128), (3, 128, 256), (3, 256, 256),
         (1, 256, 256), (3, 256, 512), (3, 512, 512), (1, 512, 512), (3, 512, 512), (3, 512, 512),
         (1, 512, 512)]
    assert flaxnets.model_info("vgg11_lrn").params == _vgg_count(a) == 132_863_336  # LRN: no params
    assert flaxnets.model_info("vgg16_c").params == _vgg_count(c) == 133_638_952
    assert count_params(_param_shapes("vgg16_c")) == _vgg_count(c)
    assert _param_shapes("vgg16_c")["features.14"]["kernel"].shape == (1, 1, 256, 256)
    # Table 2 (millions): A, A-LRN, B 133; C 134; D 138; E 144.
    for name, millions in (("vgg11", 133), ("vgg11_lrn", 133), ("vgg13", 133), ("vgg16_c", 134),
                           ("vgg16", 138), ("vgg19", 144)):
        assert round(flaxnets.model_info(name).params / 1e6) == millions


def test_vgg11_lrn_has_lrn_after_first_conv() -> None:
    model = flaxnets.create_model("vgg11_lrn", num_classes=3)
    x = jnp.zeros((1, 32, 32, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    _, state = jax.eval_shape(
        lambda v: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), v)
    assert "features.2" in state["intermediates"] and "features.2" not in v["params"]


def test_vgg_init_is_the_twins() -> None:
    """torchvision's VGG init: every Linear N(0, 0.01²) with zero bias (FC6 included, whose
    PyTorch default would be 2.7× smaller), convs He fan-out."""
    model = flaxnets.create_model("vgg11", num_classes=10)
    params = cheap_jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]
    for name in ("classifier.0", "classifier.3", "classifier.6"):
        kernel = np.asarray(params[name]["kernel"])
        assert abs(kernel.std() - 0.01) < 0.01 * 0.03, name  # PyTorch default: 0.0036 (FC6), 0.009 (FC7, FC8)
        assert not np.asarray(params[name]["bias"]).any()
    assert abs(np.asarray(params["features.0"]["kernel"]).std() - np.sqrt(2 / (9 * 64))) < 0.006


def test_vgg_dense_evaluation() -> None:
    """Sec. 3.2: FCs as convs with the same parameters; at 224 it equals the plain net."""
    plain = flaxnets.create_model("vgg11", num_classes=5)
    dense = flaxnets.create_model("vgg11", num_classes=5, dense=True)
    x = jnp.asarray(random_input((1, 224, 224, 3)))
    v_plain = jax.eval_shape(lambda: plain.init(jax.random.PRNGKey(0), x))
    v_dense = jax.eval_shape(lambda: dense.init(jax.random.PRNGKey(0), x))
    assert jax.tree_util.tree_structure(v_plain) == jax.tree_util.tree_structure(v_dense)
    assert jax.tree_util.tree_map(lambda a: a.shape, v_plain) == jax.tree_util.tree_map(
        lambda a: a.shape, v_dense)
    v = random_variables(plain, x)
    # A generic FC6 kernel (not symmetric in C/H/W) so a wrong reshape order shows up.
    want = np.asarray(jax.jit(lambda v, x: plain.apply(v, x))(v, x))
    got = np.asarray(jax.jit(lambda v, x: dense.apply(v, x))(v, x))
    assert got.shape == want.shape == (1, 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # Any input ≥ 224: the class score map is averaged into (B, classes).
    big = jax.eval_shape(lambda v: dense.apply(v, jnp.zeros((2, 288, 320, 3))), v_dense)
    assert big.shape == (2, 5)
    with pytest.raises(ValueError, match="7×7"):
        jax.eval_shape(lambda v: dense.apply(v, jnp.zeros((1, 192, 192, 3))), v_dense)


def test_vgg_dense_averages_the_score_map() -> None:
    """At 256×256 the score map is 2×2; the logits are its mean (checked via FC8's bias)."""
    dense = flaxnets.create_model("vgg11", num_classes=4, dense=True, drop_rate=0.0)
    x = jnp.asarray(random_input((1, 256, 256, 3)))
    v = random_variables(dense, x)
    flat = traverse_util.flatten_dict(v)
    flat[("params", "classifier.6", "bias")] = flat[("params", "classifier.6", "bias")] + 7.0
    out0 = np.asarray(dense.apply(v, x))
    out1 = np.asarray(dense.apply(traverse_util.unflatten_dict(flat), x))
    np.testing.assert_allclose(out1 - out0, 7.0, atol=1e-4)


def test_vgg_pre_logits_plain_and_dense() -> None:
    """num_classes=0 drops only classifier.6: FC7's ReLU output, spatially averaged when dense."""
    plain = flaxnets.create_model("vgg11", num_classes=5)
    x = jnp.asarray(random_input((1, 256, 256, 3)))
    v = random_variables(plain, x)
    fc8 = v["params"]["classifier.6"]
    kept = {"params": {k: p for k, p in v["params"].items() if k != "classifier.6"}}
    pooled = np.asarray(flaxnets.create_model("vgg11", num_classes=0).apply(kept, x))
    assert pooled.shape == (1, 4096) and (pooled >= 0).all()
    np.testing.assert_allclose(pooled @ np.asarray(fc8["kernel"]) + np.asarray(fc8["bias"]),
                               np.asarray(plain.apply(v, x)), rtol=1e-4, atol=1e-4)
    # Dense at 256: a 2×2 FC7 map; its mean through FC8 is the dense logits (FC8 is linear).
    dense = flaxnets.create_model("vgg11", num_classes=5, dense=True)
    dense_pooled = np.asarray(flaxnets.create_model("vgg11", num_classes=0, dense=True).apply(kept, x))
    assert dense_pooled.shape == (1, 4096)
    np.testing.assert_allclose(dense_pooled @ np.asarray(fc8["kernel"]) + np.asarray(fc8["bias"]),
                               np.asarray(dense.apply(v, x)), rtol=1e-4, atol=1e-4)
    assert flaxnets.model_info("vgg11").dense_eval == {"dense": True}


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "alexnet_paper", "zfnet", "nin_cifar10"])
def test_pre_logits_feed_the_classifier(name: str) -> None:
    """num_classes=0 returns exactly what the (linear) classifier reads: logits = pooled·W + b."""
    info = flaxnets.model_info(name)
    model = flaxnets.create_model(name)
    x = jnp.asarray(random_input((2, *info.input_size)))
    v = random_variables(model, x)
    (head,) = info.classifier
    kept = {"params": {k: p for k, p in v["params"].items() if k != head}}
    pooled = np.asarray(flaxnets.create_model(name, num_classes=0).apply(kept, x))
    assert pooled.shape == (2, info.num_features)
    w, b = np.asarray(v["params"][head]["kernel"]), np.asarray(v["params"][head]["bias"])
    logits = np.asarray(model.apply(v, x))
    np.testing.assert_allclose(pooled @ w.reshape(-1, w.shape[-1]) + b, logits, rtol=1e-4, atol=1e-4)


# --- Network in Network ------------------------------------------------------------------


def test_nin_param_counts_derivation() -> None:
    cifar = {
        "conv1": _conv(5, 3, 192), "cccp1": _conv(1, 192, 160), "cccp2": _conv(1, 160, 96),
        "conv2": _conv(5, 96, 192), "cccp3": _conv(1, 192, 192), "cccp4": _conv(1, 192, 192),
        "conv3": _conv(3, 192, 192), "cccp5": _conv(1, 192, 192), "cccp6": _conv(1, 192, 10),
    }
    assert _per_module(_param_shapes("nin_cifar10")) == cifar
    assert sum(cifar.values()) == flaxnets.model_info("nin_cifar10").params == 966_986
    imagenet = {
        "conv1": _conv(11, 3, 96), "cccp1": _conv(1, 96, 96), "cccp2": _conv(1, 96, 96),
        "conv2": _conv(5, 96, 256), "cccp3": _conv(1, 256, 256), "cccp4": _conv(1, 256, 256),
        "conv3": _conv(3, 256, 384), "cccp5": _conv(1, 384, 384), "cccp6": _conv(1, 384, 384),
        "conv4-1024": _conv(3, 384, 1024), "cccp7-1024": _conv(1, 1024, 1024),
        "cccp8-1024": _conv(1, 1024, 1000),
    }
    assert _per_module(_param_shapes("nin")) == imagenet
    assert sum(imagenet.values()) == flaxnets.model_info("nin").params == 7_595_176


def test_nin_map_sizes_and_gap() -> None:
    for name, size, maps in (("nin_cifar10", (32, 32, 3), {"conv2": 16, "conv3": 8, "cccp6": 8}),
                             ("nin", (224, 224, 3), {"conv1": 54, "conv2": 27, "conv3": 13,
                                                     "conv4-1024": 6})):
        model = flaxnets.create_model(name)
        x = jnp.zeros((2, *size))
        v = jax.eval_shape(lambda m=model, x=x: m.init(jax.random.PRNGKey(0), x))
        out, state = jax.eval_shape(
            lambda v, m=model, x=x: m.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), v)
        assert out.shape == (2, model.num_classes)
        for layer, hw in maps.items():
            assert state["intermediates"][layer]["__call__"][0].shape[1:3] == (hw, hw), (name, layer)


def test_nin_logits_are_class_map_means() -> None:
    model = flaxnets.create_model("nin_cifar10")
    x = jnp.asarray(random_input((2, 32, 32, 3)))
    v = random_variables(model, x)
    logits, state = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
    maps = np.asarray(state["intermediates"]["cccp6"]["__call__"][0])
    np.testing.assert_allclose(np.asarray(logits), maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    assert (maps < 0).any()  # no ReLU on the class maps by default
    relu = flaxnets.create_model("nin_cifar10", relu_last=True)
    assert (np.asarray(relu.apply(v, x)) >= 0).all()


# --- Registry metadata and recipes -------------------------------------------------------


def test_classic_metadata() -> None:
    assert flaxnets.model_info("alexnet_paper").top1 == pytest.approx(59.3)
    assert flaxnets.model_info("nin_cifar10").top1 == pytest.approx(89.59)
    assert flaxnets.model_info("lenet5").input_size == (32, 32, 1)
    assert flaxnets.model_info("lenet5").num_classes == flaxnets.model_info("nin_cifar10").num_classes == 10
    assert flaxnets.model_info("alexnet").min_size == 63
    for name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "vgg13"):
        assert flaxnets.model_info(name).twin == f"torchvision:{name}"


def test_classic_recipes_use_known_fields() -> None:
    from train.configs import default
    from train.configs.recipes import recipe_for

    fields = set(default.get_config().keys())
    for arch in ("lenet5", "alexnet", "alexnet_paper", "zfnet", "vgg16", "vgg11_bn", "nin", "nin_cifar10"):
        recipe = recipe_for(arch)
        assert recipe, arch
        assert set(recipe) <= fields, (arch, set(recipe) - fields)
    assert recipe_for("alexnet")["pca_lighting"] == 0.1
    assert recipe_for("vgg16")["scale_jitter_range"] == (256, 512)
    # A/B were trained at a fixed S = 256 (Table 3); Q then follows S (Sec. 4.2).
    assert recipe_for("vgg13")["scale_jitter_range"] == recipe_for("vgg11_lrn")["scale_jitter_range"] == (256, 256)
    assert "multiscale_sizes" not in recipe_for("vgg11") and "multiscale_sizes" not in recipe_for("vgg19")
    assert recipe_for("vgg16")["batch_size"] == 256


def test_zfnet_filter_renormalisation() -> None:
    """ZFNet Sec. 3: after each step, conv filters whose RMS exceeds the radius are scaled back
    onto it (conv1's radius in our input units, 0.1 for conv2-5), FC layers and biases are not,
    and filters within the radius keep their update exactly."""
    from train import optim
    from train.configs.default import get_config
    from train.loop import apply_recipe

    cfg = get_config()
    cfg.arch = "zfnet"
    cfg = apply_recipe(cfg)
    entries = tuple(cfg.filter_rms_radius)
    # Which leaves are capped, on the real model's parameter names and shapes.
    shapes = _param_shapes("zfnet")
    flat = traverse_util.flatten_dict(optim.filter_radii(shapes, entries), sep="/")
    capped = {k: r for k, r in flat.items() if r}
    assert capped == {"conv1/kernel": pytest.approx(0.1 * 255 * 0.226, rel=1e-3),
                      **{f"conv{i}/kernel": 0.1 for i in range(2, 6)}}

    # The recipe's optimiser on a small tree with ZFNet's names: conv1 filter 0 starts at RMS 9
    # (> 5.76) and filter 1 at 1 (< 5.76); conv2's filter 0 at 0.05, pushed past 0.1 by the step.
    rng = np.random.default_rng(0)
    unit = lambda *s: (lambda a: a / np.sqrt(np.mean(a**2, axis=(0, 1, 2), keepdims=True)))(rng.normal(size=s))
    conv1 = unit(3, 3, 2, 2) * np.array([9.0, 1.0])
    conv2 = unit(1, 1, 2, 3) * 0.05
    params = {"conv1": {"kernel": jnp.asarray(conv1, jnp.float32), "bias": jnp.full((2,), 50.0)},
              "conv2": {"kernel": jnp.asarray(conv2, jnp.float32), "bias": jnp.zeros((3,))},
              "fc6": {"kernel": jnp.full((4, 3), 30.0), "bias": jnp.zeros((3,))}}
    grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    grads["conv2"]["kernel"] = -jnp.asarray(conv2, jnp.float32) * 500.0  # lr 0.01 → ×6 = RMS 0.3
    cfg.batch_size, cfg.weight_decay, cfg.momentum = 128, 0.0, 0.0
    tx, _ = optim.make_optimizer(cfg, params, steps_per_epoch=10, total_steps=100)
    updates, _ = tx.update(grads, tx.init(params), params, value=jnp.asarray(1.0))  # its plateau schedule
    new = optax.apply_updates(params, updates)
    rms = lambda k: np.sqrt(np.mean(np.asarray(k) ** 2, axis=(0, 1, 2)))
    np.testing.assert_allclose(rms(new["conv1"]["kernel"]), [5.76, 1.0], rtol=1e-5)
    np.testing.assert_allclose(rms(new["conv2"]["kernel"]), [0.1] * 3, rtol=1e-5)
    # Directions are kept; filter 1 of conv1 (within radius, zero gradient) and every non-conv
    # leaf (far beyond any radius) get their plain update, here none.
    np.testing.assert_allclose(new["conv1"]["kernel"][..., 0], conv1[..., 0] * 5.76 / 9.0, rtol=1e-5)
    assert float(jnp.abs(updates["conv1"]["kernel"][..., 1]).max()) == 0.0
    for leaf in ("conv1/bias", "fc6/kernel", "fc6/bias", "conv2/bias"):
        a, b = leaf.split("/")
        assert float(jnp.abs(updates[a][b]).max()) == 0.0, leaf
    # Off without entries, and a bad entry is refused with its name.
    assert optim.filter_radii(params, ()) is None
    with pytest.raises(ValueError, match="filter_rms_radius entry 'conv1=0'"):
        optim.parse_filter_radius(("conv1=0",))
    from train import validate

    cfg.filter_rms_radius = ("conv1=x",)
    assert any("filter_rms_radius entry 'conv1=x'" in p for p in validate.finetune_problems(cfg))
    cfg.filter_rms_radius = ("conv9=0.1",)
    assert any("filter_rms_radius pattern 'conv9'" in p for p in validate.param_pattern_problems(cfg, shapes))
