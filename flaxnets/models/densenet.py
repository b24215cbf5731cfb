"""DenseNet family: ImageNet DenseNet-BC (torchvision twins) and the paper's CIFAR nets.

Papers:
  * Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
    CVPR 2017 — Table 1 (ImageNet architectures, growth rate k = 32: DenseNet-121/169/
    201/264; DenseNet-161 is the k = 48 variant of Table 3), Sec. 3 (dense connectivity,
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

Dropout (``drop_rate``) follows the paper: after every convolution except the first one
(both convolutions of a dense layer and the transition convolution). torchvision drops
only the output of each dense layer; both are no-ops at inference, so conversion and
evaluation are unaffected.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, register_model

ModuleDef = Any
Array = Any

PAPER = "Densely Connected Convolutional Networks"


class DenseLayer(nn.Module):
    """One layer of a dense block (paper Sec. 3, "Composite function" / "Bottleneck layers").

    With ``bn_size`` (DenseNet-B): concat → BN-ReLU-1×1 conv (``bn_size·k``) → BN-ReLU-3×3
    conv (k). Without (plain DenseNet): concat → BN-ReLU-3×3 conv (k). Returns only the k
    new feature maps; the block concatenates. ``memory_efficient`` rematerialises the
    concat-BN-ReLU-conv1 part in the backward pass (same parameters and values).
    """

    growth_rate: int
    bn_size: int | None = 4
    drop_rate: float = 0.0
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
        self.dropout = nn.Dropout(self.drop_rate)

    def _first(self, features: Sequence[Array]) -> Array:
        # The part Pleiss et al. recompute: its input is the (shared) list of earlier maps.
        x = jnp.concatenate(features, axis=-1) if len(features) > 1 else features[0]
        return self.conv1(self.act(self.norm1(x)))

    def __call__(self, features: Sequence[Array], train: bool = False) -> Array:
        first = nn.remat(DenseLayer._first) if self.memory_efficient else DenseLayer._first
        y = first(self, tuple(features))
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
    drop_rate: float = 0.0
    memory_efficient: bool = False
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        features = [x]
        for i in range(self.num_layers):
            features.append(DenseLayer(
                self.growth_rate, self.bn_size, self.drop_rate, self.memory_efficient,
                conv=self.conv, norm=self.norm, act=self.act, name=f"denselayer{i + 1}",
            )(features, train))
        return jnp.concatenate(features, axis=-1)


class Transition(nn.Module):
    """Transition layer (Sec. 3, "Pooling layers"): BN-ReLU-1×1 conv-[dropout]-2×2 avg pool."""

    features: int
    drop_rate: float = 0.0
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = self.act(self.norm(name="norm")(x))
        x = self.conv(self.features, (1, 1), padding="VALID", name="conv")(x)
        x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
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
      drop_rate: dropout after every convolution but the first (paper: 0.2 on C10/C100
        without augmentation).
      memory_efficient: recompute concat-BN-ReLU-1×1 conv in the backward pass. Same
        parameters, outputs and gradients. On XLA:CPU it does not lower the train step's
        temporaries (benchmarks/densenet_memory.py), presumably because XLA's fusion recomputes the
        cheap concat/BN/ReLU from the stored layer outputs instead of keeping them.
    """

    block_config: Sequence[int]
    growth_rate: int = 32
    num_init_features: int = 64
    bn_size: int | None = 4
    compression: float = 0.5
    stem: str = "imagenet"
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
            x = self.act(norm(name="features.norm0")(x))
            x = layers.max_pool(x, 3, 2, padding=1)
        elif self.stem == "cifar":
            x = conv(self.num_init_features, (3, 3), padding=((1, 1), (1, 1)), name="features.conv0")(x)
        else:
            raise ValueError(f"unknown stem {self.stem!r}")
        channels = self.num_init_features
        for i, n in enumerate(self.block_config):
            x = DenseBlock(n, self.growth_rate, self.bn_size, self.drop_rate, self.memory_efficient,
                           conv=conv, norm=norm, act=self.act, name=f"features.denseblock{i + 1}")(x, train)
            channels += n * self.growth_rate
            if i != len(self.block_config) - 1:
                channels = math.floor(channels * self.compression)
                x = Transition(channels, self.drop_rate, conv=conv, norm=norm, act=self.act,
                               name=f"features.transition{i + 1}")(x, train)
        x = self.act(norm(name=f"features.norm{len(self.block_config) + 1}")(x))
        x = layers.global_avg_pool(x)
        x = layers.make_dense(self.dtype, bias_init=nn.initializers.zeros)(
            self.num_classes, name="classifier")(x)
        return x.astype(jnp.float32)


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


