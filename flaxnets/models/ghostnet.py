"""GhostNet.

Paper: Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020.
  * Sec. 3.1 / Fig. 2: Ghost module — a primary 1×1 conv produces m = ⌈n/s⌉ intrinsic
    maps (s = 2), a cheap 3×3 depthwise conv generates the ghost maps, both concatenated
    (and cut to n).
  * Sec. 3.2 / Fig. 3: Ghost bottleneck — Ghost module (ReLU) → [3×3/2 or 5×5/2 depthwise +
    BN for stride 2] → [SE] → Ghost module (no ReLU) + shortcut (identity, or depthwise +
    pointwise conv with BN when the shape changes).
  * Table 1: the network (#exp, #out, SE, stride per bottleneck), 1×1 conv to 960, global
    pooling, 1×1 conv to 1280 with ReLU, FC. Table 5/7: 5.2M params, 141M FLOPs, 73.9 top-1.

The SE block follows timm (``ghostnet_100``): reduction ``make_divisible(c/4, 4)``, ReLU,
hard-sigmoid gate (``relu6(x + 3) / 6``); width multiplier channels ``make_divisible(w·c, 4)``.
Module names equal timm's ``state_dict`` paths (``blocks.3.0.ghost1.primary_conv.0`` …).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import features, register_model

ModuleDef = Any

PAPER = "GhostNet: More Features from Cheap Operations"

# Table 1, grouped into timm's stages: (kernel, #exp, #out, SE ratio, stride).
GHOSTNET_CFG: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    ((3, 200, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 184, 80, 0.0, 1),
     (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)),
)


class GhostModule(nn.Module):
    """Ghost module (Fig. 2): primary 1×1 conv-BN-act, cheap depthwise conv-BN-act, concat."""

    features: int
    ratio: int = 2
    dw_size: int = 3
    relu: bool = True
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = nn.relu if self.relu else (lambda y: y)
        init = math.ceil(self.features / self.ratio)
        p = self.dw_size // 2
        x1 = self.conv(init, (1, 1), padding="VALID", name="primary_conv.0")(x)
        x1 = act(self.norm(name="primary_conv.1")(x1))
        x2 = self.conv(init * (self.ratio - 1), (self.dw_size,) * 2, padding=((p, p), (p, p)),
                       feature_group_count=init, name="cheap_operation.0")(x1)
        x2 = act(self.norm(name="cheap_operation.1")(x2))
        return jnp.concatenate([x1, x2], axis=-1)[..., : self.features]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck (Fig. 3) with optional SE between the depthwise conv and ghost2."""

    mid: int
    features: int
    kernel: int = 3
    strides: int = 1
    se_ratio: float = 0.0
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cin = x.shape[-1]
        p = (self.kernel - 1) // 2
        s = (self.strides,) * 2
        y = GhostModule(self.mid, relu=True, conv=self.conv, norm=self.norm, name="ghost1")(x)
        if self.strides > 1:
            y = self.conv(self.mid, (self.kernel,) * 2, strides=s, padding=((p, p), (p, p)),
                          feature_group_count=self.mid, name="conv_dw")(y)
            y = self.norm(name="bn_dw")(y)
        if self.se_ratio > 0:
            reduced = layers.make_divisible(self.mid * self.se_ratio, 4)
            y = layers.SqueezeExcite(reduced, act=nn.relu, gate=jax.nn.hard_sigmoid, dtype=self.dtype,
                                     names=("conv_reduce", "conv_expand"), name="se")(y)
        y = GhostModule(self.features, relu=False, conv=self.conv, norm=self.norm, name="ghost2")(y)
        if cin == self.features and self.strides == 1:
            return y + x
        sc = self.conv(cin, (self.kernel,) * 2, strides=s, padding=((p, p), (p, p)),
                       feature_group_count=cin, name="shortcut.0")(x)
        sc = self.norm(name="shortcut.1")(sc)
        sc = self.conv(self.features, (1, 1), padding="VALID", name="shortcut.2")(sc)
        return y + self.norm(name="shortcut.3")(sc)


def _stage_strides() -> list[int]:
    """Stride of each stage of Table 1 (its last row's, as timm counts them)."""
    return [stage[-1][4] for stage in GHOSTNET_CFG]


