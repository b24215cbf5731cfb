"""Inception-v4 and Inception-ResNet-v1/v2.

Paper: Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact
of Residual Connections on Learning", AAAI 2017.
  * Inception-v4 (Fig. 9): stem Fig. 3, 4×Inception-A (Fig. 4), Reduction-A (Fig. 7,
    k, l, m, n = 192, 224, 256, 384, Table 1), 7×Inception-B (Fig. 5), Reduction-B
    (Fig. 8), 3×Inception-C (Fig. 6), average pool, dropout (keep 0.8), softmax.
  * Inception-ResNet-v1 (Fig. 15): stem Fig. 14, 5×Inception-ResNet-A (Fig. 10),
    Reduction-A (k, l, m, n = 192, 192, 256, 384), 10×Inception-ResNet-B (Fig. 11),
    Reduction-B (Fig. 12), 5×Inception-ResNet-C (Fig. 13).
  * Inception-ResNet-v2 (Fig. 15 with Figs. 16-19): timm's ``inception_resnet_v2``, which
    follows Google's released checkpoint (stem of Inception-v3 + "Mixed_5b" instead of
    Fig. 3; 10/20/9+1 residual blocks; final 1×1 conv to 1536 channels).
  * Sec. 3.3 (Fig. 20): residual branches are scaled by 0.1-0.3 before the addition;
    ``scales`` = (A, B, C) defaults to the released 0.17, 0.10, 0.20.

Every conv is Conv → BatchNorm (eps 1e-3) → ReLU, except the residual blocks' final 1×1
"up" convolution, which is linear with a bias (BatchNorm only on the traditional layers,
Sec. 3.2). Module names equal timm's ``state_dict`` paths, so timm weights convert 1:1.

SE-Inception-ResNet-v2 (``se_inception_resnet_v2``): Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018 / TPAMI 2019, Sec. 3.3 and Table 2 (19.80% / 4.79% top-1/top-5 error,
single 299 crop). Inception-ResNet follows the SE-ResNet scheme (Fig. 3): the SE block
(:class:`flaxnets.layers.SqueezeExcite`, r = 16, exact C/r) gates the residual branch — the
output of the linear 1×1 ``conv2d`` projection — before the Sec. 3.3 scaling and the
addition (``repeat.*/se``, ``block8/se``; the final linear block8 too). The non-residual
Inception modules follow the SE-Inception scheme (Fig. 2): SE on the concatenated output of
``mixed_5b`` and of the reductions ``mixed_6a`` / ``mixed_7a`` ("for each such module in
the architecture"; the authors' released SE-BN-Inception likewise gates its stride-2
modules). Stem convolutions and ``conv2d_7b`` carry none. That gives 43 SE blocks
(11 × C = 320, 21 × 1088, 11 × 2080); derived count: inception_resnet_v2's 55,843,464 +
Σ (C·C/r + C/r + C/r·C + C) (+9,249,254) = 65,092,718.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.layers import SE_PAPER, inception_se, se_param_count
from flaxnets.registry import INCEPTION_MEAN, INCEPTION_STD, features, register_model

ModuleDef = Any
Array = Any

PAPER = "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"

# A branch is a sequence of convs (features, kernel, stride, padding); named "<b>.<i>" in
# timm's nn.Sequential layout (or "<b>" when it holds a single conv).
Conv = tuple[int, int | tuple[int, int], int, int | tuple[int, int]]


def _branch(unit: ModuleDef, x: Array, convs: Sequence[Conv], name: str, seq: bool = True) -> Array:
    for i, (f, k, s, p) in enumerate(convs):
        x = unit(f, k, strides=s, padding=p, name=f"{name}.{i}" if seq else name)(x)
    return x


def _avg(x: Array) -> Array:
    return layers.avg_pool(x, 3, 1, padding=1, count_include_pad=False)


# --- Inception-v4 blocks ----------------------------------------------------------------

# ``features.<i>`` blocks whose outputs are feature maps (timm's feature_info).
V4_TAPS = (2, 3, 9, 17, 21)


class Mixed3a(nn.Module):
    """Stem (Fig. 3), first split: 3×3/2 max pool | 3×3/2 conv 96."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return jnp.concatenate([layers.max_pool(x, 3, 2), self.unit(96, 3, strides=2, name="conv")(x)], -1)


