"""Shared layers against PyTorch semantics and their defining formulas."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_input
from flaxnets import layers


def _torch():
    torch = pytest.importorskip("torch")
    return torch


@pytest.mark.parametrize("size,k,s,p,ceil", [(13, 3, 2, 0, True), (14, 3, 2, 0, True), (15, 3, 2, 1, False),
                                             (112, 3, 2, 1, False), (28, 2, 2, 0, True), (7, 3, 2, 1, True)])
def test_pools_match_torch(size: int, k: int, s: int, p: int, ceil: bool) -> None:
    torch = _torch()
    x = random_input((2, 3, size, size + 3))
    xt = torch.from_numpy(x)
    xj = jnp.asarray(x.transpose(0, 2, 3, 1))
    expected = torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=ceil).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layers.max_pool(xj, k, s, p, ceil_mode=ceil), expected, atol=1e-6)
    for include in (True, False):
        expected = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=include)
        got = layers.avg_pool(xj, k, s, p, ceil_mode=ceil, count_include_pad=include)
        np.testing.assert_allclose(got, expected.numpy().transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize("size,k,s,p,ceil", [(13, 3, 2, 0, True), (15, 3, 2, 1, False), (9, 3, 1, 1, False),
                                             (8, 2, 2, 0, False)])
def test_max_pool_cpu_gradient_matches_native(size: int, k: int, s: int, p: int, ceil: bool) -> None:
    """The CPU max pool's written-out gradient = reduce_window's (select_and_scatter), ties
    included (integer inputs: many equal maxima), in float32 and bfloat16; the export for CPU
    has no select_and_scatter, the one for CUDA keeps it."""
    from jax import export

    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, (2, size, size + 2, 3)), jnp.float32)

    def grads(impl: str):
        def loss(x):  # a fresh function per path: jax caches traces by function, not by conv_impl
            y = layers.max_pool(x, k, s, p, ceil_mode=ceil)
            return (y * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size).sum()

        with layers.conv_impl(impl):
            return jax.jit(jax.grad(loss))(x), jax.jit(jax.grad(loss))(x.astype(jnp.bfloat16))

    (g0, b0), (g1, b1) = grads("native"), grads("cpu")
    assert float(jnp.abs(g0).sum()) > 0
    # The same maxima receive the gradient (a tie sent elsewhere moves a whole output's share);
    # where windows overlap, sums of several shares may differ in their last bit (order).
    np.testing.assert_array_equal(np.asarray(g1) != 0, np.asarray(g0) != 0)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-6)
    # bfloat16 (8-bit mantissa): the CPU path sums the shares in float32, the native one in bfloat16.
    np.testing.assert_allclose(np.asarray(b1.astype(jnp.float32)), np.asarray(b0.astype(jnp.float32)), rtol=3e-2)
    if (size, k) == (13, 3):
        f = jax.jit(jax.grad(lambda x: layers.max_pool(x, k, s, p, ceil_mode=ceil).sum()))
        assert "select_and_scatter" not in export.export(f, platforms=["cpu"])(x).mlir_module()
        assert "select_and_scatter" in export.export(f, platforms=["cuda"])(x).mlir_module()


@pytest.mark.parametrize("hw,out", [((13, 9), 6), ((14, 14), 7), ((5, 11), (3, 4)), ((1, 1), 7)])
def test_adaptive_avg_pool_matches_torch(hw, out) -> None:
    torch = _torch()
    x = random_input((2, 4, *hw))
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), out).numpy()
    got = layers.adaptive_avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), out)
    np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1), atol=1e-6)


def test_lrn_formula_and_torch_convention() -> None:
    x = random_input((1, 3, 4, 7)) * 3
    lrn = layers.LocalResponseNorm(size=5, alpha=1e-2, beta=0.75, k=2.0)
    got = np.asarray(lrn.apply({}, jnp.asarray(x)))
    sq = np.pad(x**2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(sq[..., i : i + 7] for i in range(5))
    np.testing.assert_allclose(got, x / (2.0 + 1e-2 * window) ** 0.75, rtol=1e-5)
    torch = _torch()
    lrn_t = layers.LocalResponseNorm(size=5, alpha=1e-2, beta=0.75, k=2.0, alpha_over_size=True)
    expected = torch.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0)(
        torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(lrn_t.apply({}, jnp.asarray(x)), expected, rtol=1e-5)


def test_drop_path_drops_whole_samples_and_rescales() -> None:
    x = jnp.ones((4000, 2, 2, 3))
    dp = layers.DropPath(0.3)
    assert (dp.apply({}, x, deterministic=True) == x).all()
    y = np.asarray(dp.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)}))
    per_sample = y.reshape(4000, -1)
    kept = per_sample[per_sample != 0]
    np.testing.assert_allclose(kept, 1 / 0.7, rtol=1e-6)  # survivors rescaled by 1/keep
    assert (per_sample.min(axis=1) == per_sample.max(axis=1)).all()  # whole sample kept or dropped
    assert abs((per_sample[:, 0] == 0).mean() - 0.3) < 0.03
    assert abs(per_sample.mean() - 1.0) < 0.05  # expectation preserved


def test_channel_shuffle_interleaves_groups() -> None:
    x = jnp.arange(6.0).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(layers.channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(layers.channel_shuffle(x, 3)[0, 0, 0], [0, 2, 4, 1, 3, 5])


def test_make_divisible_and_drop_path_rates() -> None:
    assert layers.make_divisible(32 * 0.75) == 24
    assert layers.make_divisible(17) == 16 and layers.make_divisible(13) == 16
    assert layers.make_divisible(1280 * 1.4) == 1792
    assert layers.linear_drop_path_rates(4, 0.5) == [0.125, 0.25, 0.375, 0.5]


def test_squeeze_excite_scales_channels() -> None:
    se = layers.SqueezeExcite(reduced=2)
    x = jnp.asarray(random_input((2, 5, 5, 8)))
    v = se.init(jax.random.PRNGKey(0), x)
    y = se.apply(v, x)
    s = jax.nn.sigmoid(jax.nn.relu(x.mean((1, 2)) @ v["params"]["fc1"]["kernel"][0, 0]
                                   + v["params"]["fc1"]["bias"]) @ v["params"]["fc2"]["kernel"][0, 0]
                       + v["params"]["fc2"]["bias"])
    np.testing.assert_allclose(y, x * s[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_bn_axis_name_context_sets_pmap_axis() -> None:
    assert layers.batch_norm(True).keywords["axis_name"] is None
    with layers.bn_axis_name("batch"):
        assert layers.batch_norm(True).keywords["axis_name"] == "batch"
    assert layers.batch_norm(False).keywords["axis_name"] is None


def test_conv_bn_act_padding_forms() -> None:
    x = jnp.zeros((1, 9, 9, 2))
    for pad, expected in ((None, 5), (0, 4), ((1, 0), 5), ("VALID", 4)):
        m = layers.ConvBNAct(3, 3, strides=2, padding=pad, conv=nn.Conv)
        out = jax.eval_shape(lambda: m.init_with_output(jax.random.PRNGKey(0), x)[0])
        assert out.shape[1] == expected, pad


# (cin, cout, groups, kernel, stride, padding, dilation): 1×1 (strided, padded), depthwise
# (multiplier 2, stride 2, dilation 2; multiplier 1 with its own gradient: stride 1 dilated,
# stride 2 with a last padded row and column no window reaches, stride 2 dilation 2 whose odd
# input phase no tap reaches), few groups (split path), many groups (custom-vjp path:
# multiply-add forward for narrow groups, matmul per tap for groups wider than
# layers._MACS_MAX_CIN, strided).
_CONV_CASES = [(8, 16, 1, 1, 2, 1, 1), (6, 12, 6, 3, 2, 1, 2), (8, 8, 8, 5, 1, 3, 2), (8, 8, 8, 4, 2, 1, 1),
               (8, 8, 8, 3, 2, 1, 2), (12, 24, 3, 3, 2, 1, 1), (40, 40, 20, 3, 1, 1, 1), (160, 40, 10, 3, 2, 1, 1)]


@pytest.mark.parametrize("cin,cout,g,k,s,p,d", _CONV_CASES)
def test_conv_cpu_formulations_match_native(cin: int, cout: int, g: int, k: int, s: int, p: int, d: int) -> None:
    """layers.conv_general_dilated's CPU path = lax's conv: output, both gradients, bfloat16."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 11, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin // g, cout)), jnp.float32)

    ct = jnp.asarray(rng.standard_normal((2, (9 + 2 * p - d * (k - 1) - 1) // s + 1,
                                          (11 + 2 * p - d * (k - 1) - 1) // s + 1, cout)), jnp.float32)

    def run(impl: str):
        def conv(x, w):  # a fresh function per path: jax caches traces by function, not by conv_impl
            return layers.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), rhs_dilation=(d, d),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)

        def all_(x, w, ct):  # one compile per path: output, both gradients, bfloat16 output
            y, vjp = jax.vjp(conv, x, w)
            return y, vjp(ct), conv(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))

        with layers.conv_impl(impl):
            return *jax.jit(all_)(x, w, ct), jax.make_jaxpr(conv)(x, w)

    y0, g0, b0, _ = run("native")
    y1, g1, b1, jaxpr = run("cpu")
    # no grouped conv left; no conv at all except the few-groups split's dense k×k convs
    assert (f"feature_group_count={g}" not in str(jaxpr)) if g > 1 else True
    assert ("conv_general_dilated" in str(jaxpr)) == (k > 1 and 1 < g <= layers._SPLIT_GROUPS and g < cin)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-4)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3 * float(jnp.abs(b).max()))
    assert b1.dtype == jnp.bfloat16
    np.testing.assert_allclose(b1.astype(jnp.float32), b0.astype(jnp.float32), rtol=2e-2, atol=0.1)


