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
from flaxnets.registry import register_model

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


class GhostNet(nn.Module):
    """GhostNet (Han et al. 2020, Table 1) with width multiplier.

    Attributes:
      width: width multiplier (1.0 = ``ghostnet_100``); channels ``make_divisible(w·c, 4)``.
      dropout_rate: dropout before the classifier (0.2 as in timm / the official code).
    """

    num_classes: int = 1000
    width: float = 1.0
    dropout_rate: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        x = conv(layers.make_divisible(16 * self.width, 4), (3, 3), strides=(2, 2),
                 padding=((1, 1), (1, 1)), name="conv_stem")(x)
        x = nn.relu(norm(name="bn1")(x))
        exp = 16
        for i, stage in enumerate(GHOSTNET_CFG):
            for j, (k, exp, c, se, s) in enumerate(stage):
                x = GhostBottleneck(layers.make_divisible(exp * self.width, 4),
                                    layers.make_divisible(c * self.width, 4), k, s, se, conv=conv,
                                    norm=norm, dtype=self.dtype, name=f"blocks.{i}.{j}")(x)
        x = layers.ConvBNAct(layers.make_divisible(exp * self.width, 4), 1, conv=conv, norm=norm,
                             conv_name="conv", norm_name="bn1", name=f"blocks.{len(GHOSTNET_CFG)}.0")(x)
        x = layers.global_avg_pool(x, keepdims=True)
        x = layers.make_conv(self.dtype, use_bias=True)(1280, (1, 1), name="conv_head")(x)
        x = nn.relu(x).reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = layers.make_dense(self.dtype)(self.num_classes, name="classifier")(x)
        return x.astype(jnp.float32)


# Paper Table 7 (width multiplier): 0.5× 2.6M / 42M FLOPs / 66.2; 1.0× 5.2M / 141M / 73.9;
# 1.3× 7.3M / 226M / 75.7 top-1. timm's twins: ghostnet_050/100/130.
_VARIANTS = {"ghostnet_050": (0.5, 2_587_292, 66.2), "ghostnet_100": (1.0, 5_182_508, 73.9),
             "ghostnet_130": (1.3, 7_358_820, 75.7)}
for _name, (_width, _params, _top1) in _VARIANTS.items():
    register_model(
        _name, functools.partial(GhostNet, width=_width), family="ghostnet", paper=PAPER, year=2020,
        table=f"Table 1, width {_width} (Table 7)", top1=_top1, params=_params, twin=f"timm:{_name}",
        min_size=32,
    )