class Mixed4a(nn.Module):
    """Stem (Fig. 3), second split: 1×1 64 → 3×3 96 | 1×1 64 → 7×1 → 1×7 → 3×3 96."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b0 = _branch(self.unit, x, [(64, 1, 1, 0), (96, 3, 1, 0)], "branch0")
        b1 = _branch(self.unit, x, [(64, 1, 1, 0), (64, (1, 7), 1, (0, 3)), (64, (7, 1), 1, (3, 0)),
                                    (96, 3, 1, 0)], "branch1")
        return jnp.concatenate([b0, b1], -1)


class Mixed5a(nn.Module):
    """Stem (Fig. 3), third split: 3×3/2 conv 192 | 3×3/2 max pool."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return jnp.concatenate([self.unit(192, 3, strides=2, name="conv")(x), layers.max_pool(x, 3, 2)], -1)


class InceptionA(nn.Module):
    """Inception-A (Fig. 4), 35×35×384."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b0 = u(96, 1, name="branch0")(x)
        b1 = _branch(u, x, [(64, 1, 1, 0), (96, 3, 1, 1)], "branch1")
        b2 = _branch(u, x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)], "branch2")
        b3 = u(96, 1, name="branch3.1")(_avg(x))
        return jnp.concatenate([b0, b1, b2, b3], -1)


class ReductionA(nn.Module):
    """Reduction-A (Fig. 7): 3×3/2 conv n | 1×1 k → 3×3 l → 3×3/2 m | 3×3/2 max pool."""

    k: int
    l: int  # noqa: E741 (the paper's name)
    m: int
    n: int
    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b0 = self.unit(self.n, 3, strides=2, name="branch0")(x)
        b1 = _branch(self.unit, x, [(self.k, 1, 1, 0), (self.l, 3, 1, 1), (self.m, 3, 2, 0)], "branch1")
        return jnp.concatenate([b0, b1, layers.max_pool(x, 3, 2)], -1)


class InceptionB(nn.Module):
    """Inception-B (Fig. 5), 17×17×1024."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b0 = u(384, 1, name="branch0")(x)
        b1 = _branch(u, x, [(192, 1, 1, 0), (224, (1, 7), 1, (0, 3)), (256, (7, 1), 1, (3, 0))], "branch1")
        b2 = _branch(u, x, [(192, 1, 1, 0), (192, (7, 1), 1, (3, 0)), (224, (1, 7), 1, (0, 3)),
                            (224, (7, 1), 1, (3, 0)), (256, (1, 7), 1, (0, 3))], "branch2")
        b3 = u(128, 1, name="branch3.1")(_avg(x))
        return jnp.concatenate([b0, b1, b2, b3], -1)


