"""ResNet family: ResNet, ResNeXt, Wide ResNet (ImageNet) and the paper's CIFAR ResNets.

Papers:
  * He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 — Table 1
    (ImageNet layer configurations), Sec. 3.3 (shortcut options A/B/C), Sec. 4.2 (CIFAR
    networks: 6n+2 layers, 16/32/64 filters, option A shortcuts).
  * Xie et al., "Aggregated Residual Transformations for Deep Neural Networks" (ResNeXt),
    CVPR 2017 — Table 1; grouped convolution form (c) of Fig. 3.
  * Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 — the ImageNet
    wide bottleneck (torchvision's ``wide_resnet50_2``: inner width ×2).
  * Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 — optional per-block
    drop-path with survival decaying linearly to p_L (``drop_path_rate = 1 - p_L``).

Module names equal torchvision's ``state_dict`` paths (``layer1.0.conv1`` …), so
:func:`flaxnets.from_torch` converts torchvision weights 1:1. torchvision's ResNet is
"v1.5": the stride of a bottleneck sits on the 3×3 conv; ``stride_in_1x1=True`` gives the
paper's v1 (registered as ``resnet50_v1`` …).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, features, register_model

ModuleDef = Any

PAPER = "Deep Residual Learning for Image Recognition"
RESNEXT_PAPER = "Aggregated Residual Transformations for Deep Neural Networks"
WRN_PAPER = "Wide Residual Networks"


class Shortcut(nn.Module):
    """Residual shortcut. Option A: identity, subsample + zero-pad channels (no params).
    Option B: 1×1 projection + BN when the shape changes. Option C: projection always."""

    features: int
    strides: int
    option: str
    conv: ModuleDef
    norm: ModuleDef
    kernel_size: int = 1  # of a strided projection (timm's ``down_kernel_size``, SENet-154: 3)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        changes = self.strides != 1 or x.shape[-1] != self.features
        if self.option == "A":
            if self.strides != 1:
                x = x[:, :: self.strides, :: self.strides, :]
            extra = self.features - x.shape[-1]
            if extra > 0:  # zero-padding of the new channels, split as in the CIFAR code
                x = jnp.pad(x, [(0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)])
            return x
        if self.option == "C" or changes:
            # torchvision's ``downsample`` Sequential: ``.0`` conv, ``.1`` BN.
            k = self.kernel_size if self.strides != 1 else 1
            x = self.conv(self.features, (k, k), strides=(self.strides,) * 2,
                          padding=((k // 2, k // 2),) * 2, name="0")(x)
            return self.norm(name="1")(x)
        return x


class BasicBlock(nn.Module):
    """Two 3×3 convs (ResNet-18/34 and the CIFAR nets, paper Fig. 2 left)."""

    planes: int
    strides: int = 1
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable = nn.relu
    shortcut: str = "B"
    zero_init_last: bool = False
    drop_path: float = 0.0
    groups: int = 1  # unused; the table API is shared with Bottleneck
    base_width: int = 64
    stride_in_1x1: bool = False
    attn: ModuleDef | None = None  # attn(channels, name=) before the residual add (SE)
    reduce_first: int = 1  # width of the first conv ÷ this (timm's ``reduce_first``)
    down_kernel_size: int = 1
    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        s = (self.strides,) * 2
        y = self.conv(self.planes // self.reduce_first, (3, 3), strides=s, padding=((1, 1), (1, 1)),
                      name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(self.planes, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        y = self.norm(name="bn2", scale_init=_last_scale_init(self.zero_init_last))(y)
        if self.attn is not None:
            y = self.attn(self.planes, name="se")(y)
        y = layers.DropPath(self.drop_path)(y, deterministic=not train)
        sc = Shortcut(self.planes, self.strides, self.shortcut, self.conv, self.norm,
                      self.down_kernel_size, name="downsample")(x)
        return self.act(y + sc)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (grouped for ResNeXt) → 1×1 ×4 (ResNet-50/101/152, paper Fig. 5 right)."""

    planes: int
    strides: int = 1
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable = nn.relu
    shortcut: str = "B"
    zero_init_last: bool = False
    drop_path: float = 0.0
    groups: int = 1
    base_width: int = 64
    stride_in_1x1: bool = False
    attn: ModuleDef | None = None  # attn(channels, name=) before the residual add (SE)
    reduce_first: int = 1  # width of the first 1×1 conv ÷ this (SENet-154: 2)
    down_kernel_size: int = 1
    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        width = int(self.planes * (self.base_width / 64.0)) * self.groups
        s1, s3 = ((self.strides,) * 2, (1, 1)) if self.stride_in_1x1 else ((1, 1), (self.strides,) * 2)
        y = self.conv(width // self.reduce_first, (1, 1), strides=s1, padding="VALID", name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(width, (3, 3), strides=s3, padding=((1, 1), (1, 1)),
                      feature_group_count=self.groups, name="conv2")(y)
        y = self.act(self.norm(name="bn2")(y))
        y = self.conv(self.planes * 4, (1, 1), padding="VALID", name="conv3")(y)
        y = self.norm(name="bn3", scale_init=_last_scale_init(self.zero_init_last))(y)
        if self.attn is not None:
            y = self.attn(self.planes * 4, name="se")(y)
        y = layers.DropPath(self.drop_path)(y, deterministic=not train)
        sc = Shortcut(self.planes * 4, self.strides, self.shortcut, self.conv, self.norm,
                      self.down_kernel_size, name="downsample")(x)
        return self.act(y + sc)


