"""DenseNet family: ImageNet DenseNet-BC (torchvision twins) and the paper's CIFAR nets.

Papers:
  * Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
    CVPR 2017 — Table 1 (ImageNet architectures, growth rate k = 32: DenseNet-121/169/
    201/264; DenseNet-161, k = 48 with blocks 6-12-36-24, is in none of the paper's tables:
    the authors' README, liuzhuang13/DenseNet, gives it), Sec. 3 (dense connectivity,
    composite function BN-ReLU-Conv, bottleneck layers with 4k 1×1 channels, transition
    layers with compression θ = 0.5) and Sec. 4.1/Table 2 (CIFAR: three dense blocks,
    first conv with 16 channels, or 2k for DenseNet-BC; dropout 0.2 after each conv when
    training without data augmentation).
  * Pleiss et al., "Memory-Efficient Implementation of DenseNets", 2017 — recompute the
    concatenation, BatchNorm, ReLU and 1×1 convolution of each layer in the backward pass
    (``memory_efficient=True``; here with ``flax.linen.remat``).

Module names equal torchvision's ``state_dict`` paths (``features.conv0``,
``features.denseblock1.denselayer1.norm1`` …, ``features.transition1.conv``,
``features.norm5``, ``classifier``), so :func:`flaxnets.from_torch` converts torchvision
weights 1:1. The CIFAR networks use the same naming scheme (their final BatchNorm is
``features.norm4``: three blocks).

Dropout inside the network (``proj_drop_rate``) follows the paper: after every convolution
except the first one (both convolutions of a dense layer and the transition convolution).
torchvision drops only the output of each dense layer; both are no-ops at inference, so
conversion and evaluation are unaffected. ``drop_rate`` is a dropout before the classifier
(not in the paper; 0 by default).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from flaxnets import layers
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, features, register_model

ModuleDef = Any
Array = Any

PAPER = "Densely Connected Convolutional Networks"


class DenseLayer(nn.Module):
    """One layer of a dense block (paper Sec. 3, "Composite function" / "Bottleneck layers").

    Its input is the concatenation of the block's earlier maps (a prefix of the block's buffer).
    With ``bn_size`` (DenseNet-B): BN-ReLU-1×1 conv (``bn_size·k``) → BN-ReLU-3×3 conv (k).
    Without (plain DenseNet): BN-ReLU-3×3 conv (k). Returns only the k new feature maps; the
    block stores them. ``memory_efficient`` rematerialises the BN-ReLU-conv1 part in the
    backward pass (same parameters and values).
    """

    growth_rate: int
    bn_size: int | None = 4
    proj_drop_rate: float = 0.0
    memory_efficient: bool = False
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    def setup(self) -> None:
        if self.bn_size is not None:
            self.norm1 = self.norm()
            self.conv1 = self.conv(self.bn_size * self.growth_rate, (1, 1), padding="VALID")
            self.norm2 = self.norm()
            self.conv2 = self.conv(self.growth_rate, (3, 3), padding=((1, 1), (1, 1)))
        else:
            self.norm1 = self.norm()
            self.conv1 = self.conv(self.growth_rate, (3, 3), padding=((1, 1), (1, 1)))
        self.dropout = nn.Dropout(self.proj_drop_rate)

    def _first(self, x: Array) -> Array:
        # The part Pleiss et al. recompute: its input is the (shared) earlier maps.
        return self.conv1(self.act(self.norm1(x)))

    def __call__(self, x: Array, train: bool = False) -> Array:
        first = nn.remat(DenseLayer._first) if self.memory_efficient else DenseLayer._first
        y = first(self, x)
        y = self.dropout(y, deterministic=not train)
        if self.bn_size is None:
            return y
        y = self.conv2(self.act(self.norm2(y)))
        return self.dropout(y, deterministic=not train)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers, each fed the concatenation of all earlier outputs."""

    num_layers: int
    growth_rate: int
    bn_size: int | None = 4
    proj_drop_rate: float = 0.0
    memory_efficient: bool = False
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        # One buffer of the block's output width: layer i reads its first c0 + i·k channels and
        # writes its k maps after them. The values are the concatenation's, but the program grows
        # linearly with depth: concatenating every earlier map in every layer (and slicing each
        # one's gradient back out) is quadratic; densenet121's train step compiled ~30 % slower
        # that way (BENCHMARKS.md, fc69eb6).
        c0, k = x.shape[-1], self.growth_rate
        buf = jnp.concatenate([x, jnp.zeros((*x.shape[:-1], self.num_layers * k), x.dtype)], axis=-1)
        for i in range(self.num_layers):
            y = DenseLayer(
                self.growth_rate, self.bn_size, self.proj_drop_rate, self.memory_efficient,
                conv=self.conv, norm=self.norm, act=self.act, name=f"denselayer{i + 1}",
            )(buf[..., :c0 + i * k], train)
            buf = lax.dynamic_update_slice_in_dim(buf, y.astype(buf.dtype), c0 + i * k, axis=-1)
        return buf


