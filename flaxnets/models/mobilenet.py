"""MobileNet v1 and v2.

Papers:
  * Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications", arXiv 2017 — Table 1 (body), Fig. 3 (depthwise-separable unit:
    3×3 depthwise - BN - ReLU - 1×1 pointwise - BN - ReLU), Sec. 3.3 width multiplier α
    and resolution multiplier ρ, Tables 6/7 (accuracy, mult-adds, params).
    Table 1 lists the second-to-last depthwise conv as "s2"; its 7×7 input and every
    reference implementation make it stride 1 (a known typo), as here.
  * Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018 —
    Table 2 ((t, c, n, s) rows), Table 1 / Fig. 4 (inverted residual with linear
    bottleneck, ReLU6), Sec. 4 width multiplier (channels rounded to multiples of 8).

MobileNet v1 variants:
  * ``mobilenetv1_100`` / ``mobilenetv1_125`` are timm's architectures (twins): ReLU6
    instead of the paper's ReLU, channels ``make_divisible(α·c, 8)``, module names
    ``conv_stem``/``bn1``/``blocks.i.j.conv_dw``… as in timm's ``EfficientNet`` builder.
  * ``mobilenetv1_{100,075,050,025}_paper`` are the paper's α ∈ {1, 0.75, 0.5, 0.25} with
    ReLU (Fig. 3). For these α the paper's ``int(α·c)`` and timm's rounding coincide, so the
    parameter counts equal timm-style counts (4.23M/2.59M/1.33M/0.47M; paper: 4.2/2.6/1.3/0.5).
  * The resolution multiplier ρ is the input size (224·ρ ∈ {224, 192, 160, 128}, Table 7):
    the network is fully convolutional with global pooling, so any input ≥ 32 works and
    the parameter count does not change; pass the size to the data pipeline/``summary``.

MobileNet v2 (``mobilenet_v2``) follows torchvision (twin): module names
``features.i.conv.j`` …, dropout 0.2 (``drop_rate``) before ``classifier.1``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import INCEPTION_MEAN, INCEPTION_STD, features, register_model

ModuleDef = Any

V1_PAPER = "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
V2_PAPER = "MobileNetV2: Inverted Residuals and Linear Bottlenecks"

# Table 1 after the stem conv: per stage (pointwise output channels c, repeats n, stride s).
V1_STAGES: tuple[tuple[int, int, int], ...] = (
    (64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))
# Table 2 of the MobileNetV2 paper: (expansion t, channels c, repeats n, stride s).
V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class DepthwiseSeparable(nn.Module):
    """MobileNet v1 unit (Fig. 3 right): 3×3 depthwise-BN-act → 1×1 pointwise-BN-act."""

    features: int
    strides: int = 1
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        x = self.conv(c, (3, 3), strides=(self.strides,) * 2, padding=((1, 1), (1, 1)),
                      feature_group_count=c, name="conv_dw")(x)
        x = self.act(self.norm(name="bn1")(x))
        x = self.conv(self.features, (1, 1), padding="VALID", name="conv_pw")(x)
        return self.act(self.norm(name="bn2")(x))


def v1_channels(c: int, width_mult: float, round_to: int = 8) -> int:
    """Width of a Table 1 layer of ``c`` channels at α = ``width_mult``."""
    if round_to <= 1:
        return int(c * width_mult)
    return layers.make_divisible(c * width_mult, round_to)


class MobileNetV1(nn.Module):
    """MobileNet v1 (Howard et al. 2017, Table 1) with width multiplier α (Sec. 3.3).

    Attributes:
      width_mult: α; channels become ``make_divisible(α·c, round_to)``.
      round_to: channel divisor (8 as in timm; 1 gives the paper's plain ``int(α·c)``).
      act: ReLU (paper) or ReLU6 (timm's ``mobilenetv1_*``).
      drop_rate: dropout before the classifier (none in the paper or timm's default).

    Feature maps (``features_only``): the output of every stage ``blocks.0`` … ``blocks.4``
    (strides 2 … 32), as timm's ``feature_info``.
    """

    num_classes: int = 1000
    width_mult: float = 1.0
    round_to: int = 8
    act: Callable = nn.relu
    drop_rate: float = 0.0
    dtype: Any = jnp.float32

    def _ch(self, c: int) -> int:
        return v1_channels(c, self.width_mult, self.round_to)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        x = conv(self._ch(32), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), name="conv_stem")(x)
        x = self.act(norm(name="bn1")(x))
        for i, (c, n, s) in enumerate(V1_STAGES):
            for j in range(n):
                x = DepthwiseSeparable(self._ch(c), s if j == 0 else 1, conv=conv, norm=norm,
                                       act=self.act, name=f"blocks.{i}.{j}")(x)
            x = layers.tap(x, f"blocks.{i}")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="classifier")


def mobilenet_v1_anatomy(width_mult: float = 1.0, round_to: int = 8, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`MobileNetV1` built with these arguments."""
    maps, r = [], 2  # the stem conv has stride 2
    for i, (c, _, s) in enumerate(V1_STAGES):
        r *= s
        maps.append((f"blocks.{i}", v1_channels(c, width_mult, round_to), r))
    return {"num_features": maps[-1][1], "feature_info": features(*maps), "classifier": ("classifier",),
            "first_conv": "conv_stem"}


class InvertedResidual(nn.Module):
    """MobileNet v2 bottleneck (Table 1): 1×1 expand (t≠1) → 3×3 depthwise → linear 1×1,
    ReLU6 after the first two, identity shortcut when stride 1 and widths agree."""

    features: int
    strides: int
    expand_ratio: int
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable = nn.relu6

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cin = x.shape[-1]
        hidden = int(round(cin * self.expand_ratio))
        unit = functools.partial(layers.ConvBNAct, conv=self.conv, norm=self.norm, act=self.act,
                                 conv_name="0", norm_name="1")
        y, idx = x, 0
        if self.expand_ratio != 1:
            y = unit(hidden, 1, name="conv.0")(y)
            idx = 1
        y = unit(hidden, 3, strides=self.strides, groups=hidden, name=f"conv.{idx}")(y)
        y = self.conv(self.features, (1, 1), padding="VALID", name=f"conv.{idx + 1}")(y)
        y = self.norm(name=f"conv.{idx + 2}")(y)
        if self.strides == 1 and cin == self.features:
            y = x + y
        return y


def _v2_stage_ends(setting: Sequence[tuple[int, int, int, int]]) -> list[bool]:
    """Whether each (t, c, n, s) row ends a stride (the next row downsamples, or it is the last)."""
    return [k == len(setting) - 1 or setting[k + 1][3] > 1 for k in range(len(setting))]


class MobileNetV2(nn.Module):
    """MobileNet v2 (Sandler et al. 2018, Table 2) with width multiplier (Sec. 4).

    Attributes:
      width_mult: channels ``make_divisible(width_mult·c, 8)``; the last conv keeps 1280
        for multipliers below 1 (paper Sec. 6.1).
      setting: (t, c, n, s) rows of Table 2.
      drop_rate: dropout before the classifier (0.2 in torchvision).

    Feature maps (``features_only``): the last bottleneck at each stride (torchvision
    ``features.1/3/6/13/17`` for Table 2, the maps timm's ``mobilenetv2_100`` returns).
    """

    num_classes: int = 1000
    width_mult: float = 1.0
    setting: Sequence[tuple[int, int, int, int]] = V2_SETTING
    last_channel: int = 1280
    drop_rate: float = 0.2
    act: Callable = nn.relu6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        unit = functools.partial(layers.ConvBNAct, conv=conv, norm=norm, act=self.act,
                                 conv_name="0", norm_name="1")
        x = x.astype(self.dtype)
        x = unit(layers.make_divisible(32 * self.width_mult), 3, strides=2, name="features.0")(x)
        idx = 1
        for (t, c, n, s), end in zip(self.setting, _v2_stage_ends(self.setting), strict=True):
            out = layers.make_divisible(c * self.width_mult)
            for j in range(n):
                x = InvertedResidual(out, s if j == 0 else 1, t, conv=conv, norm=norm, act=self.act,
                                     name=f"features.{idx}")(x)
                idx += 1
            if end:
                x = layers.tap(x, f"features.{idx - 1}")
        last = layers.make_divisible(self.last_channel * max(1.0, self.width_mult))
        x = unit(last, 1, name=f"features.{idx}")(x)
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="classifier.1")


def mobilenet_v2_anatomy(width_mult: float = 1.0, setting: Sequence[tuple[int, int, int, int]] = V2_SETTING,
                         last_channel: int = 1280, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`MobileNetV2` built with these arguments."""
    maps, r, idx = [], 2, 0  # features.0 has stride 2
    for (_, c, n, s), end in zip(setting, _v2_stage_ends(setting), strict=True):
        r, idx = r * s, idx + n
        if end:
            maps.append((f"features.{idx}", layers.make_divisible(c * width_mult), r))
    return {"num_features": layers.make_divisible(last_channel * max(1.0, width_mult)),
            "feature_info": features(*maps), "classifier": ("classifier.1",), "first_conv": "features.0/0"}


def _register_v1(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One MobileNet v1 registry row: ``arch`` are :class:`MobileNetV1` fields."""
    register_model(name, functools.partial(MobileNetV1, **arch), **mobilenet_v1_anatomy(**arch), **info)


# --- MobileNet v1 ------------------------------------------------------------------------
# top1: the paper's Table 6 (single central 224 crop; TF-slim evaluation, central 0.875 crop,
# bilinear, which the paper-only rows use). timm twins: eval preprocessing of timm's default
# weights (``ra4_e3600_r224_in1k``: crop_pct 0.875 / 0.9, bicubic).
_V1 = dict(family="mobilenet", paper=V1_PAPER, year=2017, mean=INCEPTION_MEAN, std=INCEPTION_STD,
           min_size=32)
_V1_PAPER_NOTE = "Paper's ReLU version; resolution multiplier ρ = input size / 224 (Table 7)."
# timm architectures: ReLU6, channels rounded to multiples of 8.
_register_v1("mobilenetv1_100", dict(width_mult=1.0, act=nn.relu6), **_V1,
             table="Table 1 (timm variant: ReLU6)", top1=70.6, top1_protocol="1 crop 224", params=4_231_976,
             crop_pct=0.875, interpolation="bicubic", twin="timm:mobilenetv1_100",
             notes="timm's MobileNet v1: ReLU6 instead of ReLU; top1 is the paper's 1.0 MobileNet-224.")
_register_v1("mobilenetv1_125", dict(width_mult=1.25, act=nn.relu6), **_V1,
             table="Table 1, α = 1.25 (timm variant: ReLU6)", top1=None, params=6_270_840,
             crop_pct=0.9, interpolation="bicubic", twin="timm:mobilenetv1_125",
             notes="timm's α = 1.25 model (not in the paper).")
# The paper's models (ReLU), Table 6. Exact counts: stem 27·c0 + 2c0, per unit
# 9·cin + 2cin + cin·cout + 2cout, fc 1000·c + 1000 (tests/test_mobilenet.py recomputes
# them from Table 1; the paper rounds: 4.2 / 2.6 / 1.3 / 0.5 M).
_register_v1("mobilenetv1_100_paper", dict(width_mult=1.0, round_to=1, act=nn.relu), **_V1,
             table="Table 1, α = 1.0 (Table 6)", top1=70.6, top1_protocol="1 crop 224", params=4_231_976,
             notes=_V1_PAPER_NOTE)
_register_v1("mobilenetv1_075_paper", dict(width_mult=0.75, round_to=1, act=nn.relu), **_V1,
             table="Table 1, α = 0.75 (Table 6)", top1=68.4, top1_protocol="1 crop 224", params=2_585_560,
             notes=_V1_PAPER_NOTE)
_register_v1("mobilenetv1_050_paper", dict(width_mult=0.5, round_to=1, act=nn.relu), **_V1,
             table="Table 1, α = 0.5 (Table 6)", top1=63.7, top1_protocol="1 crop 224", params=1_331_592,
             notes=_V1_PAPER_NOTE)
_register_v1("mobilenetv1_025_paper", dict(width_mult=0.25, round_to=1, act=nn.relu), **_V1,
             table="Table 1, α = 0.25 (Table 6)", top1=50.6, top1_protocol="1 crop 224", params=470_072,
             notes=_V1_PAPER_NOTE)

# --- MobileNet v2 ------------------------------------------------------------------------
# top1: Table 4, single 224 crop. Eval preprocessing: torchvision's default IMAGENET1K_V2
# weights (resize 232, crop 224, bilinear).
register_model(
    "mobilenet_v2", MobileNetV2, **mobilenet_v2_anatomy(), family="mobilenet", paper=V2_PAPER, year=2018,
    table="Table 2", top1=72.0, top1_protocol="1 crop 224", params=3_504_872, crop_pct=224 / 232,
    twin="torchvision:mobilenet_v2", min_size=32,
    notes="Paper top-1 72.0 (Table 4); torchvision's weights reach 71.88.",
)