def _last_scale_init(zero: bool) -> Callable:
    # Goyal et al. 2017: zero-init the last BN scale so each block starts as identity.
    return nn.initializers.zeros if zero else nn.initializers.ones


class ResNet(nn.Module):
    """ResNet/ResNeXt/Wide-ResNet for ImageNet (``stem="imagenet"``) or CIFAR (``"cifar"``).

    Attributes:
      stage_sizes: blocks per stage (paper Table 1 / Sec. 4.2 ``n``).
      block: :class:`BasicBlock` or :class:`Bottleneck`.
      widths: planes per stage (64-128-256-512 ImageNet; 16-32-64 CIFAR).
      groups, base_width: ResNeXt cardinality C and bottleneck width d (32×4d → 32, 4).
      shortcut: "A", "B" (torchvision, default) or "C".
      stride_in_1x1: paper v1 bottleneck (stride on the first 1×1) instead of v1.5.
      zero_init_last: zero-init the last BN scale of each block.
      drop_path_rate: stochastic depth, 1 - p_L for the last block (0 disables).
      attn: channel attention inside every block, ``attn(channels, name=, dtype=)`` → module
        applied before the residual add (SE-ResNet, Hu et al. 2018); ``None`` disables.
      reduce_first, down_kernel_size: first-conv width divisor and kernel of strided
        projections (SENet-154: 2 and 3; timm's names).
      stem_width: ``stem="deep"`` (SENet-154, timm): three 3×3 convs of stem_width,
        stem_width, 2·stem_width channels instead of the 7×7 conv.
      drop_rate: dropout before the classifier (SENet-154 in the paper: 0.2).
      stem_tap: name of the stem's feature map (the twin's module: torchvision ``relu``,
        timm ``act1``).

    Feature maps (``features_only``): the stem output before the max pool, then the output
    of every stage ``layer1``…; ``num_classes=0`` returns the pooled stage-4 features.
    """

    stage_sizes: Sequence[int]
    block: ModuleDef
    num_classes: int = 1000
    widths: Sequence[int] = (64, 128, 256, 512)
    groups: int = 1
    base_width: int = 64
    stem: str = "imagenet"
    shortcut: str = "B"
    stride_in_1x1: bool = False
    zero_init_last: bool = False
    drop_path_rate: float = 0.0
    act: Callable = nn.relu
    dtype: Any = jnp.float32
    attn: ModuleDef | None = None
    reduce_first: int = 1
    down_kernel_size: int = 1
    stem_width: int = 64
    drop_rate: float = 0.0
    stem_tap: str = "relu"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        if self.stem == "imagenet":
            x = conv(self.widths[0], (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), name="conv1")(x)
            x = layers.tap(self.act(norm(name="bn1")(x)), self.stem_tap)
            x = layers.max_pool(x, 3, 2, padding=1)
        elif self.stem == "deep":  # timm's ``conv1`` Sequential: conv-bn-relu ×2, conv; then bn1
            w = self.stem_width
            for i, ch in enumerate((w, w, 2 * w)):
                x = conv(ch, (3, 3), strides=(2, 2) if i == 0 else (1, 1), padding=((1, 1), (1, 1)),
                         name=f"conv1.{3 * i}")(x)
                if i < 2:
                    x = self.act(norm(name=f"conv1.{3 * i + 1}")(x))
            x = layers.tap(self.act(norm(name="bn1")(x)), self.stem_tap)
            x = layers.max_pool(x, 3, 2, padding=1)
        else:  # CIFAR (Sec. 4.2): one 3×3 conv, no pooling
            x = conv(self.widths[0], (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x)
            x = layers.tap(self.act(norm(name="bn1")(x)), self.stem_tap)
        rates = layers.linear_drop_path_rates(sum(self.stage_sizes), self.drop_path_rate)
        extra = {k: v for k, v, default in (
            ("attn", self.attn and functools.partial(self.attn, dtype=self.dtype), None),
            ("reduce_first", self.reduce_first, 1), ("down_kernel_size", self.down_kernel_size, 1),
        ) if v != default}  # only hooks in use, so blocks without these fields still work
        idx = 0
        for i, (n, planes) in enumerate(zip(self.stage_sizes, self.widths, strict=True)):
            for j in range(n):
                x = self.block(
                    planes, strides=2 if (i > 0 and j == 0) else 1, conv=conv, norm=norm, act=self.act,
                    shortcut=self.shortcut, zero_init_last=self.zero_init_last, drop_path=rates[idx],
                    groups=self.groups, base_width=self.base_width, stride_in_1x1=self.stride_in_1x1,
                    name=f"layer{i + 1}.{j}", **extra,
                )(x, train)
                idx += 1
            x = layers.tap(x, f"layer{i + 1}")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc")


def resnet_anatomy(stage_sizes: Sequence[int], block: ModuleDef, widths: Sequence[int] = (64, 128, 256, 512),
                   stem: str = "imagenet", stem_tap: str = "relu", stem_width: int = 64,
                   **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`ResNet` built with these arguments.

    Maps: the stem (stride 2, or 1 for the CIFAR stem) and every stage, each stage
    halving the resolution after the first (after the stem's max pool for ImageNet).
    """
    out = widths[-1] * block.expansion
    first = 2 * stem_width if stem == "deep" else widths[0]
    stem_r = 1 if stem == "cifar" else 2
    start = stem_r if stem == "cifar" else 4
    maps = [(stem_tap, first, stem_r)] + [
        (f"layer{i + 1}", w * block.expansion, start * 2 ** i) for i, w in enumerate(widths)]
    return {"num_features": out, "feature_info": features(*maps), "classifier": ("fc",),
            "first_conv": "conv1.0" if stem == "deep" else "conv1"}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`ResNet` fields, ``info`` its metadata."""
    register_model(name, functools.partial(ResNet, **arch), **resnet_anatomy(**arch), **info)


# --- ImageNet variants (torchvision twins) -----------------------------------------------
# top1: single 224 crop of the authors' released Caffe models (KaimingHe/deep-residual-networks
# README: top-1 error 24.7 / 23.6 / 23.0 % for ResNet-50/101/152) where one exists; otherwise
# the paper's 10-crop Table 3 (ResNet-34 option B 24.52 %) or Table 2 (ResNet-18 27.88 %).
# ResNeXt: single 224 crop (facebookresearch/ResNeXt README: 22.2 / 20.4 % top-1 error;
# paper Table 3 for 50-32x4d, Table 5 "single-crop testing" for 101-64x4d). Wide ResNet: none.
# Eval preprocessing: the twin's default torchvision weights (resize 256 → 0.875 for the
# IMAGENET1K_V1 weights, 232 → 224/232 for IMAGENET1K_V2), bilinear.
_V1 = {"crop_pct": 0.875}  # torchvision IMAGENET1K_V1 weights: resize 256, crop 224
_V2 = {"crop_pct": 224 / 232}  # torchvision IMAGENET1K_V2 weights: resize 232, crop 224
_RESNET = {"family": "resnet", "paper": PAPER, "year": 2016, "table": "Table 1"}
_RESNEXT = {"family": "resnet", "paper": RESNEXT_PAPER, "year": 2017, "table": "Table 1"}
_WRN = {"family": "resnet", "paper": WRN_PAPER, "year": 2016,
        "table": "Sec. 2 (bottleneck widened ×2, torchvision variant)"}
_V1_NOTE = ("Same parameters as torchvision's v1.5 (only the stride moves), so torchvision weights "
            "load but were trained for v1.5.")
_V1_TABLE = "Table 1 (v1: stride in the 1×1)"

_register("resnet18", dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock), **_RESNET, **_V1,
          params=11_689_512, top1=72.12, top1_protocol="10 crop 224", twin="torchvision:resnet18")
_register("resnet34", dict(stage_sizes=(3, 4, 6, 3), block=BasicBlock), **_RESNET, **_V1,
          params=21_797_672, top1=75.48, top1_protocol="10 crop 224", twin="torchvision:resnet34")
_register("resnet50", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck), **_RESNET, **_V2,
          params=25_557_032, top1=75.3, top1_protocol="1 crop 224", twin="torchvision:resnet50")
_register("resnet101", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck), **_RESNET, **_V2,
          params=44_549_160, top1=76.4, top1_protocol="1 crop 224", twin="torchvision:resnet101")
