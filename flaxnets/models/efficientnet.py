"""EfficientNet B0–B7.

Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019 — Table 1 (the B0 baseline: MBConv stages with kernel, stride,
expansion, channels and repeats), Sec. 3.3 / Eq. 3 (compound scaling: depth d = α^φ,
width w = β^φ, resolution r = γ^φ) and Table 2 (B0–B7 results). The per-variant
(width, depth, resolution, dropout) coefficients are the reference code's, which
torchvision follows.

Blocks (Sec. 4 and Sandler et al. 2018; Hu et al. 2018): MBConv = 1×1 expansion (skipped
for expansion 1) → k×k depthwise → squeeze-and-excitation (squeeze width ¼ of the block's
input channels, SiLU) → 1×1 linear projection, BatchNorm after every conv, swish/SiLU
activations, identity shortcut when the shape is kept, with stochastic depth
("drop-connect", rate 0.2 · block index / number of blocks in the paper's training; the
field defaults to 0 and the recipe sets 0.2) on the residual branch. Depth scales the
repeats by ceil(n·d); width scales channels with :func:`flaxnets.layers.make_divisible`
(multiples of 8).

Module names equal torchvision's ``state_dict`` paths (``features.0.0``,
``features.1.0.block.0.0``, ``features.2.0.block.2.fc1``, ``classifier.1``), so
:func:`flaxnets.from_torch` converts ``torchvision.models.efficientnet_b*`` weights 1:1.
torchvision pads symmetrically (PyTorch style) rather than TF's "SAME"; B0–B4 use
PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1) and B5–B7 eps 1e-3, momentum 0.01.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import register_model

ModuleDef = Any

PAPER = "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"

# Table 1 (B0): (expansion, kernel, stride, in channels, out channels, repeats) per stage
# (stages 2–8 of the table; stage 1 is the 3×3 stem conv and stage 9 the 1×1 head conv).
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def round_filters(channels: int, width_mult: float) -> int:
    """Width scaling: ``channels · w`` rounded to a multiple of 8 (not >10 % below)."""
    return layers.make_divisible(channels * width_mult, 8)


def round_repeats(repeats: int, depth_mult: float) -> int:
    """Depth scaling: ``ceil(repeats · d)``."""
    return int(math.ceil(repeats * depth_mult))


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation (paper Table 1, "MBConv")."""

    features: int
    expand_ratio: int
    kernel_size: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable = nn.silu
    drop_path: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        in_ch = x.shape[-1]
        unit = functools.partial(layers.ConvBNAct, conv=self.conv, norm=self.norm, act=self.act,
                                 conv_name="0", norm_name="1")
        expanded = round_filters(in_ch, self.expand_ratio)
        i = 0
        y = x
        if expanded != in_ch:
            y = unit(expanded, 1, name=f"block.{i}")(y)
            i += 1
        y = unit(expanded, self.kernel_size, strides=self.strides, groups=expanded,
                 name=f"block.{i}")(y)
        y = layers.SqueezeExcite(max(1, in_ch // 4), act=nn.silu, dtype=self.dtype,
                                 name=f"block.{i + 1}")(y)
        y = unit(self.features, 1, act=None, name=f"block.{i + 2}")(y)
        if self.strides == 1 and in_ch == self.features:
            y = layers.DropPath(self.drop_path)(y, deterministic=not train)
            y = y + x
        return y


class EfficientNet(nn.Module):
    """EfficientNet: the B0 baseline of Table 1 scaled by (width, depth) as in Eq. 3.

    Attributes:
      width_mult, depth_mult: compound-scaling coefficients (w, d) of the variant.
      dropout_rate: dropout before the classifier (0.2 … 0.5 from B0 to B7).
      drop_path_rate: stochastic depth rate; block ``i`` of ``n`` drops with
        ``drop_path_rate · i / n``. The paper and torchvision train with 0.2 (set by the
        recipe via ``model_overrides``); the default is 0 so that a model built without
        overrides is deterministic apart from dropout, as in timm.
      bn_eps, bn_momentum: BatchNorm epsilon and PyTorch-style momentum.
      stages: the B0 stage table (expansion, kernel, stride, in, out, repeats).
    """

    width_mult: float = 1.0
    depth_mult: float = 1.0
    dropout_rate: float = 0.2
    drop_path_rate: float = 0.0
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    stages: Sequence[tuple[int, int, int, int, int, int]] = B0_STAGES
    num_classes: int = 1000
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype, epsilon=self.bn_eps,
                                 momentum=1.0 - self.bn_momentum)
        act = nn.silu
        x = x.astype(self.dtype)
        stem = round_filters(self.stages[0][3], self.width_mult)
        x = layers.ConvBNAct(stem, 3, strides=2, conv=conv, norm=norm, act=act, conv_name="0",
                             norm_name="1", name="features.0")(x)
        repeats = [round_repeats(s[5], self.depth_mult) for s in self.stages]
        total, idx = sum(repeats), 0
        for i, ((expand, k, stride, _, out, _), n) in enumerate(zip(self.stages, repeats, strict=True)):
            for j in range(n):
                x = MBConv(round_filters(out, self.width_mult), expand, k, stride if j == 0 else 1,
                           conv=conv, norm=norm, act=act,
                           drop_path=self.drop_path_rate * idx / total, dtype=self.dtype,
                           name=f"features.{i + 1}.{j}")(x, train)
                idx += 1
        head = 4 * round_filters(self.stages[-1][4], self.width_mult)
        x = layers.ConvBNAct(head, 1, conv=conv, norm=norm, act=act, conv_name="0", norm_name="1",
                             name=f"features.{len(self.stages) + 1}")(x)
        x = layers.global_avg_pool(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = layers.make_dense(self.dtype)(self.num_classes, name="classifier.1")(x)
        return x.astype(jnp.float32)


# name: (width w, depth d, resolution, dropout, torchvision param count, paper Table 2
# top-1). Coefficients from the reference implementation (φ = 0 … 7 of Eq. 3, rounded).
_VARIANTS = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2, 5_288_548, 77.1),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2, 7_794_184, 79.1),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3, 9_109_994, 80.1),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3, 12_233_232, 81.6),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4, 19_341_616, 82.9),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4, 30_389_784, 83.6),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5, 43_040_704, 84.0),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5, 66_347_960, 84.3),
}

for _name, (_w, _d, _res, _drop, _params, _top1) in _VARIANTS.items():
    _big = _name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
    register_model(
        _name,
        functools.partial(EfficientNet, width_mult=_w, depth_mult=_d, dropout_rate=_drop,
                          bn_eps=1e-3 if _big else 1e-5, bn_momentum=0.01 if _big else 0.1),
        family="efficientnet", paper=PAPER, year=2019, table="Table 1 (B0), Eq. 3, Table 2",
        input_size=(_res, _res, 3), min_size=32, top1=_top1, params=_params,
        twin=f"torchvision:{_name}",
        # b0 is checked at a non-square odd size too; the bigger ones at a small odd size
        # (their default size is large and slow on CPU).
        twin_sizes=((193, 257),) if _name == "efficientnet_b0" else ((97, 129),),
        notes=f"w={_w}, d={_d}, dropout {_drop}; torchvision pads symmetrically (the TF "
              "reference uses 'SAME'); BN eps/momentum as torchvision.",
    )