class Transition(nn.Module):
    """Transition layer (Sec. 3, "Pooling layers"): BN-ReLU-1×1 conv-[dropout]-2×2 avg pool."""

    features: int
    proj_drop_rate: float = 0.0
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = self.act(self.norm(name="norm")(x))
        x = self.conv(self.features, (1, 1), padding="VALID", name="conv")(x)
        x = nn.Dropout(self.proj_drop_rate)(x, deterministic=not train)
        return layers.avg_pool(x, 2, 2)


class DenseNet(nn.Module):
    """DenseNet / DenseNet-B / DenseNet-BC (Huang et al. 2017, Table 1 and Table 2).

    Attributes:
      block_config: layers per dense block (Table 1 for ImageNet; (L-4)/3 or (L-4)/6 ×3
        on CIFAR).
      growth_rate: k, feature maps added by each layer.
      num_init_features: channels of the first convolution (2k on ImageNet and for
        CIFAR DenseNet-BC, 16 for the plain CIFAR DenseNet).
      bn_size: bottleneck width factor (1×1 conv to ``bn_size·k``); ``None`` → no
        bottleneck (plain DenseNet).
      compression: θ, transition output = ⌊θ·m⌋ channels (0.5 for -BC, 1 otherwise).
      stem: ``"imagenet"`` (7×7/2 conv, BN-ReLU, 3×3/2 max pool) or ``"cifar"`` (one 3×3
        conv, Sec. 4.1).
      proj_drop_rate: dropout after every convolution but the first (paper: 0.2 on C10/C100
        without augmentation).
      drop_rate: dropout before the classifier (not in the paper; 0).
      memory_efficient: recompute concat-BN-ReLU-1×1 conv in the backward pass. Same
        parameters, outputs and gradients. On XLA:CPU it does not lower the train step's
        temporaries (benchmarks/densenet_memory.py), presumably because XLA's fusion recomputes the
        cheap concat/BN/ReLU from the stored layer outputs instead of keeping them.

    Feature maps (``features_only``): the stem's ReLU (ImageNet stem only), then every dense
    block's output (``features.denseblock{i}``, before the transition), module outputs of the
    torchvision twin at strides 2, 4 … 32 (torchvision's final ``norm5`` is followed by a
    functional ReLU, so it is not a map).
    """

    block_config: Sequence[int]
    growth_rate: int = 32
    num_init_features: int = 64
    bn_size: int | None = 4
    compression: float = 0.5
    stem: str = "imagenet"
    proj_drop_rate: float = 0.0
    drop_rate: float = 0.0
    memory_efficient: bool = False
    num_classes: int = 1000
    act: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        if self.stem == "imagenet":
            x = conv(self.num_init_features, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)),
                     name="features.conv0")(x)
            x = layers.tap(self.act(norm(name="features.norm0")(x)), "features.relu0")
            x = layers.max_pool(x, 3, 2, padding=1)
        elif self.stem == "cifar":
            x = conv(self.num_init_features, (3, 3), padding=((1, 1), (1, 1)), name="features.conv0")(x)
        else:
            raise ValueError(f"unknown stem {self.stem!r}")
        channels = self.num_init_features
        for i, n in enumerate(self.block_config):
            x = DenseBlock(n, self.growth_rate, self.bn_size, self.proj_drop_rate, self.memory_efficient,
                           conv=conv, norm=norm, act=self.act, name=f"features.denseblock{i + 1}")(x, train)
            x = layers.tap(x, f"features.denseblock{i + 1}")
            channels += n * self.growth_rate
            if i != len(self.block_config) - 1:
                channels = math.floor(channels * self.compression)
                x = Transition(channels, self.proj_drop_rate, conv=conv, norm=norm, act=self.act,
                               name=f"features.transition{i + 1}")(x, train)
        x = self.act(norm(name=f"features.norm{len(self.block_config) + 1}")(x))
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="classifier")