class GhostNet(nn.Module):
    """GhostNet (Han et al. 2020, Table 1) with width multiplier.

    Attributes:
      width: width multiplier (1.0 = ``ghostnet_100``); channels ``make_divisible(w·c, 4)``.
      drop_rate: dropout before the classifier (0.2 as in timm / the official code).

    Feature maps (``features_only``): timm's ``feature_info``: the stem conv's output (before
    its BatchNorm, as timm's hook on ``conv_stem``) and every stride-2 stage (``blocks.1/3/5/7``).
    ``num_classes=0`` returns the pooled 960·w features before ``conv_head`` (timm's
    ``num_features``): the head conv belongs to the classifier.
    """

    num_classes: int = 1000
    width: float = 1.0
    drop_rate: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        x = conv(layers.make_divisible(16 * self.width, 4), (3, 3), strides=(2, 2),
                 padding=((1, 1), (1, 1)), name="conv_stem")(x)
        x = layers.tap(x, "conv_stem")
        x = nn.relu(norm(name="bn1")(x))
        exp = 16
        for i, (stage, stride) in enumerate(zip(GHOSTNET_CFG, _stage_strides(), strict=True)):
            for j, (k, exp, c, se, s) in enumerate(stage):
                x = GhostBottleneck(layers.make_divisible(exp * self.width, 4),
                                    layers.make_divisible(c * self.width, 4), k, s, se, conv=conv,
                                    norm=norm, dtype=self.dtype, name=f"blocks.{i}.{j}")(x)
            if stride > 1:
                x = layers.tap(x, f"blocks.{i}")
        x = layers.ConvBNAct(layers.make_divisible(exp * self.width, 4), 1, conv=conv, norm=norm,
                             conv_name="conv", norm_name="bn1", name=f"blocks.{len(GHOSTNET_CFG)}.0")(x)
        x = layers.global_avg_pool(x, keepdims=True)
        if self.num_classes == 0:
            return x.reshape(x.shape[0], -1).astype(jnp.float32)
        x = layers.make_conv(self.dtype, use_bias=True)(1280, (1, 1), name="conv_head")(x)
        x = nn.relu(x)
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype,
                                      name="classifier", pool=None, flatten=True)


def ghostnet_anatomy(width: float = 1.0, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`GhostNet` of ``width`` (timm's feature_info)."""
    maps, r = [("conv_stem", layers.make_divisible(16 * width, 4), 2)], 2
    for i, (stage, stride) in enumerate(zip(GHOSTNET_CFG, _stage_strides(), strict=True)):
        if stride > 1:
            r *= stride
            maps.append((f"blocks.{i}", layers.make_divisible(stage[-1][2] * width, 4), r))
    return {"num_features": layers.make_divisible(GHOSTNET_CFG[-1][-1][1] * width, 4),
            "feature_info": features(*maps), "classifier": ("classifier", "conv_head"),
            "first_conv": "conv_stem"}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`GhostNet` fields, ``info`` its metadata."""
    register_model(name, functools.partial(GhostNet, **arch), **ghostnet_anatomy(**arch), **info)


# Paper Table 7 (width multiplier): 0.5× 2.6M / 42M FLOPs / 66.2; 1.0× 5.2M / 141M / 73.9;
# 1.3× 7.3M / 226M / 75.7 top-1, single 224 crop (the standard ImageNet protocol the paper
# compares under; audit fidelity-2026-12.md §20). timm's twins: ghostnet_050/100/130; eval
# preprocessing from timm's pretrained cfgs (crop_pct 0.875, bicubic).
_COMMON = dict(family="ghostnet", paper=PAPER, year=2020, min_size=32, crop_pct=0.875,
               interpolation="bicubic", top1_protocol="1 crop 224")

_register("ghostnet_050", dict(width=0.5), **_COMMON, table="Table 1, width 0.5 (Table 7)", top1=66.2,
          params=2_587_292, twin="timm:ghostnet_050")
_register("ghostnet_100", dict(width=1.0), **_COMMON, table="Table 1, width 1.0 (Table 7)", top1=73.9,
          params=5_182_508, twin="timm:ghostnet_100")
_register("ghostnet_130", dict(width=1.3), **_COMMON, table="Table 1, width 1.3 (Table 7)", top1=75.7,
          params=7_358_820, twin="timm:ghostnet_130")