class ReductionB(nn.Module):
    """Reduction-B of Inception-v4 (Fig. 8)."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b0 = _branch(self.unit, x, [(192, 1, 1, 0), (192, 3, 2, 0)], "branch0")
        b1 = _branch(self.unit, x, [(256, 1, 1, 0), (256, (1, 7), 1, (0, 3)), (320, (7, 1), 1, (3, 0)),
                                    (320, 3, 2, 0)], "branch1")
        return jnp.concatenate([b0, b1, layers.max_pool(x, 3, 2)], -1)


class InceptionC(nn.Module):
    """Inception-C (Fig. 6), 8×8×1536."""

    unit: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b0 = u(256, 1, name="branch0")(x)
        b1 = u(384, 1, name="branch1_0")(x)
        b1 = jnp.concatenate([u(256, (1, 3), padding=(0, 1), name="branch1_1a")(b1),
                              u(256, (3, 1), padding=(1, 0), name="branch1_1b")(b1)], -1)
        b2 = u(384, 1, name="branch2_0")(x)
        b2 = u(448, (3, 1), padding=(1, 0), name="branch2_1")(b2)
        b2 = u(512, (1, 3), padding=(0, 1), name="branch2_2")(b2)
        b2 = jnp.concatenate([u(256, (1, 3), padding=(0, 1), name="branch2_3a")(b2),
                              u(256, (3, 1), padding=(1, 0), name="branch2_3b")(b2)], -1)
        b3 = u(256, 1, name="branch3.1")(_avg(x))
        return jnp.concatenate([b0, b1, b2, b3], -1)


class InceptionV4(nn.Module):
    """Inception-v4 (Fig. 9), timm layout (``features.0`` … ``features.21``, ``last_linear``).

    Attributes:
      drop_rate: dropout before the classifier (Fig. 9: keep 0.8 → 0.2; timm's default 0).

    Feature maps (``features_only``): timm's ``feature_info``, the outputs of blocks
    :data:`V4_TAPS` (``features.2/3/9/17/21``: the last block at strides 2, 4, 8, 16, 32).
    """

    num_classes: int = 1000
    drop_rate: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        unit = _unit(train, self.dtype)
        x = x.astype(self.dtype)
        blocks: list[Any] = [
            functools.partial(unit, 32, 3, strides=2), functools.partial(unit, 32, 3),
            functools.partial(unit, 64, 3, padding=1),
            functools.partial(Mixed3a, unit), functools.partial(Mixed4a, unit),
            functools.partial(Mixed5a, unit),
            *[functools.partial(InceptionA, unit)] * 4,
            functools.partial(ReductionA, 192, 224, 256, 384, unit),
            *[functools.partial(InceptionB, unit)] * 7,
            functools.partial(ReductionB, unit),
            *[functools.partial(InceptionC, unit)] * 3,
        ]
        for i, block in enumerate(blocks):
            x = block(name=f"features.{i}")(x)
            if i in V4_TAPS:
                x = layers.tap(x, f"features.{i}")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="last_linear")


# --- Inception-ResNet blocks ------------------------------------------------------------

class ResidualInception(nn.Module):
    """Inception-ResNet block: branches → concat → linear 1×1 conv (bias) → ×scale → +x → ReLU.

    ``branches`` holds each branch's convs; ``seq`` says whether a one-conv branch is
    named ``branch0`` (False) or ``branch0.0`` (True, nn.Sequential). ``se_reduction``
    (SE-Inception-ResNet, Hu et al. 2018): an SE block on the projected residual branch,
    before the scaling and the addition.
    """

    branches: Sequence[Sequence[Conv]]
    scale: float
    unit: ModuleDef
    conv: ModuleDef
    activate: bool = True
    se_reduction: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        outs = [_branch(self.unit, x, convs, f"branch{i}", seq=len(convs) > 1)
                for i, convs in enumerate(self.branches)]
        y = self.conv(x.shape[-1], (1, 1), padding="VALID", name="conv2d")(jnp.concatenate(outs, -1))
        y = x + self.scale * inception_se(y, self.se_reduction)
        return nn.relu(y) if self.activate else y


class ReductionSplit(nn.Module):
    """A grid reduction: conv branches (last conv stride 2) concatenated with a 3×3/2 max pool
    (``se_reduction``: an SE block on the concatenated output)."""

    branches: Sequence[Sequence[Conv]]
    unit: ModuleDef
    se_reduction: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        outs = [_branch(self.unit, x, convs, f"branch{i}", seq=len(convs) > 1)
                for i, convs in enumerate(self.branches)]
        return inception_se(jnp.concatenate([*outs, layers.max_pool(x, 3, 2)], -1), self.se_reduction)


class Mixed5b(nn.Module):
    """Inception-ResNet-v2's released 35×35 entry module (an Inception-v3 "A" module, 320 out;
    ``se_reduction``: an SE block on its output)."""

    unit: ModuleDef
    se_reduction: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b0 = u(96, 1, name="branch0")(x)
        b1 = _branch(u, x, [(48, 1, 1, 0), (64, 5, 1, 2)], "branch1")
        b2 = _branch(u, x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)], "branch2")
        b3 = u(64, 1, name="branch3.1")(_avg(x))
        return inception_se(jnp.concatenate([b0, b1, b2, b3], -1), self.se_reduction)


# Branch specs: (features, kernel, stride, padding) per conv.
_1x7, _7x1 = ((1, 7), (0, 3)), ((7, 1), (3, 0))
_1x3, _3x1 = ((1, 3), (0, 1)), ((3, 1), (1, 0))
V2_A = [[(32, 1, 1, 0)], [(32, 1, 1, 0), (32, 3, 1, 1)], [(32, 1, 1, 0), (48, 3, 1, 1), (64, 3, 1, 1)]]
V2_B = [[(192, 1, 1, 0)], [(128, 1, 1, 0), (160, _1x7[0], 1, _1x7[1]), (192, _7x1[0], 1, _7x1[1])]]
V2_C = [[(192, 1, 1, 0)], [(192, 1, 1, 0), (224, _1x3[0], 1, _1x3[1]), (256, _3x1[0], 1, _3x1[1])]]
V2_RED_A = [[(384, 3, 2, 0)], [(256, 1, 1, 0), (256, 3, 1, 1), (384, 3, 2, 0)]]  # k,l,m,n=256,256,384,384
V2_RED_B = [[(256, 1, 1, 0), (384, 3, 2, 0)], [(256, 1, 1, 0), (288, 3, 2, 0)],
            [(256, 1, 1, 0), (288, 3, 1, 1), (320, 3, 2, 0)]]
V1_A = [[(32, 1, 1, 0)], [(32, 1, 1, 0), (32, 3, 1, 1)], [(32, 1, 1, 0), (32, 3, 1, 1), (32, 3, 1, 1)]]
V1_B = [[(128, 1, 1, 0)], [(128, 1, 1, 0), (128, _1x7[0], 1, _1x7[1]), (128, _7x1[0], 1, _7x1[1])]]
V1_C = [[(192, 1, 1, 0)], [(192, 1, 1, 0), (192, _1x3[0], 1, _1x3[1]), (192, _3x1[0], 1, _3x1[1])]]
V1_RED_A = [[(384, 3, 2, 0)], [(192, 1, 1, 0), (192, 3, 1, 1), (256, 3, 2, 0)]]  # k,l,m,n=192,192,256,384
V1_RED_B = [[(256, 1, 1, 0), (384, 3, 2, 0)], [(256, 1, 1, 0), (256, 3, 2, 0)],
            [(256, 1, 1, 0), (256, 3, 1, 1), (256, 3, 2, 0)]]


class InceptionResNet(nn.Module):
    """Inception-ResNet-v2 (``version=2``, timm layout) or the paper's v1 (``version=1``).

    v2 (timm / released checkpoint): conv2d_1a … conv2d_4a, max pool, mixed_5b (320),
    10×block35 (``repeat``), mixed_6a (Reduction-A), 20×block17 (``repeat_1``), mixed_7a
    (Reduction-B), 9×block8 (``repeat_2``) + a final block8 without ReLU and scale 1
    (``block8``), conv2d_7b 1×1 → 1536, average pool, ``classif``.

    v1 (paper Figs. 10-15): stem of Fig. 14 (… 1×1 80, 3×3 192, 3×3/2 256 → 35×35×256),
    5×A (256), Reduction-A (→ 896), 10×B, Reduction-B (→ 1792), 5×C, average pool,
    dropout, ``classif``.

    Attributes:
      scales: residual scaling (A, B, C) of Sec. 3.3 (0.17, 0.10, 0.20 as released).
      drop_rate: dropout before the classifier (Fig. 15: keep 0.8 → 0.2; timm's default 0).
      se_reduction: None → no SE; r → SE-Inception-ResNet (Hu et al. 2018): an SE block with
        reduction r on every residual branch (before scaling and addition) and on the
        output of mixed_5b (v2) and of both reduction modules.
      depths: the number of A, B and C blocks; None → the version's (v2: 10, 20, 9 and the
        final block8; v1: 5, 10, 5).

    Feature maps (``features_only``): v2 timm's ``feature_info``, the outputs of
    ``conv2d_2b`` (stride 2), ``conv2d_4a`` (4), ``repeat`` (8), ``repeat_1`` (16) and
    ``conv2d_7b`` (32); v1 the same names, ending with ``repeat_2`` (no 1×1 conv).
    """

    num_classes: int = 1000
    version: int = 2
    scales: tuple[float, float, float] = (0.17, 0.10, 0.20)
    drop_rate: float = 0.2
    se_reduction: int | None = None
    depths: tuple[int, int, int] | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        unit = _unit(train, self.dtype)
        conv = layers.make_conv(self.dtype, use_bias=True)
        sa, sb, sc = self.scales
        se = self.se_reduction
        x = x.astype(self.dtype)
        x = unit(32, 3, strides=2, name="conv2d_1a")(x)
        x = unit(32, 3, name="conv2d_2a")(x)
        x = layers.tap(unit(64, 3, padding=1, name="conv2d_2b")(x), "conv2d_2b")
        x = layers.max_pool(x, 3, 2)
        x = unit(80, 1, name="conv2d_3b")(x)
        x = layers.tap(unit(192, 3, name="conv2d_4a")(x), "conv2d_4a")
        if self.version == 2:
            x = layers.max_pool(x, 3, 2)
            x = Mixed5b(unit, se, name="mixed_5b")(x)
            spec = (V2_A, 10, V2_RED_A, V2_B, 20, V2_RED_B, V2_C, 9)
        elif self.version == 1:
            x = unit(256, 3, strides=2, name="conv2d_4b")(x)
            spec = (V1_A, 5, V1_RED_A, V1_B, 10, V1_RED_B, V1_C, 5)
        else:
            raise ValueError(f"version must be 1 or 2, got {self.version}")
        a, na, red_a, b, nb, red_b, c, nc = spec
        na, nb, nc = self.depths or (na, nb, nc)
        block = functools.partial(ResidualInception, unit=unit, conv=conv, se_reduction=se)
        for i in range(na):
            x = block(a, sa, name=f"repeat.{i}")(x)
        x = layers.tap(x, "repeat")  # timm's nn.Sequential of the A blocks
        x = ReductionSplit(red_a, unit, se, name="mixed_6a")(x)
        for i in range(nb):
            x = block(b, sb, name=f"repeat_1.{i}")(x)
        x = layers.tap(x, "repeat_1")
        x = ReductionSplit(red_b, unit, se, name="mixed_7a")(x)
        for i in range(nc):
            x = block(c, sc, name=f"repeat_2.{i}")(x)
        if self.version == 2:
            x = block(c, 1.0, activate=False, name="block8")(x)
            x = layers.tap(unit(1536, 1, name="conv2d_7b")(x), "conv2d_7b")
        else:
            x = layers.tap(x, "repeat_2")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="classif")


def _unit(train: bool, dtype: Any) -> ModuleDef:
    conv = layers.make_conv(dtype)
    norm = layers.batch_norm(train, dtype, epsilon=1e-3)
    return functools.partial(layers.ConvBNAct, conv=conv, norm=norm, padding=0)


def _count_convs(branches: Sequence[Sequence[Conv]], cin: int) -> tuple[int, int]:
    """(params, output channels) of conv-BN branches: k_h·k_w·c_in·c_out + 2·c_out each."""
    total, out = 0, 0
    for convs in branches:
        c = cin
        for f, k, _, _ in convs:
            kh, kw = (k, k) if isinstance(k, int) else k
            total += kh * kw * c * f + 2 * f
            c = f
        out += c
    return total, out


def inception_resnet_v1_param_count(num_classes: int = 1000) -> int:
    """Parameter count of Inception-ResNet-v1 derived from Figs. 10-14 and Reduction-A
    (k, l, m, n = 192, 192, 256, 384): conv weights + BN γ/β, residual 1×1 convs with
    bias, classifier."""
    total, _ = _count_convs([[(32, 3, 2, 0), (32, 3, 1, 0), (64, 3, 1, 1)]], 3)
    stem, _ = _count_convs([[(80, 1, 1, 0), (192, 3, 1, 0), (256, 3, 2, 0)]], 64)
    total += stem
    c = 256
    for branches, n, red in ((V1_A, 5, V1_RED_A), (V1_B, 10, V1_RED_B), (V1_C, 5, None)):
        p, inner = _count_convs(branches, c)
        total += n * (p + inner * c + c)
        if red is not None:
            p, out = _count_convs(red, c)
            total += p
            c = out + c  # + the max-pool pass-through
    return total + c * num_classes + num_classes


def inception_v4_anatomy(**_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of :class:`InceptionV4` (timm's feature_info)."""
    maps = (("features.2", 64, 2), ("features.3", 160, 4), ("features.9", 384, 8),
            ("features.17", 1024, 16), ("features.21", 1536, 32))
    return {"num_features": 1536, "feature_info": features(*maps), "classifier": ("last_linear",),
            "first_conv": "features.0/conv"}


