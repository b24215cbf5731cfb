"""Wide Residual Networks for CIFAR (WRN-d-k).

Paper: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 — Table 1 (structure:
conv1 3×3 16; groups conv2/conv3/conv4 of N = (d-4)/6 pre-activation basic blocks of
width 16k/32k/64k, the last two starting with stride 2; BN-ReLU; 8×8 average pool; FC),
Sec. 2.4 (dropout between the two convolutions of a block, 0.3 on CIFAR: ``proj_drop_rate``),
Table 5 (parameter counts and CIFAR-10 errors with flip/translation augmentation, no
dropout, mean/std normalisation, median of 5 runs: WRN-40-4 8.9M 4.53 %, WRN-16-8 11.0M
4.27 %, WRN-28-10 36.5M 4.00 %; Table 4's 4.97 / 4.81 / 4.17 % are with ZCA whitening).

Block B(3,3), pre-activation (He et al. 2016b): BN-ReLU-conv3×3-[dropout]-BN-ReLU-conv3×3,
added to the identity, or to a 1×1 projection of the pre-activated input when the shape
changes (as in the authors' code). Convolutions are bias-free. Module names follow the
widely used PyTorch port (``conv1``, ``block1.layer.0.bn1``/``conv1``/``bn2``/``conv2``/
``convShortcut``, ``bn1``, ``fc``). The torchvision ImageNet wide bottlenecks
(``wide_resnet50_2``) live in :mod:`flaxnets.models.resnet`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, features, register_model

ModuleDef = Any
Array = Any

PAPER = "Wide Residual Networks"


class WideBasic(nn.Module):
    """Pre-activation basic block B(3,3) with optional dropout between the convs."""

    features: int
    strides: int = 1
    proj_drop_rate: float = 0.0
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        s = (self.strides, self.strides)
        pre = self.act(self.norm(name="bn1")(x))
        y = self.conv(self.features, (3, 3), strides=s, padding=((1, 1), (1, 1)), name="conv1")(pre)
        y = self.act(self.norm(name="bn2")(y))
        y = nn.Dropout(self.proj_drop_rate)(y, deterministic=not train)
        y = self.conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            # The projection sees the pre-activated input, like the residual branch.
            x = self.conv(self.features, (1, 1), strides=s, padding="VALID", name="convShortcut")(pre)
        return x + y


class WideResNet(nn.Module):
    """WRN-d-k for CIFAR (paper Table 1): depth d = 6N+4, widening factor k.

    Attributes:
      depth: total depth d (6N+4 with N blocks per group).
      widen_factor: k; group widths 16k, 32k, 64k after a 16-channel first conv.
      proj_drop_rate: dropout between the two convs of each block (paper: 0.3).
      drop_rate: dropout before the classifier (not in the paper; 0).

    Feature maps (``features_only``): the output of each group ``block1``…``block3``
    (strides 1, 2, 4; ``block3`` before the final BN-ReLU).
    """

    depth: int = 28
    widen_factor: int = 10
    proj_drop_rate: float = 0.0
    drop_rate: float = 0.0
    num_classes: int = 10
    act: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if (self.depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6N+4, got {self.depth}")
        n = (self.depth - 4) // 6
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = conv(16, (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x.astype(self.dtype))
        for g, width in enumerate((16 * self.widen_factor, 32 * self.widen_factor, 64 * self.widen_factor)):
            for i in range(n):
                x = WideBasic(width, strides=2 if (g > 0 and i == 0) else 1, proj_drop_rate=self.proj_drop_rate,
                              conv=conv, norm=norm, act=self.act, name=f"block{g + 1}.layer.{i}")(x, train)
            x = layers.tap(x, f"block{g + 1}")
        x = self.act(norm(name="bn1")(x))
        # The paper's 8×8 average pool at 32×32 input.
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc")


def wrn_param_count(depth: int, widen_factor: int, num_classes: int = 10) -> int:
    """Closed-form parameter count of :class:`WideResNet` (checked in tests).

    conv1 27·16; per block from c_in to c: BN 2c_in + 9c_in·c + BN 2c + 9c² (+ c_in·c for
    the 1×1 projection when c_in ≠ c); final BN 2c; FC c·n + n.
    """
    n = (depth - 4) // 6
    total, c_in = 27 * 16, 16
    for width in (16 * widen_factor, 32 * widen_factor, 64 * widen_factor):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * width + 2 * width + 9 * width * width
            total += c_in * width if c_in != width else 0
            c_in = width
    return total + 2 * c_in + c_in * num_classes + num_classes


def wrn_anatomy(depth: int, widen_factor: int) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of :class:`WideResNet` WRN-``depth``-``widen_factor``."""
    widths = [16 * widen_factor * 2**g for g in range(3)]
    return {"num_features": widths[-1], "classifier": ("fc",), "first_conv": "conv1",
            "feature_info": features(*((f"block{g + 1}", w, 2**g) for g, w in enumerate(widths)))}


def _register(name: str, depth: int, widen_factor: int, paper_m: float, **info: Any) -> None:
    """One registry row: WRN-``depth``-``widen_factor``, ``paper_m`` its Table 5 count (M)."""
    register_model(name, functools.partial(WideResNet, depth=depth, widen_factor=widen_factor),
                   **wrn_anatomy(depth, widen_factor), family="wrn", paper=PAPER, year=2016,
                   table="Table 1 (structure), Table 5 (counts, errors)", input_size=(32, 32, 3), min_size=8,
                   mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10, params=wrn_param_count(depth, widen_factor),
                   notes=f"Derived count (bias-free convs); the paper reports {paper_m}M.", **info)


# top1 = 100 − CIFAR-10 test error (no dropout) on the full 32×32 test images, Table 5
# (mean/std normalisation like our preprocessing, median of 5 runs): 4.00 / 4.53 / 4.27 %.
# Sources (fidelity audit 2026-12 §12): szagoruyko/wide-residual-networks README (WRN-28-10
# 4.00 meanstd), SENet TPAMI Table 4 (WRN-16-8 4.27).
_CIFAR = {"crop_pct": 1.0, "top1_protocol": "full image 32"}

_register("wrn_28_10", depth=28, widen_factor=10, paper_m=36.5, top1=96.00, **_CIFAR)
_register("wrn_40_4", depth=40, widen_factor=4, paper_m=8.9, top1=95.47, **_CIFAR)
_register("wrn_16_8", depth=16, widen_factor=8, paper_m=11.0, top1=95.73, **_CIFAR)
