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
from flaxnets.registry import features, register_model

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
    zero_init_last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        in_ch = x.shape[-1]
        residual = self.strides == 1 and in_ch == self.features
        unit = functools.partial(layers.ConvBNAct, conv=self.conv, norm=self.norm, act=self.act,
                                 conv_name="0", norm_name="1")
        expanded = round_filters(in_ch, self.expand_ratio)
        i = 0
        y = x
        if expanded != in_ch:
            y = unit(expanded, 1, name=f"block.{i}")(y)
            i += 1
        # The reference initialises the depthwise kernel (TF layout (k, k, C, 1)) with the same
        # N(0, 2/fan_out) as every conv, fan_out = k·k·1 (tensorflow/tpu
        # models/official/efficientnet/efficientnet_model.py: conv_kernel_initializer,
        # depthwise_initializer). In flax's layout (k, k, 1, C) that fan is the fan-in; the
        # default fan-out init (torchvision's) counts k·k·C: a kernel √C times smaller, whose
        # relative updates under the recipe's RMSProp (ε-dominated, ≈ SGD) are C times larger.
        dw_conv = functools.partial(self.conv, kernel_init=layers.conv_init_fan_in)
        y = unit(expanded, self.kernel_size, strides=self.strides, groups=expanded, conv=dw_conv,
                 name=f"block.{i}")(y)
        y = layers.SqueezeExcite(max(1, in_ch // 4), act=nn.silu, dtype=self.dtype,
                                 name=f"block.{i + 1}")(y)
        project_norm = self.norm
        if residual and self.zero_init_last:
            project_norm = functools.partial(self.norm, scale_init=nn.initializers.zeros)
        y = unit(self.features, 1, norm=project_norm, act=None, name=f"block.{i + 2}")(y)
        if residual:
            y = layers.DropPath(self.drop_path)(y, deterministic=not train)
            y = y + x
        return y


def _stage_ends(stages: Sequence[tuple[int, int, int, int, int, int]]) -> list[bool]:
    """Whether each stage ends a stride (the next stage downsamples, or it is the last)."""
    return [k == len(stages) - 1 or stages[k + 1][2] > 1 for k in range(len(stages))]


class EfficientNet(nn.Module):
    """EfficientNet: the B0 baseline of Table 1 scaled by (width, depth) as in Eq. 3.

    Attributes:
      width_mult, depth_mult: compound-scaling coefficients (w, d) of the variant.
      drop_rate: dropout before the classifier (0.2 … 0.5 from B0 to B7).
      drop_path_rate: stochastic depth rate; block ``i`` of ``n`` drops with
        ``drop_path_rate · i / n``. The paper and torchvision train with 0.2 (set by the
        recipe via ``model_overrides``); the default is 0 so that a model built without
        overrides is deterministic apart from dropout, as in timm.
      bn_eps, bn_momentum: BatchNorm epsilon and PyTorch-style momentum.
      zero_init_last: start the projection BatchNorm's scale of every residual block at 0
        (Goyal et al. 2017 Sec. 5.1), so each block starts as the identity. Not in the
        references (TF TPU code, torchvision and timm start it at 1; the default here); the
        recipe sets it off its home dataset (train/configs/recipes/efficientnet.py).
      stages: the B0 stage table (expansion, kernel, stride, in, out, repeats).

    Feature maps (``features_only``): the last MBConv stage at each stride (torchvision
    ``features.1/2/3/5/7``, strides 2 … 32, the maps timm's ``efficientnet_b*`` return);
    ``num_classes=0`` returns the pooled output of the 1×1 head conv.
    """

    width_mult: float = 1.0
    depth_mult: float = 1.0
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    zero_init_last: bool = False
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
        ends = _stage_ends(self.stages)
        for i, ((expand, k, stride, _, out, _), n) in enumerate(zip(self.stages, repeats, strict=True)):
            for j in range(n):
                x = MBConv(round_filters(out, self.width_mult), expand, k, stride if j == 0 else 1,
                           conv=conv, norm=norm, act=act,
                           drop_path=self.drop_path_rate * idx / total, zero_init_last=self.zero_init_last,
                           dtype=self.dtype,
                           name=f"features.{i + 1}.{j}")(x, train)
                idx += 1
            if ends[i]:
                x = layers.tap(x, f"features.{i + 1}")
        head = 4 * round_filters(self.stages[-1][4], self.width_mult)
        x = layers.ConvBNAct(head, 1, conv=conv, norm=norm, act=act, conv_name="0", norm_name="1",
                             name=f"features.{len(self.stages) + 1}")(x)
        # The classifier keeps the layers' default (PyTorch Linear's uniform ±1/√fan_in), not the
        # references' uniform(±1/√num_classes) (torchvision efficientnet.py; tensorflow/tpu
        # efficientnet_model.py dense_kernel_initializer). The two agree within 13 % for 1,000
        # classes (±0.028 vs ±0.032); for 10 classes the references' is 10× larger, and with it
        # efficientnet_b0 on the digits (benchmarks/trainability.py, its default recipe) went from
        # 95.83 % to 25.83 % top-1 (training loss 5.3 at step 50; measured at 11291af).
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="classifier.1")


