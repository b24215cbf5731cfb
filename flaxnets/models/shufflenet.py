"""ShuffleNet v1 and v2.

Papers:
  * Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
    Mobile Devices", CVPR 2018 — Table 1 (architecture and output channels per group
    number g), Fig. 2 (b) unit: 1×1 GConv-BN-ReLU → channel shuffle → 3×3 DWConv-BN →
    1×1 GConv-BN, add, ReLU; (c) stride-2 unit: 3×3/2 DWConv and a 3×3/2 average-pooled
    shortcut, concatenated, ReLU. Sec. 3.3: bottleneck width = 1/4 of the unit's output;
    no group conv on the first pointwise layer of Stage 2; "ShuffleNet s×" scales every
    layer's filters by s. Table 2: complexity ≈ 140 / 38 / 13 MFLOPs at 1× / 0.5× / 0.25×.
  * Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
    Design", ECCV 2018 — Table 5 (architecture), Fig. 3 (c)/(d) units with channel split.

ShuffleNet v1 width rounding (our derivation; the paper gives no rule): at scale s the
conv1 width is ``make_divisible(24·s, g)``, Stage 2 has ``make_divisible(s·c₂, 4g)`` and
each later stage doubles it (as Table 1 does), so the bottleneck (c/4) and the residual
branch of a stride-2 unit (c − c_in) split into g groups. At 1× this reproduces Table 1 exactly; at 0.5× with
g = 3 / 8 it gives 12-120-240-480 / 16-192-384-768. Parameter counts follow from the
architecture (formula in ``tests/test_shufflenet.py``), e.g. 1× g=3: 1,865,728
(the paper reports complexity, not parameters).

ShuffleNet v2 module names equal torchvision's ``state_dict`` paths (``stage2.0.branch1.0``
…), so torchvision weights convert 1:1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import features, register_model

ModuleDef = Any

V1_PAPER = "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices"
V2_PAPER = "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"

# Table 1 of ShuffleNet v1: output channels of Stages 2-4 at 1× for each group number g.
V1_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
V1_REPEATS = (4, 8, 4)  # units per stage (first one has stride 2)
SMALL_NORMAL = nn.initializers.normal(0.01)  # v1's stem conv and classifier (authors' release)


def v1_widths(groups: int, scale: float) -> tuple[int, tuple[int, int, int]]:
    """(conv1 width, stage widths) of ShuffleNet ``scale``× with ``groups`` groups."""
    stem = layers.make_divisible(24 * scale, groups)
    first = layers.make_divisible(scale * V1_CHANNELS[groups][0], 4 * groups)
    return stem, (first, 2 * first, 4 * first)


def v1_conv_init(key: Any, shape: Sequence[int], dtype: Any = jnp.float32) -> jnp.ndarray:
    """The authors' conv init for ShuffleNet v1 (megvii-model/ShuffleNet-Series
    ``ShuffleNetV1/network.py``, ``_initialize_weights``): N(0, σ²) with σ = 1 / (input channels
    per group), ``weight.shape[1]`` of the torch kernel, ``shape[-2]`` of flax's. So a depthwise
    kernel starts at σ = 1, where the project's He fan-out init gives √(2 / (9·C)) (0.016 for
    C = 960): under SGD each of those tiny kernels moves by many times its own size per step."""
    return jax.random.normal(key, shape, dtype) / shape[-2]


class ShuffleV1Unit(nn.Module):
    """ShuffleNet unit (v1 Fig. 2 b/c); ``grouped_first=False`` for Stage 2's first unit."""

    features: int
    strides: int
    groups: int
    grouped_first: bool = True
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cin = x.shape[-1]
        mid = self.features // 4
        out = self.features - cin if self.strides == 2 else self.features
        g1 = self.groups if self.grouped_first else 1
        y = self.conv(mid, (1, 1), padding="VALID", feature_group_count=g1, name="gconv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        if g1 > 1:
            y = layers.channel_shuffle(y, self.groups)
        y = self.conv(mid, (3, 3), strides=(self.strides,) * 2, padding=((1, 1), (1, 1)),
                      feature_group_count=mid, name="dwconv")(y)
        y = self.norm(name="bn2")(y)
        y = self.conv(out, (1, 1), padding="VALID", feature_group_count=self.groups, name="gconv2")(y)
        y = self.norm(name="bn3")(y)
        if self.strides == 2:
            y = jnp.concatenate([layers.avg_pool(x, 3, 2, padding=1), y], axis=-1)
        else:
            y = y + x
        return nn.relu(y)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 (Zhang et al. 2018, Table 1) with g groups at scale s×.

    Attributes:
      groups: g ∈ {1, 2, 3, 4, 8} (Table 1 columns).
      scale: s (1.0, 0.5, 0.25 in Table 2); widths rounded as in the module docstring.
      drop_rate: dropout before the classifier (none in the paper).

    Feature maps (``features_only``): Table 1's Conv1 (stride 2), MaxPool (4) and the
    output of Stage 2, 3, 4 (8, 16, 32), named as ShuffleNet v2's torchvision modules.

    Initialisation: the paper gives none; the authors' release (see :func:`v1_conv_init`) draws
    the stem conv and the classifier from N(0, 0.01²) and every other conv from
    :func:`v1_conv_init`. (Its BatchNorm biases start at 1e-4 instead of 0; not copied.)
    """

    groups: int = 3
    scale: float = 1.0
    num_classes: int = 1000
    drop_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype, kernel_init=v1_conv_init)
        norm = layers.batch_norm(train, self.dtype)
        stem, widths = v1_widths(self.groups, self.scale)
        x = x.astype(self.dtype)
        x = conv(stem, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=SMALL_NORMAL,
                 name="conv1.0")(x)
        x = layers.tap(nn.relu(norm(name="conv1.1")(x)), "conv1")
        x = layers.tap(layers.max_pool(x, 3, 2, padding=1), "maxpool")
        for i, (c, n) in enumerate(zip(widths, V1_REPEATS, strict=True)):
            for j in range(n):
                x = ShuffleV1Unit(c, 2 if j == 0 else 1, self.groups, grouped_first=(i, j) != (0, 0),
                                  conv=conv, norm=norm, name=f"stage{i + 2}.{j}")(x)
            x = layers.tap(x, f"stage{i + 2}")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc",
                                      kernel_init=SMALL_NORMAL)


def _maps(stem: int, stages: Sequence[int]) -> tuple:
    return features(("conv1", stem, 2), ("maxpool", stem, 4),
                    *((f"stage{i + 2}", c, 8 * 2 ** i) for i, c in enumerate(stages)))


def shufflenet_v1_anatomy(groups: int = 3, scale: float = 1.0, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`ShuffleNetV1` with these arguments."""
    stem, widths = v1_widths(groups, scale)
    return {"num_features": widths[-1], "feature_info": _maps(stem, widths), "classifier": ("fc",),
            "first_conv": "conv1.0"}


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit (Fig. 3 c: channel split, stride 1; Fig. 3 d: stride 2), then a
    2-group channel shuffle. Names follow torchvision's ``InvertedResidual``."""

    features: int
    strides: int
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        half = self.features // 2
        s = (self.strides,) * 2

        def dw(y: jnp.ndarray, name: str) -> jnp.ndarray:
            c = y.shape[-1]
            return self.conv(c, (3, 3), strides=s, padding=((1, 1), (1, 1)), feature_group_count=c,
                             name=name)(y)

        def pw(y: jnp.ndarray, name: str) -> jnp.ndarray:
            return self.conv(half, (1, 1), padding="VALID", name=name)(y)

        if self.strides == 1:
            left, right = jnp.split(x, 2, axis=-1)
        else:
            left = right = x
            left = self.norm(name="branch1.1")(dw(left, "branch1.0"))
            left = nn.relu(self.norm(name="branch1.3")(pw(left, "branch1.2")))
        right = nn.relu(self.norm(name="branch2.1")(pw(right, "branch2.0")))
        right = self.norm(name="branch2.4")(dw(right, "branch2.3"))
        right = nn.relu(self.norm(name="branch2.6")(pw(right, "branch2.5")))
        return layers.channel_shuffle(jnp.concatenate([left, right], axis=-1), 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNet v2 (Ma et al. 2018, Table 5).

    Attributes:
      stage_out_channels: conv1, Stage 2-4 and conv5 widths (Table 5 column of the scale).
      stage_repeats: units per stage (4, 8, 4).
      drop_rate: dropout before the classifier (none in the paper or torchvision).

    Feature maps (``features_only``): the torchvision modules ``conv1`` (stride 2),
    ``maxpool`` (4), ``stage2``, ``stage3``, ``stage4`` (8, 16, 32); ``num_classes=0``
    returns the pooled ``conv5`` output.
    """

    stage_out_channels: Sequence[int] = (24, 116, 232, 464, 1024)
    stage_repeats: Sequence[int] = (4, 8, 4)
    num_classes: int = 1000
    drop_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        chans = self.stage_out_channels
        x = x.astype(self.dtype)
        x = conv(chans[0], (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), name="conv1.0")(x)
        x = layers.tap(nn.relu(norm(name="conv1.1")(x)), "conv1")
        x = layers.tap(layers.max_pool(x, 3, 2, padding=1), "maxpool")
        for i, (c, n) in enumerate(zip(chans[1:4], self.stage_repeats, strict=True)):
            for j in range(n):
                x = ShuffleV2Unit(c, 2 if j == 0 else 1, conv=conv, norm=norm, name=f"stage{i + 2}.{j}")(x)
            x = layers.tap(x, f"stage{i + 2}")
        x = conv(chans[4], (1, 1), padding="VALID", name="conv5.0")(x)
        x = nn.relu(norm(name="conv5.1")(x))
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc")


def shufflenet_v2_anatomy(stage_out_channels: Sequence[int] = (24, 116, 232, 464, 1024),
                          **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`ShuffleNetV2` with these widths."""
    c = stage_out_channels
    return {"num_features": c[4], "feature_info": _maps(c[0], c[1:4]), "classifier": ("fc",),
            "first_conv": "conv1.0"}


def _register_v1(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One ShuffleNet v1 registry row: ``arch`` are :class:`ShuffleNetV1` fields."""
    register_model(name, functools.partial(ShuffleNetV1, **arch), **shufflenet_v1_anatomy(**arch), **info)


def _register_v2(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One ShuffleNet v2 registry row: ``arch`` are :class:`ShuffleNetV2` fields."""
    register_model(name, functools.partial(ShuffleNetV2, **arch), **shufflenet_v2_anatomy(**arch), **info)


# --- ShuffleNet v1: g ∈ {1, 2, 3, 4, 8} × s ∈ {1, 0.5, 0.25} -------------------------------
# top1 at 1×: Table 2 classification error (%) g=1 33.6, g=2 32.7, g=3 32.6, g=4 32.8, g=8 32.4,
# "single-crop" on a 224 centre crop (Sec. 4); the audit (fidelity-2026-12.md §19) checks the
# values. Derived parameter counts (tests/test_shufflenet.py has the closed form).
_V1 = dict(family="shufflenet", paper=V1_PAPER, year=2018, min_size=32,
           notes="Paper-only; derived parameter count. Width rounding at s < 1 is ours (module doc).")
_V1_TOP1 = dict(top1_protocol="1 crop 224")

_register_v1("shufflenet_v1_g1", dict(groups=1, scale=1.0), **_V1, table="Table 1 (g = 1), 1.0× (Table 2)",
             top1=66.4, **_V1_TOP1, params=1_531_936)
_register_v1("shufflenet_v1_g2", dict(groups=2, scale=1.0), **_V1, table="Table 1 (g = 2), 1.0× (Table 2)",
             top1=67.3, **_V1_TOP1, params=1_733_848)
_register_v1("shufflenet_v1_g3", dict(groups=3, scale=1.0), **_V1, table="Table 1 (g = 3), 1.0× (Table 2)",
             top1=67.4, **_V1_TOP1, params=1_865_728)
_register_v1("shufflenet_v1_g4", dict(groups=4, scale=1.0), **_V1, table="Table 1 (g = 4), 1.0× (Table 2)",
             top1=67.2, **_V1_TOP1, params=1_968_344)
_register_v1("shufflenet_v1_g8", dict(groups=8, scale=1.0), **_V1, table="Table 1 (g = 8), 1.0× (Table 2)",
             top1=67.6, **_V1_TOP1, params=2_434_768)
_register_v1("shufflenet_v1_g1_x0_5", dict(groups=1, scale=0.5), **_V1,
             table="Table 1 (g = 1), 0.5× (Table 2)", params=534_484)
_register_v1("shufflenet_v1_g2_x0_5", dict(groups=2, scale=0.5), **_V1,
             table="Table 1 (g = 2), 0.5× (Table 2)", params=678_520)
_register_v1("shufflenet_v1_g3_x0_5", dict(groups=3, scale=0.5), **_V1,
             table="Table 1 (g = 3), 0.5× (Table 2)", params=718_324)
_register_v1("shufflenet_v1_g4_x0_5", dict(groups=4, scale=0.5), **_V1,
             table="Table 1 (g = 4), 0.5× (Table 2)", params=835_984)
_register_v1("shufflenet_v1_g8_x0_5", dict(groups=8, scale=0.5), **_V1,
             table="Table 1 (g = 8), 0.5× (Table 2)", params=1_011_448)
_register_v1("shufflenet_v1_g1_x0_25", dict(groups=1, scale=0.25), **_V1,
             table="Table 1 (g = 1), 0.25× (Table 2)", params=209_746)
_register_v1("shufflenet_v1_g2_x0_25", dict(groups=2, scale=0.25), **_V1,
             table="Table 1 (g = 2), 0.25× (Table 2)", params=253_534)
_register_v1("shufflenet_v1_g3_x0_25", dict(groups=3, scale=0.25), **_V1,
             table="Table 1 (g = 3), 0.25× (Table 2)", params=305_902)
_register_v1("shufflenet_v1_g4_x0_25", dict(groups=4, scale=0.25), **_V1,
             table="Table 1 (g = 4), 0.25× (Table 2)", params=314_848)
_register_v1("shufflenet_v1_g8_x0_25", dict(groups=8, scale=0.25), **_V1,
             table="Table 1 (g = 8), 0.25× (Table 2)", params=454_504)

# --- ShuffleNet v2 (torchvision twins) -------------------------------------------------------
# top1: Table 8, 100 - error, single 224 crop (v2 follows v1's protocol). Eval preprocessing:
# torchvision's default IMAGENET1K_V1 weights (x0_5 / x1_0: resize 256; x1_5 / x2_0: resize
# 232; crop 224, bilinear).
_V2 = dict(family="shufflenet", paper=V2_PAPER, year=2018, table="Table 5", min_size=32,
           top1_protocol="1 crop 224")

_register_v2("shufflenet_v2_x0_5", dict(stage_out_channels=(24, 48, 96, 192, 1024)), **_V2, top1=60.3,
             params=1_366_792, crop_pct=0.875, twin="torchvision:shufflenet_v2_x0_5")
_register_v2("shufflenet_v2_x1_0", dict(stage_out_channels=(24, 116, 232, 464, 1024)), **_V2, top1=69.4,
             params=2_278_604, crop_pct=0.875, twin="torchvision:shufflenet_v2_x1_0")
_register_v2("shufflenet_v2_x1_5", dict(stage_out_channels=(24, 176, 352, 704, 1024)), **_V2, top1=72.6,
             params=3_503_624, crop_pct=224 / 232, twin="torchvision:shufflenet_v2_x1_5")
_register_v2("shufflenet_v2_x2_0", dict(stage_out_channels=(24, 244, 488, 976, 2048)), **_V2, top1=74.9,
             params=7_393_996, crop_pct=224 / 232, twin="torchvision:shufflenet_v2_x2_0")