def densenet_param_count(block_config: Sequence[int], growth_rate: int, num_init_features: int,
                         bn_size: int | None, compression: float, stem: str,
                         num_classes: int) -> int:
    """Closed-form parameter count of :class:`DenseNet` (the derivation tests check).

    Stem conv (k×k×3×c0, bias-free) [+ BN 2c0]; per dense layer with m inputs: BN 2m +
    1×1 conv m·4k + BN 2·4k + 3×3 conv 9·4k·k (bottleneck) or BN 2m + 3×3 conv 9·m·k;
    transition on m maps: BN 2m + 1×1 conv m·⌊θm⌋; final BN 2m; classifier m·n + n.
    """
    c = num_init_features
    total = (49 * 3 * c + 2 * c) if stem == "imagenet" else 27 * c
    for i, n in enumerate(block_config):
        for _ in range(n):
            if bn_size is None:
                total += 2 * c + 9 * c * growth_rate
            else:
                b = bn_size * growth_rate
                total += 2 * c + c * b + 2 * b + 9 * b * growth_rate
            c += growth_rate
        if i != len(block_config) - 1:
            out = math.floor(c * compression)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * num_classes + num_classes


def densenet_anatomy(block_config: Sequence[int], growth_rate: int = 32, num_init_features: int = 64,
                     compression: float = 0.5, stem: str = "imagenet", **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`DenseNet` built with these arguments.

    Maps: ``features.relu0`` (ImageNet stem, stride 2), then each dense block, the first at
    stride 4 (ImageNet) or 1 (CIFAR), every transition halving the resolution.
    """
    c, maps = num_init_features, []
    r = 4 if stem == "imagenet" else 1
    if stem == "imagenet":
        maps.append(("features.relu0", c, 2))
    for i, n in enumerate(block_config):
        c += n * growth_rate
        maps.append((f"features.denseblock{i + 1}", c, r * 2 ** i))
        if i != len(block_config) - 1:
            c = math.floor(c * compression)
    return {"num_features": c, "feature_info": features(*maps), "classifier": ("classifier",),
            "first_conv": "features.conv0"}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`DenseNet` fields, ``info`` its metadata."""
    register_model(name, functools.partial(DenseNet, **arch), **densenet_anatomy(**arch), family="densenet",
                   paper=PAPER, year=2017, **info)


# --- ImageNet (Table 1; torchvision twins, except DenseNet-264) ----------------------------
# top1: single-crop 224 of Table 3 (single / 10-crop errors 25.02/23.61, 23.80/22.08,
# 22.58/21.46, 22.15/20.80; fidelity audit 2026-12 §13: verified) for 121/169/201/264, single
# crop like every other ImageNet row (audit X1); the 10-crop accuracies are 76.39 / 77.92 /
# 78.54 / 79.20.
# DenseNet-161 is not in Table 3: the authors' README (liuzhuang13/DenseNet) gives its
# Torch model 22.2 % top-1 error on a single 224 crop (audit §13). Eval preprocessing: the
# twins' default torchvision weights (IMAGENET1K_V1: resize 256, crop 224, bilinear).
_DENSENET264_NOTE = ("No torchvision twin; parameter count derived in closed form (densenet_param_count, "
                     "checked in tests/test_densenet.py).")

_register("densenet121", dict(block_config=(6, 12, 24, 16), growth_rate=32, num_init_features=64),
          table="Table 1", crop_pct=0.875, params=7_978_856, top1=74.98, top1_protocol="1 crop 224",
          twin="torchvision:densenet121")
_register("densenet169", dict(block_config=(6, 12, 32, 32), growth_rate=32, num_init_features=64),
          table="Table 1", crop_pct=0.875, params=14_149_480, top1=76.20, top1_protocol="1 crop 224",
          twin="torchvision:densenet169")
_register("densenet201", dict(block_config=(6, 12, 48, 32), growth_rate=32, num_init_features=64),
          table="Table 1", crop_pct=0.875, params=20_013_928, top1=77.42, top1_protocol="1 crop 224",
          twin="torchvision:densenet201")
_register("densenet161", dict(block_config=(6, 12, 36, 24), growth_rate=48, num_init_features=96),
          table="Table 1 layout with k = 48 (authors' README)", crop_pct=0.875, params=28_681_000,
          top1=77.8, top1_protocol="1 crop 224", twin="torchvision:densenet161")
_register("densenet264", dict(block_config=(6, 12, 64, 48), growth_rate=32, num_init_features=64),
          table="Table 1", params=densenet_param_count((6, 12, 64, 48), 32, 64, 4, 0.5, "imagenet", 1000),
          top1=77.85, top1_protocol="1 crop 224", notes=_DENSENET264_NOTE)


# --- CIFAR (Sec. 4.1, Table 2): three dense blocks, 32×32 input ----------------------------
def cifar_config(depth: int, growth_rate: int, bc: bool) -> dict[str, Any]:
    """Constructor fields of the paper's CIFAR DenseNet of depth L (Sec. 4.1).

    L counts the first conv, the convs of the three blocks, two transitions and the
    classifier: (L-4)/3 layers per block, halved for bottleneck layers (two convs each).
    """
    per_block = (depth - 4) // (6 if bc else 3)
    return dict(block_config=(per_block,) * 3, growth_rate=growth_rate,
                num_init_features=2 * growth_rate if bc else 16, bn_size=4 if bc else None,
                compression=0.5 if bc else 1.0, stem="cifar")


def cifar_params(depth: int, growth_rate: int, bc: bool) -> int:
    """Derived count of the CIFAR DenseNet of depth L (10 classes; see :func:`densenet_param_count`)."""
    cfg = cifar_config(depth, growth_rate, bc)
    return densenet_param_count(cfg["block_config"], growth_rate, cfg["num_init_features"], cfg["bn_size"],
                                cfg["compression"], "cifar", 10)


# top1 = 100 − C10+ error of Table 2 (audit §13: verified), on the full 32×32 test images.
_CIFAR = {"table": "Table 2", "input_size": (32, 32, 3), "min_size": 8, "mean": CIFAR_MEAN, "std": CIFAR_STD,
          "num_classes": 10, "crop_pct": 1.0, "top1_protocol": "full image 32"}
_NOTE = "Derived count (bias-free convs, as torchvision); Table 2 reports {}M."

_register("densenet40_k12", cifar_config(40, 12, False), **_CIFAR, top1=94.76, params=cifar_params(40, 12, False),
          notes=_NOTE.format(1.0))
_register("densenet_bc_100_k12", cifar_config(100, 12, True), **_CIFAR, top1=95.49,
          params=cifar_params(100, 12, True), notes=_NOTE.format(0.8))
_register("densenet_bc_250_k24", cifar_config(250, 24, True), **_CIFAR, top1=96.38,
          params=cifar_params(250, 24, True), notes=_NOTE.format(15.3))
_register("densenet_bc_190_k40", cifar_config(190, 40, True), **_CIFAR, top1=96.54,
          params=cifar_params(190, 40, True), notes=_NOTE.format(25.6))
