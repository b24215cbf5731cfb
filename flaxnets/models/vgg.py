"""VGG.

Paper: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 — Table 1 (configurations A, A-LRN, B, C, D, E), Table 2 (param
counts 133/133/133/134/138/144 M), Sec. 3.2 (dense evaluation: FC layers converted to a
7×7 conv and two 1×1 convs, class score map spatially averaged), Table 3 (single-scale
top-1 errors).

One parametric :class:`VGG` reads a config table. Module names are torchvision's
(``features.N`` counting every conv/BN/ReLU/LRN/pool as torch's ``Sequential`` would,
``classifier.0/3/6``), so ``vgg11/13/16/19`` and the ``_bn`` variants convert from
torchvision 1:1. As in torchvision an adaptive 7×7 average pool precedes the classifier
(the identity at the paper's 224 input); it lets any input ≥ 32 run.

``dense=True`` is the paper's test-time dense evaluation: FC6's (25088, 4096) kernel is
reshaped (torch C-H-W order, see ``layers.flatten_nchw``) into a 7×7×512×4096 conv and
FC7/FC8 into 1×1 convs, applied to the conv5 pool without the adaptive pool, and the class
score map is averaged over space. The parameter tree is the same as in normal mode.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import register_model

PAPER = "Very Deep Convolutional Networks for Large-Scale Image Recognition"

# Table 1. int: 3×3 conv with that many channels; ("1x1", c): 1×1 conv (config C);
# "LRN": local response normalisation (A-LRN); "M": 2×2/2 max pool.
CONFIGS: dict[str, tuple[Any, ...]] = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "A-LRN": (64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "C": (64, 64, "M", 128, 128, "M", 256, 256, ("1x1", 256), "M", 512, 512, ("1x1", 512), "M",
          512, 512, ("1x1", 512), "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG network for one Table 1 configuration (torchvision naming).

    Attributes:
      config: a sequence as in :data:`CONFIGS`.
      batch_norm: BatchNorm after every conv (torchvision's ``vgg*_bn``, not in the paper).
      dropout: dropout after FC6 and FC7 (0.5, Sec. 3.1).
      dense: fully-convolutional evaluation (Sec. 3.2) with the same parameters; needs
        inputs ≥ 224 (conv5 pool ≥ 7×7).
    """

    config: Sequence[Any]
    num_classes: int = 1000
    batch_norm: bool = False
    dropout: float = 0.5
    dense: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = layers.make_conv(self.dtype, use_bias=True)
        norm = layers.batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        i = 0  # index in torch's features Sequential
        for v in self.config:
            if v == "M":
                x = layers.max_pool(x, 2, 2)
                i += 1
            elif v == "LRN":  # Krizhevsky et al.'s parameters (Sec. 2.3 of the VGG paper)
                x = layers.LocalResponseNorm(5, 1e-4, 0.75, 2.0, name=f"features.{i}")(x)
                i += 1
            else:
                k, c = (1, v[1]) if isinstance(v, tuple) else (3, v)
                x = conv(c, (k, k), padding=layers.pad2d(k // 2), name=f"features.{i}")(x)
                i += 1
                if self.batch_norm:
                    x = norm(name=f"features.{i}")(x)
                    i += 1
                x = nn.relu(x)
                i += 1
        fc6 = layers.make_dense(self.dtype)(4096, name="classifier.0")
        fc7 = layers.make_dense(self.dtype)(4096, name="classifier.3")
        fc8 = layers.make_dense(self.dtype)(self.num_classes, name="classifier.6")
        drop = functools.partial(nn.Dropout, self.dropout, deterministic=not train)
        if not self.dense:
            x = layers.flatten_nchw(layers.adaptive_avg_pool(x, 7))
            x = drop()(nn.relu(fc6(x)))
            x = drop()(nn.relu(fc7(x)))
            return fc8(x).astype(jnp.float32)
        # Dense evaluation (Sec. 3.2): the FCs as convs over the whole conv5 pool output.
        if x.shape[1] < 7 or x.shape[2] < 7:
            raise ValueError(f"dense VGG needs a conv5 pool of at least 7×7, got {x.shape[1:3]}")
        c = x.shape[-1]
        x = drop()(nn.relu(_dense_as_conv(fc6, x, (c, 7, 7))))
        x = drop()(nn.relu(_dense_as_conv(fc7, x, (x.shape[-1], 1, 1))))
        x = _dense_as_conv(fc8, x, (x.shape[-1], 1, 1))
        return layers.global_avg_pool(x).astype(jnp.float32)


def _dense_as_conv(fc: nn.Dense, x: jax.Array, chw: tuple[int, int, int]) -> jax.Array:
    """Apply dense layer ``fc`` as a VALID convolution with its own (reshaped) kernel.

    ``fc``'s input index is torch's flattened (C, H, W) index, so the (C·H·W, out) kernel
    reshapes to (C, H, W, out) and transposes to HWIO.
    """
    c, h, w = chw
    fc(jnp.zeros((1, c * h * w), x.dtype))  # binds fc (creates params at init); result unused
    kernel = fc.variables["params"]["kernel"]
    bias = fc.variables["params"]["bias"]
    kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).astype(x.dtype)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(x.dtype)


# name: (config, batch norm, params, top-1 (Table 3, single scale; C/D/E trained with
# S ∈ [256, 512], tested at Q = 384), twin)
_VARIANTS = {
    "vgg11": ("A", False, 132_863_336, 70.4, "torchvision:vgg11"),
    "vgg11_lrn": ("A-LRN", False, 132_863_336, 70.3, None),
    "vgg13": ("B", False, 133_047_848, 71.3, "torchvision:vgg13"),
    "vgg16_c": ("C", False, 133_638_952, 72.7, None),
    "vgg16": ("D", False, 138_357_544, 74.4, "torchvision:vgg16"),
    "vgg19": ("E", False, 143_667_240, 74.5, "torchvision:vgg19"),
    "vgg11_bn": ("A", True, 132_868_840, None, "torchvision:vgg11_bn"),
    "vgg13_bn": ("B", True, 133_053_736, None, "torchvision:vgg13_bn"),
    "vgg16_bn": ("D", True, 138_365_992, None, "torchvision:vgg16_bn"),
    "vgg19_bn": ("E", True, 143_678_248, None, "torchvision:vgg19_bn"),
}

for _name, (_cfg, _bn, _params, _top1, _twin) in _VARIANTS.items():
    register_model(
        _name, functools.partial(VGG, config=CONFIGS[_cfg], batch_norm=_bn),
        family="vgg", paper=PAPER, year=2015,
        table=f"Table 1 (config {_cfg})" + (", BatchNorm as torchvision" if _bn else ""),
        min_size=32, top1=_top1, params=_params, twin=_twin,
        notes=("Paper-only configuration; count derived in tests/test_classic.py."
               if _twin is None else ""),
    )
