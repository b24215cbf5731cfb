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
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, register_model

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

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        if self.stem == "imagenet":
            x = conv(self.widths[0], (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), name="conv1")(x)
            x = self.act(norm(name="bn1")(x))
            x = layers.max_pool(x, 3, 2, padding=1)
        elif self.stem == "deep":  # timm's ``conv1`` Sequential: conv-bn-relu ×2, conv; then bn1
            w = self.stem_width
            for i, ch in enumerate((w, w, 2 * w)):
                x = conv(ch, (3, 3), strides=(2, 2) if i == 0 else (1, 1), padding=((1, 1), (1, 1)),
                         name=f"conv1.{3 * i}")(x)
                if i < 2:
                    x = self.act(norm(name=f"conv1.{3 * i + 1}")(x))
            x = self.act(norm(name="bn1")(x))
            x = layers.max_pool(x, 3, 2, padding=1)
        else:  # CIFAR (Sec. 4.2): one 3×3 conv, no pooling
            x = conv(self.widths[0], (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x)
            x = self.act(norm(name="bn1")(x))
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
        x = layers.global_avg_pool(x)
        x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        x = layers.make_dense(self.dtype)(self.num_classes, name="fc")(x)
        return x.astype(jnp.float32)


# --- ImageNet variants (torchvision twins) -----------------------------------------------
# name: (stage sizes, block, groups, base width, reference params, paper top-1 (10-crop,
# Table 3 of the ResNet paper / Table 3 of ResNeXt / WRN: torchvision's, none in paper))
_IMAGENET = {
    "resnet18": ((2, 2, 2, 2), BasicBlock, 1, 64, 11_689_512, None),
    "resnet34": ((3, 4, 6, 3), BasicBlock, 1, 64, 21_797_672, 75.48),
    "resnet50": ((3, 4, 6, 3), Bottleneck, 1, 64, 25_557_032, 77.15),
    "resnet101": ((3, 4, 23, 3), Bottleneck, 1, 64, 44_549_160, 78.25),
    "resnet152": ((3, 8, 36, 3), Bottleneck, 1, 64, 60_192_808, 78.57),
    "resnext50_32x4d": ((3, 4, 6, 3), Bottleneck, 32, 4, 25_028_904, 77.8),
    "resnext101_32x8d": ((3, 4, 23, 3), Bottleneck, 32, 8, 88_791_336, None),
    "resnext101_64x4d": ((3, 4, 23, 3), Bottleneck, 64, 4, 83_455_272, 79.6),
    "wide_resnet50_2": ((3, 4, 6, 3), Bottleneck, 1, 128, 68_883_240, None),
    "wide_resnet101_2": ((3, 4, 23, 3), Bottleneck, 1, 128, 126_886_696, None),
}

for _name, (_sizes, _block, _groups, _width, _params, _top1) in _IMAGENET.items():
    _paper, _table, _year = PAPER, "Table 1", 2016
    if _name.startswith("resnext"):
        _paper, _table, _year = RESNEXT_PAPER, "Table 1", 2017
    elif _name.startswith("wide"):
        _paper, _table, _year = WRN_PAPER, "Sec. 2 (bottleneck widened ×2, torchvision variant)", 2016
    register_model(
        _name,
        functools.partial(ResNet, stage_sizes=_sizes, block=_block, groups=_groups, base_width=_width),
        family="resnet", paper=_paper, year=_year, table=_table, top1=_top1, params=_params,
        twin=f"torchvision:{_name}",
    )
    if _name.startswith("resnet") and _block is Bottleneck:
        # The paper's original v1: stride 2 on the first 1×1 conv of a downsampling block.
        register_model(
            f"{_name}_v1",
            functools.partial(ResNet, stage_sizes=_sizes, block=_block, stride_in_1x1=True),
            family="resnet", paper=PAPER, year=2016, table="Table 1 (v1: stride in the 1×1)",
            top1=_top1, params=_params,
            notes="Same parameters as torchvision's v1.5 (only the stride moves), so torchvision "
                  "weights load but were trained for v1.5.",
        )

# --- CIFAR-10 variants, Sec. 4.2: depth 6n+2, option A shortcuts -------------------------
# name: (n, paper Table 6 error % → top-1)
_CIFAR = {"resnet20": (3, 91.25), "resnet32": (5, 92.49), "resnet44": (7, 92.83),
          "resnet56": (9, 93.03), "resnet110": (18, 93.57), "resnet1202": (200, 92.07)}

for _name, (_n, _top1) in _CIFAR.items():
    register_model(
        _name,
        functools.partial(ResNet, stage_sizes=(_n, _n, _n), block=BasicBlock, widths=(16, 32, 64),
                          stem="cifar", shortcut="A"),
        family="resnet", paper=PAPER, year=2016, table="Sec. 4.2, Table 6",
        input_size=(32, 32, 3), min_size=8, mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10,
        top1=_top1,
        # conv1 3·3·3·16 + BN 2·16; per block of width c: 2·9c² + 4c (first block of stages 2/3:
        # 9·(c/2)·c + 9c² + 4c); fc 64·10 + 10. The paper rounds these (0.27M … 19.4M).
        params=(432 + 32 + sum(
            (9 * (c // 2) * c if (i > 0 and j == 0) else 9 * c * c) + 9 * c * c + 4 * c
            for i, c in enumerate((16, 32, 64)) for j in range(_n)) + 650),
    )