def efficientnet_anatomy(width_mult: float = 1.0,
                         stages: Sequence[tuple[int, int, int, int, int, int]] = B0_STAGES,
                         **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of an :class:`EfficientNet` built with these arguments."""
    maps, r = [], 2  # the stem conv has stride 2
    for i, ((_, _, stride, _, out, _), end) in enumerate(zip(stages, _stage_ends(stages), strict=True)):
        r *= stride
        if end:
            maps.append((f"features.{i + 1}", round_filters(out, width_mult), r))
    return {"num_features": 4 * round_filters(stages[-1][4], width_mult), "feature_info": features(*maps),
            "classifier": ("classifier.1",), "first_conv": "features.0/0"}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`EfficientNet` fields, ``info`` its metadata."""
    register_model(name, functools.partial(EfficientNet, **arch), **efficientnet_anatomy(**arch), **info)


# Rows: (width w, depth d) and dropout from the reference implementation (φ = 0 … 7 of Eq. 3,
# rounded), torchvision's parameter count. top1: Table 2 of the revised arXiv version (v5;
# the ICML-2019 table has 76.3 / 78.8 / 79.8 / 81.1 / 82.6 / 83.3 / 84.0 / 84.4, audit
# fidelity-2026-12.md §21), single centre crop at the variant's resolution. Eval preprocessing:
# torchvision's default weights (B0 resize 256 → 224, B1 (IMAGENET1K_V2) 255 → 240, B2 288 → 288,
# B3 320 → 300, B4 384 → 380, B5-B7 no resize margin; bicubic except B1's bilinear). B2's
# torchvision weights evaluate at 288; the registered input stays the paper's 260.
_COMMON = dict(family="efficientnet", paper=PAPER, year=2019, table="Table 1 (B0), Eq. 3, Table 2", min_size=32,
               interpolation="bicubic")
_SMALL_BN = dict(bn_eps=1e-5, bn_momentum=0.1)
_BIG_BN = dict(bn_eps=1e-3, bn_momentum=0.01)
_NOTE = ("; torchvision pads symmetrically (the TF reference uses 'SAME'); BN eps/momentum as "
         "torchvision (the TF reference: eps 1e-3, momentum 0.99 for every variant, which the "
         "recipe trains with).")

_register("efficientnet_b0", dict(width_mult=1.0, depth_mult=1.0, drop_rate=0.2, **_SMALL_BN),
          **_COMMON, input_size=(224, 224, 3), crop_pct=224 / 256,
          top1=77.1, top1_protocol="1 crop 224", params=5_288_548, twin="torchvision:efficientnet_b0",
          notes="w=1.0, d=1.0, dropout 0.2" + _NOTE)
_register("efficientnet_b1", dict(width_mult=1.0, depth_mult=1.1, drop_rate=0.2, **_SMALL_BN),
          **{**_COMMON, "interpolation": "bilinear"}, input_size=(240, 240, 3), crop_pct=240 / 255,
          top1=79.1, top1_protocol="1 crop 240", params=7_794_184, twin="torchvision:efficientnet_b1",
          notes="w=1.0, d=1.1, dropout 0.2" + _NOTE)
_register("efficientnet_b2", dict(width_mult=1.1, depth_mult=1.2, drop_rate=0.3, **_SMALL_BN),
          **_COMMON, input_size=(260, 260, 3), crop_pct=1.0,
          top1=80.1, top1_protocol="1 crop 260", params=9_109_994, twin="torchvision:efficientnet_b2",
          notes="w=1.1, d=1.2, dropout 0.3" + _NOTE)
_register("efficientnet_b3", dict(width_mult=1.2, depth_mult=1.4, drop_rate=0.3, **_SMALL_BN),
          **_COMMON, input_size=(300, 300, 3), crop_pct=300 / 320,
          top1=81.6, top1_protocol="1 crop 300", params=12_233_232, twin="torchvision:efficientnet_b3",
          notes="w=1.2, d=1.4, dropout 0.3" + _NOTE)
_register("efficientnet_b4", dict(width_mult=1.4, depth_mult=1.8, drop_rate=0.4, **_SMALL_BN),
          **_COMMON, input_size=(380, 380, 3), crop_pct=380 / 384,
          top1=82.9, top1_protocol="1 crop 380", params=19_341_616, twin="torchvision:efficientnet_b4",
          notes="w=1.4, d=1.8, dropout 0.4" + _NOTE)
_register("efficientnet_b5", dict(width_mult=1.6, depth_mult=2.2, drop_rate=0.4, **_BIG_BN),
          **_COMMON, input_size=(456, 456, 3), crop_pct=1.0,
          top1=83.6, top1_protocol="1 crop 456", params=30_389_784, twin="torchvision:efficientnet_b5",
          notes="w=1.6, d=2.2, dropout 0.4" + _NOTE)
_register("efficientnet_b6", dict(width_mult=1.8, depth_mult=2.6, drop_rate=0.5, **_BIG_BN),
          **_COMMON, input_size=(528, 528, 3), crop_pct=1.0,
          top1=84.0, top1_protocol="1 crop 528", params=43_040_704, twin="torchvision:efficientnet_b6",
          notes="w=1.8, d=2.6, dropout 0.5" + _NOTE)
_register("efficientnet_b7", dict(width_mult=2.0, depth_mult=3.1, drop_rate=0.5, **_BIG_BN),
          **_COMMON, input_size=(600, 600, 3), crop_pct=1.0,
          top1=84.3, top1_protocol="1 crop 600", params=66_347_960, twin="torchvision:efficientnet_b7",
          notes="w=2.0, d=3.1, dropout 0.5" + _NOTE)
