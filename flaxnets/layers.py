"""Building blocks shared by every family, written once.

Conventions (all families follow them):
  * NHWC activations; convolution padding is explicit and symmetric (PyTorch style) via
    :func:`same_pad` unless the paper says otherwise. flax ``'SAME'`` pads stride-2 convs
    asymmetrically and would break weight conversion.
  * BatchNorm is configured once by :func:`batch_norm` (PyTorch defaults: momentum 0.1 ↔
    flax 0.9, eps 1e-5); statistics live in the ``batch_stats`` collection and stay
    float32 whatever the compute dtype.
  * Blocks receive ``conv``/``norm``/``act`` as injected partials.
  * Stochastic layers (dropout, drop-path) draw from the ``dropout`` rng stream.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Any
Array = jax.Array

# He et al. 2015 ("Delving deep into rectifiers"), fan-out mode as in torchvision's ResNet.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# He fan-in: for nets without BatchNorm (GoogLeNet paper, SqueezeNet), where fan-out init
# grows the activations at every width reduction (e.g. SqueezeNet's 1×1 squeeze layers).
conv_init_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# PyTorch's default Linear init family (uniform, fan-in); good default for classifiers.
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def same_pad(kernel: int | Sequence[int], dilation: int = 1) -> tuple[tuple[int, int], ...]:
    """Symmetric padding that keeps the size at stride 1 (PyTorch ``padding=k//2``)."""
    ks = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    return tuple(((k - 1) * dilation // 2, (k - 1) * dilation // 2) for k in ks)


def pad2d(p: int | Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch-style ``padding=p`` (int or (ph, pw)) as flax explicit padding."""
    ph, pw = (p, p) if isinstance(p, int) else tuple(p)
    return ((ph, ph), (pw, pw))


_BN_AXIS_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("bn_axis_name", default=None)


@contextlib.contextmanager
def bn_axis_name(name: str | None) -> Iterator[None]:
    """Average BatchNorm statistics over the named ``pmap`` axis while tracing inside.

    ``with bn_axis_name("batch"): model.apply(...)`` inside a ``jax.pmap(axis_name="batch")``
    step makes every BatchNorm built by :func:`batch_norm` use cross-device statistics,
    without a field on every model. (Under ``jit`` with a sharded batch, statistics are
    global already and no axis name is needed.)
    """
    token = _BN_AXIS_NAME.set(name)
    try:
        yield
    finally:
        _BN_AXIS_NAME.reset(token)


_FROZEN_BN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("frozen_bn", default=())


def module_path(path: Sequence[str]) -> str:
    """The one string form of a flax module path: names joined by ``/`` (``layer1.0/bn1``).

    Flax names here are the twins' dotted module paths, so ``/`` separates nesting levels
    unambiguously; ``ModelInfo.classifier``/``first_conv`` and freeze globs use this form.
    """
    return "/".join(path)


def path_matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether module path ``path`` is, or lies under, a module matched by a glob in ``patterns``."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for pat in patterns for p in prefixes)


@contextlib.contextmanager
def frozen_batch_norm(patterns: Sequence[str]) -> Iterator[None]:
    """Run the BatchNorms under the module globs ``patterns`` in inference mode, even in training.

    ``with frozen_batch_norm(["layer[1-3]*", "conv1", "bn1"]): model.apply(..., train=True)``
    normalises those layers with their running statistics and leaves the statistics as they
    are (a frozen backbone keeps its ImageNet statistics while the head trains). Patterns
    match :func:`module_path` strings or any of their prefixes.
    """
    token = _FROZEN_BN.set(tuple(patterns))
    try:
        yield
    finally:
        _FROZEN_BN.reset(token)


_BATCH_STATISTICS: contextvars.ContextVar[bool] = contextvars.ContextVar("bn_batch_statistics", default=False)


@contextlib.contextmanager
def batch_statistics() -> Iterator[None]:
    """Every BatchNorm normalises with its batch's statistics and stores them, whatever its mode.

    Inside, ``model.apply(variables, x, train=False, mutable=["batch_stats"])`` runs the network
    as it is evaluated (no dropout, no drop-path) with each BatchNorm normalising by the mean and
    (biased) variance of what reaches it, and returns those statistics in ``batch_stats`` in
    place of running averages: one batch's contribution to PreciseBN's population statistics
    (``train.loop.precise_batch_stats``).
    """
    token = _BATCH_STATISTICS.set(True)
    try:
        yield
    finally:
        _BATCH_STATISTICS.reset(token)


class BatchNorm(nn.BatchNorm):
    """flax ``BatchNorm`` whose train/eval mode is a field, overridable per module.

    ``train`` replaces the constructor's ``use_running_average``; inside
    :func:`frozen_batch_norm` a module whose path matches runs with its running averages,
    inside :func:`batch_statistics` every module with its batch's statistics, which it stores.
    """

    train: bool = False

    def __call__(self, x: Array, use_running_average: bool | None = None, **kwargs: Any) -> Array:
        if _BATCH_STATISTICS.get() and not self.is_initializing():
            if self.momentum >= 1.0:
                raise ValueError(f"BatchNorm momentum {self.momentum} keeps no batch statistics")
            # flax stores momentum·old + (1 − momentum)·batch: from zeros that is a multiple of
            # the batch's statistics, exact after the division.
            for k in ("mean", "var"):
                self.put_variable("batch_stats", k, jnp.zeros_like(self.get_variable("batch_stats", k)))
            y = super().__call__(x, False, **kwargs)
            for k in ("mean", "var"):
                self.put_variable("batch_stats", k, self.get_variable("batch_stats", k) / (1.0 - self.momentum))
            return y
        if use_running_average is None:
            frozen = _FROZEN_BN.get()
            use_running_average = not self.train or bool(frozen and path_matches(module_path(self.path), frozen))
        return super().__call__(x, use_running_average, **kwargs)


def batch_norm(train: bool, dtype: Any = jnp.float32, **kwargs: Any) -> ModuleDef:
    """The one BatchNorm configuration (PyTorch defaults), bound to train/eval mode."""
    opts = {"momentum": 0.9, "epsilon": 1e-5, "axis_name": _BN_AXIS_NAME.get()}
    opts.update(kwargs)
    return functools.partial(BatchNorm, train=train, dtype=dtype, param_dtype=jnp.float32, **opts)


# --- Feature taps ---------------------------------------------------------------------------
class StopForward(Exception):
    """Raised by :func:`tap` once every requested feature map is collected (ends the forward)."""


class _Taps:
    def __init__(self, want: Sequence[str] | None, stop: bool):
        self.want = None if want is None else tuple(want)
        self.stop = stop
        self.got: dict[str, Array] = {}


_TAPS: contextvars.ContextVar[_Taps | None] = contextvars.ContextVar("feature_taps", default=None)


def tap(x: Array, name: str) -> Array:
    """Mark ``x`` as the feature map ``name`` (an entry of ``ModelInfo.feature_info``).

    Returns ``x`` unchanged; inside :func:`collect_features` the map is recorded, and the
    forward pass stops once every requested map is in (``features_only`` models).
    """
    taps = _TAPS.get()
    if taps is not None and (taps.want is None or name in taps.want):
        taps.got[name] = x
        if taps.stop and taps.want is not None and all(w in taps.got for w in taps.want):
            raise StopForward
    return x


@contextlib.contextmanager
def collect_features(names: Sequence[str] | None = None, stop: bool = False) -> Iterator[dict[str, Array]]:
    """Collect the maps passed to :func:`tap` while tracing inside (all, or only ``names``).

    ``stop=True`` raises :class:`StopForward` after the last requested map; the caller
    catches it. Works under ``jit``: the collected tracers belong to the enclosing trace.
    """
    taps = _Taps(names, stop)
    token = _TAPS.set(taps)
    try:
        yield taps.got
    finally:
        _TAPS.reset(token)


def classifier_head(
    x: Array,
    num_classes: int,
    drop_rate: float,
    train: bool,
    dtype: Any = jnp.float32,
    name: str = "fc",
    pool: str | None = "avg",
    flatten: bool = False,
    kernel_init: Callable | None = None,
) -> Array:
    """The shared tail: global pooling → dropout → dense (``num_classes=0``: pooled features).

    Call from a compact ``__call__``: the dense layer is created in the caller's scope as
    ``name`` (the twin's module path). ``pool``: ``"avg"``, ``"max"`` or ``None`` (input
    already pooled); ``flatten`` flattens in torch's C-H-W order instead of pooling.
    ``kernel_init`` replaces the dense layer's default init (a family whose reference inits it
    otherwise). Returns float32 logits, or the float32 pre-logit features when ``num_classes == 0``.
    """
    if flatten:
        x = flatten_nchw(x)
    elif pool == "avg":
        x = global_avg_pool(x)
    elif pool == "max":
        x = jnp.max(x, axis=(1, 2))
    elif pool is not None:
        raise ValueError(f"unknown pool {pool!r} (avg, max or None)")
    if num_classes == 0:
        return x.astype(jnp.float32)
    x = nn.Dropout(drop_rate, deterministic=not train)(x)
    dense = make_dense(dtype, **({"kernel_init": kernel_init} if kernel_init is not None else {}))
    return dense(num_classes, name=name)(x).astype(jnp.float32)


# --- Convolution, formulated per backend ------------------------------------------------
# XLA:CPU runs grouped/depthwise convolutions (feature_group_count > 1) and 1×1 convolutions
# far slower than plain arithmetic does (BENCHMARKS.md has the op timings): on CPU a 1×1
# conv is a matmul over the channel axis, a depthwise conv is k×k shifted multiply-adds and a
# grouped conv is one batched matmul per tap. GPU/TPU keep XLA's native convolution. The
# choice is made per platform with ``jax.lax.platform_dependent``, so a model exported for
# several platforms keeps the accelerator path. Parameters are untouched (same names, same
# HWIO kernels): only the arithmetic differs.
CONV_IMPLS = ("auto", "native", "cpu")
_CONV_IMPL: contextvars.ContextVar[str | None] = contextvars.ContextVar("flaxnets_conv_impl", default=None)


def _current_conv_impl() -> str:
    impl = _CONV_IMPL.get() or os.environ.get("FLAXNETS_CONV") or "auto"
    if impl not in CONV_IMPLS:
        raise ValueError(f"FLAXNETS_CONV={impl!r}: expected one of {CONV_IMPLS}")
    return impl


@contextlib.contextmanager
def conv_impl(impl: str) -> Iterator[None]:
    """Force the convolution (and max-pool gradient) formulation while tracing: ``auto`` (per
    platform), ``native`` (``lax.conv_general_dilated`` / ``reduce_window`` everywhere) or
    ``cpu`` (the CPU formulations everywhere).

    Read at trace time (jitted functions already traced keep theirs); the environment
    variable ``FLAXNETS_CONV`` sets the default. Used by the tests to cover both paths.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv impl {impl!r}: expected one of {CONV_IMPLS}")
    token = _CONV_IMPL.set(impl)
    try:
        yield
    finally:
        _CONV_IMPL.reset(token)


def _pair(v: Any, default: int = 1) -> tuple[int, int]:
    if v is None:
        return (default, default)
    return (v, v) if isinstance(v, int) else tuple(v)


def _tap(x: Array, i: int, j: int, out_hw: tuple[int, int], strides: tuple[int, int]) -> Array:
    """The strided window of ``x`` (NHWC) that kernel tap (i, j) sees, one row per output pixel."""
    (ho, wo), (sh, sw) = out_hw, strides
    return jax.lax.slice(x, (0, i, j, 0), (x.shape[0], i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, x.shape[3]),
                         (1, sh, sw, 1))


def _conv_cpu(x: Array, k: Array, strides: tuple[int, int], padding: Sequence[tuple[int, int]],
              dilation: tuple[int, int], groups: int, precision: Any) -> Array:
    """NHWC×HWIO convolution without ``conv_general_dilated`` (see above); same result."""
    kh, kw, cin_g, cout = k.shape
    acc = jnp.promote_types(x.dtype, jnp.float32)  # accumulate taps in ≥ float32 (bf16 inputs)
    (h, w), (pt, pl) = x.shape[1:3], (padding[0][0], padding[1][0])
    x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0))) if any(map(any, padding)) else x
    dh, dw = dilation
    ho = (x.shape[1] - (kh - 1) * dh - 1) // strides[0] + 1
    wo = (x.shape[2] - (kw - 1) * dw - 1) // strides[1] + 1
    if groups == 1 and (kh, kw) != (1, 1):  # dense k×k on a tiny map (_SMALL_MAP): its im2col, one matmul
        return _conv_small(x, k, strides, dilation, (ho, wo), (pt, pl), (h, w), precision).astype(x.dtype)
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    if groups == 1:  # dense 1×1: a matmul over channels
        y = None
        for i, j in taps:
            t = jax.lax.dot_general(_tap(x, i * dh, j * dw, (ho, wo), strides), k[i, j],
                                    (((3,), (0,)), ((), ())), precision=precision, preferred_element_type=acc)
            y = t if y is None else y + t
        return y.astype(x.dtype)
    if cin_g == 1 and cout == groups and kh * kw > 1:
        return _depthwise(x, k, strides, dilation)  # the common case, with its own (cheaper) gradient
    if cin_g == 1:  # depthwise with channel multiplier cout / groups: repeat the inputs, then multiply-adds
        mult = cout // groups
        return _depthwise_macs(jnp.repeat(x, mult, axis=3) if mult > 1 else x, k, strides, dilation)
    if groups <= _SPLIT_GROUPS:  # few groups (AlexNet's 2, ShuffleNet v1's 3/8): one dense conv each
        ci, co = cin_g, cout // groups
        return jnp.concatenate([
            conv_general_dilated(x[..., g * ci:(g + 1) * ci], k[..., g * co:(g + 1) * co], strides,
                                 [(0, 0), (0, 0)], rhs_dilation=dilation,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
            for g in range(groups)], axis=-1)
    return _grouped(x, k, (ho, wo), strides, dilation, groups, precision)


def _conv_small(x: Array, k: Array, strides: tuple[int, int], dilation: tuple[int, int], out_hw: tuple[int, int],
                pad_lo: tuple[int, int], in_hw: tuple[int, int], precision: Any) -> Array:
    """Dense conv of a padded ``x`` with a tiny output map as its im2col: each output pixel's
    receptive field (one slice) is a row, the kernel one matrix, one matmul; float32 (or wider) out.
    Kernel rows and columns whose taps only ever see the zero padding are cut first (a 3×3 conv
    on a 1×1 map is its centre tap; a whole-image kernel, highway_fc's 28×28, stays one matmul)."""
    kh, kw, cin, cout = k.shape
    (ho, wo), (sh, sw), (dh, dw) = out_hw, strides, dilation

    def live(n_taps: int, d: int, s: int, n_out: int, lo: int, size: int) -> tuple[int, int]:
        taps = [i for i in range(n_taps) if any(lo <= i * d + q * s < lo + size for q in range(n_out))]
        return (taps[0], taps[-1] + 1) if taps else (0, 0)

    (r0, r1), (c0, c1) = live(kh, dh, sh, ho, pad_lo[0], in_hw[0]), live(kw, dw, sw, wo, pad_lo[1], in_hw[1])
    acc = jnp.promote_types(x.dtype, jnp.float32)
    n = x.shape[0]
    if r1 == r0 or c1 == c0:  # every tap reads padding only
        return jnp.zeros((n, ho, wo, cout), acc)
    kmat = k[r0:r1, c0:c1].reshape(-1, cout)
    patches = []
    for a in range(ho):
        for b in range(wo):
            top, left = a * sh + r0 * dh, b * sw + c0 * dw
            patches.append(jax.lax.slice(x, (0, top, left, 0), (n, top + (r1 - r0 - 1) * dh + 1,
                                                                 left + (c1 - c0 - 1) * dw + 1, cin), (1, dh, dw, 1)))
    cols = (patches[0] if len(patches) == 1 else jnp.stack(patches, axis=1)).reshape(n * ho * wo, -1)
    y = jax.lax.dot_general(cols, kmat, (((1,), (0,)), ((), ())), precision=precision, preferred_element_type=acc)
    return y.reshape(n, ho, wo, cout)


def _depthwise_macs(x: Array, k: Array, strides: tuple[int, int], dilation: tuple[int, int]) -> Array:
    """Depthwise conv of an already padded ``x`` (one input channel per output channel): k×k shifted multiply-adds."""
    kh, kw = k.shape[:2]
    out_hw = ((x.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1,
              (x.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1)
    acc = jnp.promote_types(x.dtype, jnp.float32)
    y = None
    for i in range(kh):
        for j in range(kw):
            t = _tap(x, i * dilation[0], j * dilation[1], out_hw, strides).astype(acc) * k[i, j, 0].astype(acc)
            y = t if y is None else y + t
    return y.astype(x.dtype)


def _phase_taps(kernel: int, stride: int, dilation: int) -> list[list[tuple[int, int]]]:
    """Per phase ``a`` of the input (positions ``q·stride + a``): the kernel taps ``i`` that
    reach it and their output offsets ``m`` (input ``q·s + a`` = output ``q - m``, tap ``i``)."""
    return [[(i, (i * dilation - a) // stride) for i in range(kernel) if (i * dilation - a) % stride == 0]
            for a in range(stride)]


def _depthwise_input_grad(dy: Array, k: Array, in_hw: tuple[int, int], strides: tuple[int, int],
                          dilation: tuple[int, int]) -> Array:
    """Input gradient of :func:`_depthwise` (padded input of size ``in_hw``), one phase of the
    stride at a time: each tap feeds exactly one phase, so the k×k multiply-adds run at the
    output's resolution; the phases are then interleaved (one copy). At stride 1 there is one
    phase: the flipped kernel over the padded output gradient."""
    n, ho, wo, c = dy.shape
    (sh, sw), acc = strides, jnp.promote_types(dy.dtype, jnp.float32)
    taps_h, taps_w = _phase_taps(k.shape[0], sh, dilation[0]), _phase_taps(k.shape[1], sw, dilation[1])
    mh = max((m for phase in taps_h for _, m in phase), default=0)
    mw = max((m for phase in taps_w for _, m in phase), default=0)
    qh, qw = -(-in_hw[0] // sh), -(-in_hw[1] // sw)  # rows and columns of the largest phase
    dyp = jax.lax.pad(dy, jnp.zeros((), dy.dtype),
                      ((0, 0, 0), (mh, max(0, qh - ho), 0), (mw, max(0, qw - wo), 0), (0, 0, 0)))
    phases = []
    for a in range(sh):
        row = []
        for b in range(sw):
            g = None
            for i, m_i in taps_h[a]:
                for j, m_j in taps_w[b]:
                    t = dyp[:, mh - m_i:mh - m_i + qh, mw - m_j:mw - m_j + qw].astype(acc) * k[i, j, 0].astype(acc)
                    g = t if g is None else g + t
            row.append(jnp.zeros((n, qh, qw, c), acc) if g is None else g)
        phases.append(row)
    if (sh, sw) == (1, 1):
        dx = phases[0][0]
    else:  # (n, qh, sh, qw, sw, c): input row q·sh + a, column r·sw + b
        dx = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2).reshape(n, qh * sh, qw * sw, c)
    return dx[:, :in_hw[0], :in_hw[1]].astype(dy.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x: Array, k: Array, strides: tuple[int, int], dilation: tuple[int, int]) -> Array:
    """Depthwise conv (``x`` padded, multiplier 1). Its gradient is written out: the input
    gradient by :func:`_depthwise_input_grad`, the kernel gradient one reduction per tap.
    Autodiff of the strided slices instead materialises one padded copy of the input per tap
    (about 10× the forward's time and +76 % memory in mobilenet_v2 for stride 1)."""
    return _depthwise_macs(x, k, strides, dilation)


def _depthwise_fwd(x, k, strides, dilation):
    return _depthwise_macs(x, k, strides, dilation), (x, k)


def _depthwise_bwd(strides, dilation, res, dy):
    x, k = res
    kh, kw = k.shape[:2]
    dx = _depthwise_input_grad(dy, k, x.shape[1:3], strides, dilation)
    acc = jnp.promote_types(x.dtype, jnp.float32)
    dyf = dy.astype(acc)
    dk = jnp.stack([jnp.stack([
        jnp.sum(_tap(x, i * dilation[0], j * dilation[1], dy.shape[1:3], strides).astype(acc) * dyf, axis=(0, 1, 2))
        for j in range(kw)]) for i in range(kh)])[:, :, None, :]
    return dx, dk.astype(k.dtype)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


_SPLIT_GROUPS = 8  # up to this many groups a grouped conv is split into dense convs


def _grouped_taps(x: Array, k: Array, out_hw: tuple[int, int], strides: tuple[int, int],
                  dilation: tuple[int, int], groups: int, precision: Any) -> Array:
    """Many narrow groups (ResNeXt): per tap, one matmul batched over the groups."""
    kh, kw, cin_g, cout = k.shape
    n, (ho, wo) = x.shape[0], out_hw
    acc = jnp.promote_types(x.dtype, jnp.float32)
    kg = k.reshape(kh, kw, cin_g, groups, cout // groups)
    y = None
    for i in range(kh):
        for j in range(kw):
            xt = _tap(x, i * dilation[0], j * dilation[1], out_hw, strides).reshape(n, ho, wo, groups, cin_g)
            t = jax.lax.dot_general(xt, kg[i, j], (((4,), (0,)), ((3,), (1,))), precision=precision,
                                    preferred_element_type=acc)  # (g, n, ho, wo, cout/g)
            y = t if y is None else y + t
    return jnp.moveaxis(y, 0, 3).reshape(n, ho, wo, cout).astype(x.dtype)


def _grouped_macs(x: Array, k: Array, out_hw: tuple[int, int], strides: tuple[int, int],
                  dilation: tuple[int, int], groups: int) -> Array:
    """Many narrow groups: one multiply-add per (tap, input channel of a group), all groups at once."""
    kh, kw, cin_g, cout = k.shape
    n, (ho, wo) = x.shape[0], out_hw
    acc = jnp.promote_types(x.dtype, jnp.float32)
    kg = k.reshape(kh, kw, cin_g, groups, cout // groups).astype(acc)
    y = None
    for i in range(kh):
        for j in range(kw):
            xt = _tap(x, i * dilation[0], j * dilation[1], out_hw, strides).reshape(n, ho, wo, groups, cin_g, 1)
            for c in range(cin_g):
                t = xt[..., c, :].astype(acc) * kg[i, j, c]
                y = t if y is None else y + t
    return y.reshape(n, ho, wo, cout).astype(x.dtype)


# Up to this many input channels per group the grouped conv's forward is multiply-adds, above it
# one batched matmul per tap. 3×3, 32 groups, batch 16 on the 2-core CPU
# (``python benchmarks/conv_grad_parts.py grouped``), multiply-adds / matmuls: 3.0 / 52 ms at 4
# channels a group (28²), 10.7 / 90 ms at 8 (28²), but 123 / 41 ms at 16 (14²), 490 / 90 ms at 32
# (14²) and 1507 / 53 ms at 64 (7²). The multiply-add graph also grows with the channels
# (compile 1.22 s vs 0.37 s at 64): resnext101_32x8d's eval forward compiled in 18 s with it.
_MACS_MAX_CIN = 8


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _grouped(x: Array, k: Array, out_hw: tuple[int, int], strides: tuple[int, int],
             dilation: tuple[int, int], groups: int, precision: Any) -> Array:
    """Grouped conv with many narrow groups: multiply-adds forward for narrow groups (fastest
    forward on XLA:CPU up to :data:`_MACS_MAX_CIN` channels a group), batched matmuls per tap for
    wider ones; gradients of the batched-matmul form (the multiply-add form's backward is ~4× slower)."""
    if k.shape[2] > _MACS_MAX_CIN:
        return _grouped_taps(x, k, out_hw, strides, dilation, groups, precision)
    return _grouped_macs(x, k, out_hw, strides, dilation, groups)


def _grouped_fwd(x, k, out_hw, strides, dilation, groups, precision):
    return _grouped(x, k, out_hw, strides, dilation, groups, precision), (x, k)


def _grouped_bwd(out_hw, strides, dilation, groups, precision, res, dy):
    x, k = res
    _, vjp = jax.vjp(lambda x, k: _grouped_taps(x, k, out_hw, strides, dilation, groups, precision), x, k)
    return vjp(dy)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


# XLA:CPU's YNNPACK fusions (``xla_cpu_experimental_ynn_fusion_type``, experimental in jax 0.10)
# for a compiled *train* step: passed per jit (``jax.jit(..., compiler_options=...)``), so nothing
# else in the process changes. They speed up the dense convolutions' gradients (3×3, 56², 64→64,
# batch 16: XLA's kernel gradient 107-124 ms → 23 ms, BENCHMARKS.md) and slow down the depthwise
# families (and eval steps: resnet50 eval 21 → 15.5 img/s, so eval steps never get them).
# Train step img/s without → with, batch 16, fp32, default input size, 2-core CPU, two fresh
# processes each, alternating (``python benchmarks/bench.py --one flax train NAME --batch 16
# --size SIZE --steps 3 --cpu-ynn-fusions off|on``; measured at 4ed4735 with the same options in
# XLA_FLAGS): resnet18 8.2 → 13.2, resnet50 3.3 → 4.2, resnext50_32x4d 1.7 → 2.5, seresnet50
# 3.2 → 4.4, densenet121 4.0 → 4.6 (compile 20 → 26 s), darknet53 1.8 → 2.8, inception_v3
# 2.5 → 3.9, googlenet 6.6 → 8.4; mobilenet_v2 9.8 → 8.0 (not listed).
YNN_FUSIONS = {"xla_cpu_experimental_ynn_fusion_type":
               "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"}
YNN_TRAIN_FAMILIES = frozenset({"resnet", "senet", "densenet", "darknet", "inception_v3", "googlenet"})
YNN_SETTINGS = ("auto", "on", "off")
# XLA's own defaults (what ``off`` and the unlisted families get) already route some element-wise
# and reduce ops of a CPU program to YNNPACK in jaxlib 0.10.2; each such call costs ~0.2-0.5 ms
# however small its tensors. For LeNet-5 that is most of the step, so its family compiles with no
# YNN fusion at all: the trainer's SDLM step at batch 1 (its recipe; the exact Gauss-Newton
# diagonal is one VJP per class) 6.6 -> 3.0 ms (jax.profiler: 13 ``ynn_fusion`` calls, 2.5 ms of
# it), and ``python benchmarks/bench.py --one flax train lenet5 --batch 64 --steps 50`` 8,096 /
# 10,589 -> 10,175 / 13,582 img/s (two alternating rounds, ``XLA_FLAGS=
# --xla_cpu_experimental_ynn_fusion_type=`` for none; idle 2-core CPU, 2026-12-07). mobilenet_v2
# at batch 16 keeps XLA's defaults: 13.2 / 13.9 img/s with them, 10.2 / 10.2 without any.
YNN_NONE = {"xla_cpu_experimental_ynn_fusion_type": ""}
YNN_NONE_FAMILIES = frozenset({"lenet"})


# XLA options for a program that runs once, such as the variables' initialisation: the CPU
# backend's LLVM optimisations (loop vectorisation of the random-number kernels) dominate its
# compile and buy nothing for one run (resnet20's init: 38.6 s against 6.6 s, densenet40_k12's
# more than 7 minutes against 29 s, on a loaded 2-core machine; the values agree to float32
# rounding, 6e-8). No op's semantics change: fast-math stays off.
ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_once_compiler_options(platform: str | None = None) -> dict[str, Any]:
    """XLA compiler options for a function compiled to run once (e.g. ``model.init``) on
    ``platform`` (default: JAX's default backend): :data:`ONCE_CPU_OPTIONS` on CPU, else none."""
    return dict(ONCE_CPU_OPTIONS) if (platform or jax.default_backend()) == "cpu" else {}


def train_compiler_options(name: str, setting: str = "auto", platform: str | None = None) -> dict[str, str]:
    """XLA compiler options for model ``name``'s compiled train step on ``platform`` (default:
    JAX's default backend): on CPU :data:`YNN_FUSIONS` for the families measured faster with them
    and :data:`YNN_NONE` for those measured faster with none (``auto``), YNN_FUSIONS for every
    model (``on``) or XLA's defaults (``off``); ``{}`` on other platforms."""
    if setting not in YNN_SETTINGS:
        raise ValueError(f"YNN fusion setting {setting!r}: expected one of {YNN_SETTINGS}")
    from flaxnets.registry import model_info

    family = model_info(name).family
    if (platform or jax.default_backend()) != "cpu" or setting == "off":
        return {}
    if setting == "on" or family in YNN_TRAIN_FAMILIES:
        return dict(YNN_FUSIONS)
    return dict(YNN_NONE) if setting == "auto" and family in YNN_NONE_FAMILIES else {}


# XLA:CPU's native convolution is pathologically slow when its output map is tiny (the last
# stages of an ImageNet net fed 32×32 images, a CIFAR net's 2×2 stage). Dense 3×3, padding 1,
# batch 64, forward / forward+backward ms, lax's conv against one matmul per tap and against the
# tiny map's im2col (``_conv_small``: each output pixel's receptive field as one row, one matmul)
# (``python benchmarks/conv_grad_parts.py small``, idle 2-core CPU, 2026-12-07): 1×1 map, 512
# channels 17 / 30 against 2.6 / 3.7 and 0.52 / 1.06; 2×2, 512: 533 / 904 against 4.5 / 19 and
# 4.2 / 10.6; 2×2, 256: 74 / 132 against 1.4 / 4.4 and 1.0 / 3.6; 4×4 → 2×2 (stride 2), 256:
# 1.6 / 96 against 2.4 / 5.2 and 1.0 / 3.1. At 3×3 and 4×4 outputs it wins narrowly for wide convs
# (4×4, 512: conv 32 / 72, im2col 30 / 62; 3×3, 512: 14 / 45 against 11 / 31) but loses for thin
# ones: densenet40_k12's train step at 8×8 (3×3 convs to 12 maps on 4×4 and 2×2), batch 64
# (``python benchmarks/bench.py --one flax train densenet40_k12 --batch 64 --size 8 --steps 5``):
# conv everywhere 410 img/s, compile 15 s; im2col up to 16 pixels 273 img/s, 22 s; up to 4
# pixels 470 img/s, 13 s. It loses from 8×8 on (8×8, 64: 1.7 / 6.8 against 2.6 / 10.2). So a
# dense conv whose output has at most this many pixels is the im2col matmul on CPU.
_SMALL_MAP = 4


def _small_output(shape: Sequence[int], kernel: tuple[int, int], strides: Any, padding: Any, dilation: Any) -> bool:
    """Whether an NHWC conv's output map has at most :data:`_SMALL_MAP` pixels."""
    if isinstance(padding, str):
        return False
    (sh, sw), (dh, dw) = _pair(strides), _pair(dilation)
    ho = (shape[1] + sum(padding[0]) - (kernel[0] - 1) * dh - 1) // sh + 1
    wo = (shape[2] + sum(padding[1]) - (kernel[1] - 1) * dw - 1) // sw + 1
    return ho * wo <= _SMALL_MAP


def conv_general_dilated(lhs: Array, rhs: Array, window_strides: Sequence[int], padding: Any,
                         lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> Array:
    """Drop-in ``lax.conv_general_dilated`` for ``nn.Conv`` that picks the formulation per backend.

    The CPU formulations cover 2-D NHWC/HWIO convolutions with explicit padding and no input
    dilation: 1×1 (any groups), depthwise and grouped k×k, dense k×k with a tiny output map
    (:data:`_SMALL_MAP`). Everything else — and every platform but CPU, unless
    :func:`conv_impl` forces ``cpu`` — is the native convolution.
    """
    native = functools.partial(
        jax.lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)
    impl = _current_conv_impl()
    four_d = lhs.ndim == rhs.ndim == 4
    kh, kw = rhs.shape[:2] if four_d else (0, 0)
    nhwc = four_d and (jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
                       == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")))
    if nhwc and isinstance(padding, str):  # nn.Conv passes "SAME"/"VALID" through: make it explicit
        dh, dw = _pair(rhs_dilation)
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], ((kh - 1) * dh + 1, (kw - 1) * dw + 1),
                                          _pair(window_strides), padding)
    applicable = (
        impl != "native" and nhwc
        and not isinstance(padding, str) and _pair(lhs_dilation) == (1, 1) and batch_group_count == 1
        and preferred_element_type is None
        # dense k×k convs stay native (im2col/tap matmuls were not faster on CPU), except on tiny maps
        and ((kh, kw) == (1, 1) or feature_group_count > 1 or _small_output(lhs.shape, (kh, kw), window_strides,
                                                                           padding, rhs_dilation)))
    if not applicable:
        return native(lhs, rhs)
    cpu = functools.partial(_conv_cpu, strides=_pair(window_strides), padding=[tuple(p) for p in padding],
                            dilation=_pair(rhs_dilation), groups=feature_group_count, precision=precision)
    if impl == "cpu":
        return cpu(lhs, rhs)
    return jax.lax.platform_dependent(lhs, rhs, cpu=cpu, default=native)


def make_conv(dtype: Any = jnp.float32, **kwargs: Any) -> ModuleDef:
    """Convolution partial with the project's init and float32 params.

    Its arithmetic is :func:`conv_general_dilated` (per-backend formulations); parameter
    names and shapes are ``nn.Conv``'s.
    """
    opts = {"use_bias": False, "kernel_init": conv_init, "conv_general_dilated": conv_general_dilated}
    opts.update(kwargs)
    return functools.partial(nn.Conv, dtype=dtype, param_dtype=jnp.float32, **opts)


def make_dense(dtype: Any = jnp.float32, **kwargs: Any) -> ModuleDef:
    """Dense partial with float32 params."""
    opts = {"kernel_init": dense_init}
    opts.update(kwargs)
    return functools.partial(nn.Dense, dtype=dtype, param_dtype=jnp.float32, **opts)


class ConvBNAct(nn.Module):
    """Conv → (BatchNorm) → (activation): the unit most families are made of.

    ``conv_name``/``norm_name`` choose the submodule names so the variable paths equal
    the twin's ``state_dict`` keys (e.g. torchvision's ``conv``/``bn``, or ``0``/``1``).
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: Any = None  # None → symmetric "same"; int or (ph, pw) → PyTorch-style
    groups: int = 1
    dilation: int = 1
    conv: ModuleDef = nn.Conv
    norm: ModuleDef | None = None
    act: Callable[[Array], Array] | None = nn.relu
    conv_name: str = "conv"
    norm_name: str = "bn"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else self.kernel_size
        s = (self.strides,) * 2 if isinstance(self.strides, int) else self.strides
        pad = self.padding
        if pad is None:
            pad = same_pad(k, self.dilation)
        elif isinstance(pad, int) or (isinstance(pad, tuple) and isinstance(pad[0], int)):
            pad = pad2d(pad)
        x = self.conv(
            self.features,
            tuple(k),
            strides=tuple(s),
            padding=pad,
            feature_group_count=self.groups,
            kernel_dilation=self.dilation,
            name=self.conv_name,
        )(x)
        if self.norm is not None:
            x = self.norm(name=self.norm_name)(x)
        if self.act is not None:
            x = self.act(x)
        return x


def _pool_pads(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[int, int]:
    """(left, right) padding reproducing PyTorch's output size, incl. ``ceil_mode``."""
    if ceil_mode:
        out = math.ceil((size + 2 * p - k) / s) + 1
        if (out - 1) * s >= size + p:  # PyTorch: last window must start inside the input
            out -= 1
    else:
        out = (size + 2 * p - k) // s + 1
    right = max((out - 1) * s + k - size - p, 0)
    return (p, right)


def _max_pool_native(x: Array, kernel: int, stride: int, pads: tuple[tuple[int, int], ...]) -> Array:
    return nn.max_pool(x, (kernel, kernel), (stride, stride), padding=pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_cpu(x: Array, kernel: int, stride: int, pads: tuple[tuple[int, int], ...]) -> Array:
    """Max pool whose gradient is written out. XLA:CPU differentiates ``reduce_window`` max
    into ``select_and_scatter``, 3-7× slower than the same gradient as k×k masked, strided
    pads (BENCHMARKS.md "Max-pool backward"). Each output's gradient goes to the first
    maximum of its window in row-major order, as PyTorch and ``select_and_scatter`` do, so
    the same inputs receive it as on the native path; where windows overlap, the sums of
    several shares may differ in the last bit (another order, and ≥ fp32 for bfloat16)."""
    return _max_pool_native(x, kernel, stride, pads)


def _max_pool_cpu_fwd(x, kernel, stride, pads):
    y = _max_pool_native(x, kernel, stride, pads)
    return y, (x, y)


def _max_pool_cpu_bwd(kernel, stride, pads, res, dy):
    x, y = res
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    oh, ow = y.shape[1:3]
    acc = jnp.promote_types(dy.dtype, jnp.float32)  # overlapping windows sum their shares
    dy, zero = dy.astype(acc), jnp.zeros((), acc)
    taken = jnp.zeros(y.shape, bool)
    dx = jnp.zeros(xp.shape, acc)
    for i in range(kernel):
        for j in range(kernel):
            end_h, end_w = i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1
            v = jax.lax.slice(xp, (0, i, j, 0), (xp.shape[0], end_h, end_w, xp.shape[3]), (1, stride, stride, 1))
            first = (v == y) & ~taken
            taken = taken | first
            dx = dx + jax.lax.pad(jnp.where(first, dy, zero), zero, (
                (0, 0, 0), (i, xp.shape[1] - end_h, stride - 1), (j, xp.shape[2] - end_w, stride - 1), (0, 0, 0)))
    (top, _), (left, _) = pads
    return (dx[:, top:top + x.shape[1], left:left + x.shape[2]].astype(x.dtype),)


_max_pool_cpu.defvjp(_max_pool_cpu_fwd, _max_pool_cpu_bwd)


def max_pool_2d(x: Array, kernel: int, stride: int, pads: Sequence[tuple[int, int]]) -> Array:
    """k×k max pool of an NHWC ``x`` with explicit (-inf) ``pads`` per spatial axis, its
    gradient formulated per backend as the convolutions are (:func:`conv_impl` forces one)."""
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    impl = _current_conv_impl()
    if impl == "native":
        return _max_pool_native(x, kernel, stride, pads)
    if impl == "cpu":
        return _max_pool_cpu(x, kernel, stride, pads)
    return jax.lax.platform_dependent(x, cpu=lambda x: _max_pool_cpu(x, kernel, stride, pads),
                                      default=lambda x: _max_pool_native(x, kernel, stride, pads))


def max_pool(x: Array, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> Array:
    """PyTorch ``MaxPool2d`` semantics (padding with -inf, optional ``ceil_mode``)."""
    pads = [_pool_pads(x.shape[i], kernel, stride, padding, ceil_mode) for i in (1, 2)]
    return max_pool_2d(x, kernel, stride, pads)


def avg_pool(
    x: Array,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Array:
    """PyTorch ``AvgPool2d`` semantics (zero padding counted unless told otherwise).

    With ``ceil_mode`` the extra right/bottom window part is never counted, as in PyTorch.
    """
    stride = kernel if stride is None else stride
    pads = [_pool_pads(x.shape[i], kernel, stride, padding, ceil_mode) for i in (1, 2)]
    win, strides = (1, kernel, kernel, 1), (1, stride, stride, 1)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, win, strides, [(0, 0), *pads, (0, 0)])
    if count_include_pad:
        # Count the symmetric padding but not the ceil-mode overhang.
        ones = jnp.ones((1, x.shape[1] + 2 * padding, x.shape[2] + 2 * padding, 1), x.dtype)
        extra = [(0, 0)] + [(0, max(pads[i][1] - padding, 0)) for i in range(2)] + [(0, 0)]
    else:
        ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
        extra = [(0, 0), *pads, (0, 0)]
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, win, strides, extra)
    return total / count


def adaptive_avg_pool(x: Array, output_size: int | tuple[int, int]) -> Array:
    """PyTorch ``AdaptiveAvgPool2d``: bin i spans [floor(i·H/o), ceil((i+1)·H/o))."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[1], x.shape[2]
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[0], oh, h // oh, ow, w // ow, x.shape[3]).mean(axis=(2, 4))

    def bins(n: int, o: int) -> list[tuple[int, int]]:
        return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]

    rows = [
        jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in bins(w, ow)], axis=1)
        for r0, r1 in bins(h, oh)
    ]
    return jnp.stack(rows, axis=1)


def global_avg_pool(x: Array, keepdims: bool = False) -> Array:
    """Mean over H and W (NiN's global average pooling)."""
    return jnp.mean(x, axis=(1, 2), keepdims=keepdims)


def flatten_nchw(x: Array) -> Array:
    """Flatten NHWC in PyTorch's C-H-W order so FC weights convert without permutation."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


class LocalResponseNorm(nn.Module):
    """Cross-channel local response normalisation (Krizhevsky et al. 2012, Sec. 3.3).

    ``b = a / (k + alpha' * sum_{j in window} a_j^2) ** beta`` with a window of ``size``
    channels centred on the channel. The paper uses ``alpha' = alpha``; PyTorch's
    ``nn.LocalResponseNorm`` (and Caffe) use ``alpha' = alpha / size``: choose with
    ``alpha_over_size``.
    """

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    alpha_over_size: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        sq = jnp.square(x.astype(jnp.float32))
        lo, hi = self.size // 2, (self.size - 1) // 2
        summed = jax.lax.reduce_window(
            sq, 0.0, jax.lax.add, (1, 1, 1, self.size), (1, 1, 1, 1),
            [(0, 0), (0, 0), (0, 0), (lo, hi)],
        )
        alpha = self.alpha / self.size if self.alpha_over_size else self.alpha
        return (x / jnp.power(self.k + alpha * summed, self.beta).astype(x.dtype)).astype(x.dtype)


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018, Fig. 2/3): GAP → FC-act → FC-gate → scale.

    The two FCs are 1×1 convolutions named ``fc1``/``fc2`` (as in timm and torchvision),
    which is the same function as dense layers on the pooled vector.
    """

    reduced: int
    act: Callable[[Array], Array] = nn.relu
    gate: Callable[[Array], Array] = nn.sigmoid
    dtype: Any = jnp.float32
    names: tuple[str, str] = ("fc1", "fc2")

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = make_conv(self.dtype, use_bias=True)
        s = global_avg_pool(x, keepdims=True)
        s = self.act(conv(self.reduced, (1, 1), name=self.names[0])(s))
        s = self.gate(conv(x.shape[-1], (1, 1), name=self.names[1])(s))
        return x * s


class DropPath(nn.Module):
    """Stochastic depth / drop-path (Huang et al. 2016; Larsson et al. 2017).

    Drops the whole residual branch per sample with probability ``rate`` in training and
    rescales survivors by ``1/(1-rate)`` so evaluation needs no change.
    """

    rate: float = 0.0

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


def channel_shuffle(x: Array, groups: int) -> Array:
    """ShuffleNet channel shuffle (Zhang et al. 2018, Sec. 3.1): (g, c/g) → (c/g, g)."""
    b, h, w, c = x.shape
    return x.reshape(b, h, w, groups, c // groups).swapaxes(3, 4).reshape(b, h, w, c)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without going >10% below ``v``.

    The rule of the MobileNet/EfficientNet reference code for width multipliers.
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def linear_drop_path_rates(total_blocks: int, final_rate: float) -> list[float]:
    """Per-block drop rates decaying linearly from 0 to ``final_rate`` (Huang et al. 2016).

    With survival ``p_l = 1 - l/L * (1 - p_L)``, block ``l`` (1-based) is dropped with
    probability ``l/L * (1 - p_L)``; ``final_rate = 1 - p_L`` (0.5 in the paper).
    """
    return [final_rate * (i + 1) / total_blocks for i in range(total_blocks)]


def fc_stack_head(
    x: Array,
    num_classes: int,
    drop_rate: float,
    train: bool,
    dtype: Any = jnp.float32,
    names: Sequence[str] = ("fc6", "fc7", "fc8"),
    hidden: Sequence[int] = (4096, 4096),
    dropout_first: bool = False,
    in_hw: tuple[int, int] | None = None,
    kernel_init: Callable[..., Array] | None = None,
) -> Array:
    """The 2012–14 FC tail (AlexNet, ZFNet, VGG): flatten → [dense → ReLU] per ``hidden`` → classifier.

    Call from a compact ``__call__``; the dense layers are created in the caller's scope as
    ``names`` (hidden layers, then the classifier). Dropout ``drop_rate`` comes after every
    hidden ReLU (the papers), or with ``dropout_first`` before every hidden dense and not
    before the classifier (torchvision's AlexNet). ``x`` is flattened in torch's C-H-W order;
    ``in_hw`` is the fixed map size FC6 was built for (checked). ``num_classes=0`` drops only
    the classifier and returns the last hidden layer's float32 output (timm's pre-logits).
    ``kernel_init`` initialises every dense kernel (default: PyTorch Linear's uniform ±1/√fan_in).
    """
    if in_hw is not None and tuple(x.shape[1:3]) != tuple(in_hw):
        raise ValueError(f"FC6 needs a {in_hw[0]}×{in_hw[1]} input map, got {tuple(x.shape[1:3])}")
    x = flatten_nchw(x)
    init = {"kernel_init": kernel_init} if kernel_init is not None else {}
    dense = make_dense(dtype, **init)
    for i, (width, name) in enumerate(zip(hidden, names, strict=False)):
        if i > 0 or dropout_first:
            x = nn.Dropout(drop_rate, deterministic=not train)(x)
        x = nn.relu(dense(width, name=name)(x))
    last_drop = 0.0 if dropout_first else drop_rate
    return classifier_head(x, num_classes, last_drop, train, dtype, name=names[len(hidden)], pool=None,
                           kernel_init=kernel_init)


# --- SE-Inception (shared by googlenet.py, inception_v3.py, inception_v4.py) -----------------
SE_PAPER = "Squeeze-and-Excitation Networks"


def inception_se(x: Array, reduction: int | None, name: str = "se") -> Array:
    """SE-Inception gate (Hu et al. 2018, Fig. 2) on a module output ``x``; identity when
    ``reduction`` is None (no parameters created).

    Call inside a compact module: the :class:`SqueezeExcite` becomes its submodule ``name``.
    The bottleneck has the paper's exact ``C // reduction`` units (no rounding, as in the
    authors' released SE-BN-Inception); it computes in ``x.dtype``.
    """
    if reduction is None:
        return x
    c = x.shape[-1]
    if c % reduction:
        raise ValueError(f"SE reduction {reduction} does not divide the {c} channels")
    return SqueezeExcite(c // reduction, dtype=x.dtype, name=name)(x)


def se_param_count(channels: Sequence[int], reduction: int = 16) -> int:
    """Parameters that SE blocks on modules with output widths ``channels`` add:
    C·C/r + C/r (FC1 with bias) + C/r·C + C (FC2 with bias) per block."""
    return sum(2 * c * (c // reduction) + c // reduction + c for c in channels)