# Dense convs with a tiny output map (layers._SMALL_MAP): (input side, kernel (h, w), stride,
# padding (h, w), dilation, live taps): a 3×3 on a 1×1 map (only the centre tap sees the input),
# on 2×2, strided 4×4 → 2×2, Inception's 1×7 on a 2×2 map (3 of 7 taps live), a valid 3×3 → 1×1,
# a dilated 3×3 on 1×1, a whole-image 5×5 kernel (highway_fc's 28×28 first layer).
_SMALL_CASES = [(1, (3, 3), 1, (1, 1), 1, 1), (2, (3, 3), 1, (1, 1), 1, 9), (4, (3, 3), 2, (1, 1), 1, 9),
                (2, (1, 7), 1, (0, 3), 1, 3), (3, (3, 3), 1, (0, 0), 1, 9), (1, (3, 3), 1, (2, 2), 2, 1),
                (5, (5, 5), 1, (0, 0), 1, 25)]


@pytest.mark.parametrize("side,kernel,s,pad,d,live", _SMALL_CASES)
def test_dense_conv_on_tiny_maps_is_one_matmul_on_cpu(side: int, kernel: tuple[int, int], s: int, pad: tuple[int, int],
                                                d: int, live: int) -> None:
    """Auto on CPU: a dense conv with a tiny output map is one matmul over the taps that see the
    input (no conv op); same output and gradients as lax's conv."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, side, side, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((*kernel, 6, 5)), jnp.float32)

    def run_conv(x, w):
        return layers.conv_general_dilated(x, w, (s, s), ((pad[0], pad[0]), (pad[1], pad[1])), rhs_dilation=(d, d),
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def run(impl: str):
        def loss(x, w):  # a fresh function per path: jax caches traces by function, not by conv_impl
            y = run_conv(x, w)
            return jnp.sum(y * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape)), y

        with layers.conv_impl(impl):
            (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, w)
            return y, grads, str(jax.make_jaxpr(lambda x, w: loss(x, w)[1])(x, w))

    y0, g0, jaxpr0 = run("native")
    y1, g1, jaxpr1 = run("cpu")
    assert y1.shape == y0.shape and y1.shape[1] * y1.shape[2] <= layers._SMALL_MAP
    assert "conv_general_dilated" in jaxpr0 and "conv_general_dilated" not in jaxpr1
    # one matmul (the tiny map's im2col), contracting over the live taps' inputs only
    assert jaxpr1.count("dot_general") == 1
    assert f"f32[{3 * y1.shape[1] * y1.shape[2]},{live * 6}] = reshape" in jaxpr1
    with layers.conv_impl("auto"):  # what a CPU export (or run) gets by default
        exported = jax.export.export(jax.jit(lambda x, w: run_conv(x, w)), platforms=["cpu"])(x, w)
    assert "convolution" not in exported.mlir_module()
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-4)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * float(jnp.abs(b).max()))


def test_conv_impl_choice() -> None:
    """auto: an export for CPU has no grouped conv, one for CUDA keeps it; dense k×k stays a conv."""
    from jax import export

    x = jnp.ones((1, 6, 6, 4))

    def hlo(w, groups: int, platforms: list[str]) -> str:
        f = jax.jit(lambda x, w: layers.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), feature_group_count=groups,
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return export.export(f, platforms=platforms)(x, w).mlir_module()

    dw = jnp.ones((3, 3, 1, 4))
    assert "convolution" not in hlo(dw, 4, ["cpu"])
    assert "feature_group_count = 4" in hlo(dw, 4, ["cuda"])
    assert "feature_group_count = 4" in hlo(dw, 4, ["cpu", "cuda"])  # multi-platform export keeps both
    assert "convolution" in hlo(jnp.ones((3, 3, 4, 4)), 1, ["cpu"])
    with pytest.raises(ValueError, match="conv impl"):
        with layers.conv_impl("fast"):
            pass
    # nn.Conv passes padding as a string ("SAME" by default): the CPU path still applies.
    conv = layers.make_conv()(8, (1, 1), strides=2)
    v = conv.init(jax.random.PRNGKey(0), x)
    with layers.conv_impl("cpu"):
        jaxpr = str(jax.make_jaxpr(conv.apply)(v, x))
        out = conv.apply(v, x)
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr
    with layers.conv_impl("native"):
        np.testing.assert_allclose(np.asarray(out), np.asarray(conv.apply(v, x)), rtol=1e-6, atol=1e-6)


def test_train_compiler_options_per_family_and_accepted_by_xla() -> None:
    """YNN fusions for the train step: on CPU for the listed families (``auto``), everywhere
    (``on``) or XLA's defaults (``off``); none at all for LeNet (``auto``); never off CPU. XLA
    takes them per jit and fuses with YNNPACK, or not at all with the empty type (an XLA that
    renames the option or its values fails here, not silently)."""
    on = layers.train_compiler_options("resnet18", "auto", "cpu")
    assert on == layers.YNN_FUSIONS and "resnet" in layers.YNN_TRAIN_FAMILIES
    assert layers.train_compiler_options("mobilenet_v2", "auto", "cpu") == {}
    assert layers.train_compiler_options("mobilenet_v2", "on", "cpu") == layers.YNN_FUSIONS
    assert layers.train_compiler_options("resnet18", "off", "cpu") == {}
    none = layers.train_compiler_options("lenet5", "auto", "cpu")
    assert none == layers.YNN_NONE and "lenet" in layers.YNN_NONE_FAMILIES
    assert layers.train_compiler_options("lenet5", "off", "cpu") == {}
    assert layers.train_compiler_options("resnet18", "on", "gpu") == {}
    with pytest.raises(ValueError, match="YNN fusion setting"):
        layers.train_compiler_options("resnet18", "yes", "cpu")
    x = jnp.ones((64, 64), jnp.float32)
    def fused(options: dict) -> bool:
        f = jax.jit(lambda a, b: jnp.tanh(a @ b).sum(0), compiler_options=options)
        return "__ynn_fusion" in f.lower(x, x).compile().as_text()

    assert fused(on) and not fused(none)


def test_run_once_options_on_cpu_only_and_same_values() -> None:
    """A program that runs once (the variables' init) compiles without the CPU backend's LLVM
    optimisations, never off CPU; XLA accepts the options and the values are the optimised
    build's up to float32 rounding (fast-math stays off)."""
    once = layers.run_once_compiler_options("cpu")
    assert once == layers.ONCE_CPU_OPTIONS and once["xla_backend_optimization_level"] == 0
    assert layers.run_once_compiler_options("gpu") == {} and layers.run_once_compiler_options("tpu") == {}
    x = jnp.linspace(-3.0, 3.0, 4096, dtype=jnp.float32)

    def f(key):
        return jnp.tanh(x) * jax.random.normal(key, x.shape) + jax.nn.initializers.he_normal()(key, (64, 64)).sum()

    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(np.asarray(jax.jit(f, compiler_options=once)(key)), np.asarray(jax.jit(f)(key)),
                               rtol=1e-6, atol=1e-6)