_register("resnet152", dict(stage_sizes=(3, 8, 36, 3), block=Bottleneck), **_RESNET, **_V2,
          params=60_192_808, top1=77.0, top1_protocol="1 crop 224", twin="torchvision:resnet152")
_register("resnext50_32x4d", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, groups=32, base_width=4),
          **{**_RESNEXT, "table": "Table 1 (top1: Table 3)"}, **_V2, params=25_028_904, top1=77.8,
          top1_protocol="1 crop 224",
          twin="torchvision:resnext50_32x4d")
_register("resnext101_32x8d", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, groups=32, base_width=8),
          **_RESNEXT, **_V2, params=88_791_336, twin="torchvision:resnext101_32x8d")
_register("resnext101_64x4d", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, groups=64, base_width=4),
          **{**_RESNEXT, "table": "Table 1 template at depth 101 (top1: Table 5)"}, **_V2, params=83_455_272,
          top1=79.6, top1_protocol="1 crop 224",
          twin="torchvision:resnext101_64x4d")
_register("wide_resnet50_2", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, base_width=128),
          **_WRN, **_V2, params=68_883_240, twin="torchvision:wide_resnet50_2")
_register("wide_resnet101_2", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, base_width=128),
          **_WRN, **_V2, params=126_886_696, twin="torchvision:wide_resnet101_2")