# --- ImageNet (Table 1; torchvision twins, except DenseNet-264) ----------------------------
# name: (blocks, k, first conv channels, torchvision params, 10-crop top-1 of Table 3)
_IMAGENET = {
    "densenet121": ((6, 12, 24, 16), 32, 64, 7_978_856, 76.39),
    "densenet169": ((6, 12, 32, 32), 32, 64, 14_149_480, 77.92),
    "densenet201": ((6, 12, 48, 32), 32, 64, 20_013_928, 78.54),
    "densenet161": ((6, 12, 36, 24), 48, 96, 28_681_000, 79.15),
    "densenet264": ((6, 12, 64, 48), 32, 64, None, 79.20),
}

for _name, (_blocks, _k, _c0, _params, _top1) in _IMAGENET.items():
    _twin = None if _params is None else f"torchvision:{_name}"
    _notes = ""
    if _params is None:
        _params = densenet_param_count(_blocks, _k, _c0, 4, 0.5, "imagenet", 1000)
        _notes = ("No torchvision twin; parameter count derived in closed form "
                  "(densenet_param_count, checked in tests/test_densenet.py).")
    register_model(
        _name,
        functools.partial(DenseNet, block_config=_blocks, growth_rate=_k, num_init_features=_c0),
        family="densenet", paper=PAPER, year=2017,
        table="Table 1" if _k == 32 else "Table 3 (k = 48 variant)",
        top1=_top1, params=_params, twin=_twin, notes=_notes,
    )

# --- CIFAR (Sec. 4.1, Table 2): three dense blocks, 32×32 input ----------------------------
# name: (depth L, k, bottleneck+compression (BC), paper params (M), C10+ error % of Table 2)
_CIFAR = {
    "densenet40_k12": (40, 12, False, 1.0, 5.24),
    "densenet_bc_100_k12": (100, 12, True, 0.8, 4.51),
    "densenet_bc_250_k24": (250, 24, True, 15.3, 3.62),
    "densenet_bc_190_k40": (190, 40, True, 25.6, 3.46),
}


def cifar_config(depth: int, growth_rate: int, bc: bool) -> dict[str, Any]:
    """Constructor fields of the paper's CIFAR DenseNet of depth L (Sec. 4.1).

    L counts the first conv, the convs of the three blocks, two transitions and the
    classifier: (L-4)/3 layers per block, halved for bottleneck layers (two convs each).
    """
    per_block = (depth - 4) // (6 if bc else 3)
    return dict(block_config=(per_block,) * 3, growth_rate=growth_rate,
                num_init_features=2 * growth_rate if bc else 16, bn_size=4 if bc else None,
                compression=0.5 if bc else 1.0, stem="cifar")


for _name, (_depth, _k, _bc, _paper_m, _err) in _CIFAR.items():
    _cfg = cifar_config(_depth, _k, _bc)
    register_model(
        _name,
        functools.partial(DenseNet, **_cfg),
        family="densenet", paper=PAPER, year=2017, table="Table 2",
        input_size=(32, 32, 3), min_size=8, mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10,
        top1=round(100.0 - _err, 2),
        params=densenet_param_count(_cfg["block_config"], _k, _cfg["num_init_features"],
                                    _cfg["bn_size"], _cfg["compression"], "cifar", 10),
        notes=f"Derived count (bias-free convs, as torchvision); Table 2 reports {_paper_m}M.",
    )