def inception_resnet_anatomy(version: int = 2, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of an :class:`InceptionResNet` of ``version`` (v2: timm's
    feature_info; v1: the same stage ends, Fig. 15 widths 256, 896, 1792)."""
    if version == 2:
        maps = (("conv2d_2b", 64, 2), ("conv2d_4a", 192, 4), ("repeat", 320, 8), ("repeat_1", 1088, 16),
                ("conv2d_7b", 1536, 32))
    else:
        maps = (("conv2d_2b", 64, 2), ("conv2d_4a", 192, 4), ("repeat", 256, 8), ("repeat_1", 896, 16),
                ("repeat_2", 1792, 32))
    return {"num_features": maps[-1][1], "feature_info": features(*maps), "classifier": ("classif",),
            "first_conv": "conv2d_1a/conv"}


def _register(name: str, cls: type[nn.Module], arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are ``cls`` fields, ``info`` its metadata."""
    anatomy = inception_v4_anatomy(**arch) if cls is InceptionV4 else inception_resnet_anatomy(**arch)
    register_model(name, functools.partial(cls, **arch), **anatomy, family="inception_v4",
                   input_size=(299, 299, 3), min_size=75, mean=INCEPTION_MEAN, std=INCEPTION_STD, **info)


# Eval preprocessing: the timm twins' pretrained_cfg (tf_in1k tags: bicubic, crop 0.875 for
# inception_v4, 0.8975 for inception_resnet_v2); inception_resnet_v1 (paper-only) the 0.875
# default; se_inception_resnet_v2 the SENet protocol (resize 352, centre 299 crop). top1:
# Table 2 single 299 crop (audit fidelity-2026-12 §9; SENet Table 2, §14). Caveat (Sec. 5,
# "Experimental results", and the Table 2 caption): the single-crop numbers were measured on
# the non-blacklisted subset of the ILSVRC-2012 validation set (about 1,700 images with poor
# boxes left out), which the authors say reads about 0.3 % (top-1) and 0.15 % (top-5) more
# optimistic than the full 50,000 images; the 144-crop numbers (Table 4) use all 50,000. SENet
# Table 2 marks Inception-ResNet-v2's 19.9 with a dagger for this reason.
_BLACKLIST = (" Table 2 is measured on the non-blacklisted validation subset (~1,700 images left out; "
              "Sec. 5: ~0.3 % top-1 more optimistic than all 50,000).")
_register(
    "inception_v4", InceptionV4, {},
    paper=PAPER, year=2017, table="Figs. 3-9, Table 1", crop_pct=0.875, interpolation="bicubic",
    top1=80.0, top1_protocol="1 crop 299", params=42_679_816, twin="timm:inception_v4",
    notes="top1: single model, single crop (Table 2: 20.0% top-1 / 5.0% top-5 error; "
          "Table 4, 144 crops: 17.7% / 3.8%)." + _BLACKLIST,
)
_register(
    "inception_resnet_v2", InceptionResNet, {"version": 2, "depths": (10, 20, 9)},
    paper=PAPER, year=2017, table="Figs. 7, 15-19, Table 1", crop_pct=0.8975, interpolation="bicubic",
    top1=80.1, top1_protocol="1 crop 299", params=55_843_464, twin="timm:inception_resnet_v2",
    notes="timm / released-checkpoint layout: the stem is Inception-v3's + Mixed_5b (320 "
          "channels) rather than Fig. 3, and a final linear block8 + 1×1 conv to 1536. top1: "
          "single crop (Table 2: 19.9% / 4.9% error; 144 crops, Table 4: 17.8% / 3.7%)." + _BLACKLIST,
)
_register(
    "inception_resnet_v1", InceptionResNet, {"version": 1, "depths": (5, 10, 5)},
    paper=PAPER, year=2017, table="Figs. 10-15, Table 1",
    top1=78.7, top1_protocol="1 crop 299", params=inception_resnet_v1_param_count(),
    notes="Paper-only network; derived count inception_resnet_v1_param_count() (the paper "
          "gives none). Residual scales default to v2's (0.17, 0.10, 0.20). top1: single "
          "crop (Table 2: 21.3% / 5.5% error)." + _BLACKLIST,
)

# C of each SE block of SE-Inception-ResNet-v2: mixed_5b + 10 block35 (320), mixed_6a + 20
# block17 (1088), mixed_7a + 9 block8 + the final block8 (2080).
SE_INCEPTION_RESNET_V2_WIDTHS = [320] * 11 + [1088] * 21 + [2080] * 11

_register(
    "se_inception_resnet_v2", InceptionResNet, {"version": 2, "depths": (10, 20, 9), "se_reduction": 16},
    paper=SE_PAPER, year=2018, table="Table 2, Figs. 2-3, Sec. 3.3", crop_pct=299 / 352,
    top1=80.20, top1_protocol="1 crop 299", params=55_843_464 + se_param_count(SE_INCEPTION_RESNET_V2_WIDTHS),
    notes="inception_resnet_v2 (timm layout) with 43 SE blocks (r = 16): on every residual "
          "branch after its 1×1 projection, before scaling and addition, and on the outputs of "
          "mixed_5b, mixed_6a and mixed_7a. Derived count: inception_resnet_v2's 55,843,464 + "
          "Σ C·C/16 + C/16 + C/16·C + C over C = 320 ×11, 1088 ×21, 2080 ×11 (+9,249,254) = "
          "65,092,718. top1: Table 2, single 299 crop (19.80% / 4.79% top-1/top-5 error; "
          "the authors' re-implemented Inception-ResNet-v2 baseline: 20.37% / 5.21%; "
          "evaluated at a 299 centre crop of the image resized to 352).",
)