# The paper's original v1: stride 2 on the first 1×1 conv of a downsampling block. The
# single-crop numbers are of the authors' released (v1) models.
_register("resnet50_v1", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, stride_in_1x1=True),
          **{**_RESNET, "table": _V1_TABLE}, params=25_557_032, top1=75.3, top1_protocol="1 crop 224",
          notes=_V1_NOTE)
_register("resnet101_v1", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, stride_in_1x1=True),
          **{**_RESNET, "table": _V1_TABLE}, params=44_549_160, top1=76.4, top1_protocol="1 crop 224",
          notes=_V1_NOTE)
_register("resnet152_v1", dict(stage_sizes=(3, 8, 36, 3), block=Bottleneck, stride_in_1x1=True),
          **{**_RESNET, "table": _V1_TABLE}, params=60_192_808, top1=77.0, top1_protocol="1 crop 224",
          notes=_V1_NOTE)


# --- CIFAR-10 variants, Sec. 4.2: depth 6n+2, option A shortcuts -------------------------
def cifar_resnet_params(n: int) -> int:
    """Count of the CIFAR ResNet with ``n`` blocks per stage (the paper rounds: 0.27M … 19.4M).

    conv1 3·3·3·16 + BN 2·16; per block of width c: 2·9c² + 4c (first block of stages 2/3:
    9·(c/2)·c + 9c² + 4c); fc 64·10 + 10.
    """
    return 432 + 32 + sum(
        (9 * (c // 2) * c if (i > 0 and j == 0) else 9 * c * c) + 9 * c * c + 4 * c
        for i, c in enumerate((16, 32, 64)) for j in range(n)) + 650


_CIFAR = {"family": "resnet", "paper": PAPER, "year": 2016, "table": "Sec. 4.2, Table 6",
          "input_size": (32, 32, 3), "min_size": 8, "mean": CIFAR_MEAN, "std": CIFAR_STD, "num_classes": 10,
          "crop_pct": 1.0, "top1_protocol": "full image 32"}  # Table 6: test error on the 32×32 test images
_CIFAR_ARCH = {"block": BasicBlock, "widths": (16, 32, 64), "stem": "cifar", "shortcut": "A"}

_register("resnet20", dict(stage_sizes=(3, 3, 3), **_CIFAR_ARCH), **_CIFAR, top1=91.25, params=cifar_resnet_params(3))
_register("resnet32", dict(stage_sizes=(5, 5, 5), **_CIFAR_ARCH), **_CIFAR, top1=92.49, params=cifar_resnet_params(5))
_register("resnet44", dict(stage_sizes=(7, 7, 7), **_CIFAR_ARCH), **_CIFAR, top1=92.83, params=cifar_resnet_params(7))
_register("resnet56", dict(stage_sizes=(9, 9, 9), **_CIFAR_ARCH), **_CIFAR, top1=93.03, params=cifar_resnet_params(9))
_register("resnet110", dict(stage_sizes=(18, 18, 18), **_CIFAR_ARCH), **_CIFAR, top1=93.57,
          params=cifar_resnet_params(18))
_register("resnet1202", dict(stage_sizes=(200, 200, 200), **_CIFAR_ARCH), **_CIFAR, top1=92.07,
          params=cifar_resnet_params(200))
