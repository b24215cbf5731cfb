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
from flaxnets.registry import features, register_model

PAPER = "Very Deep Convolutional Networks for Large-Scale Image Recognition"
# FC6/FC7/FC8 kernels ~ N(0, 0.01²), biases 0, as the twin (torchvision models/vgg.py,
# VGG._initialize_weights: nn.init.normal_(m.weight, 0, 0.01) for every nn.Linear). PyTorch's
# Linear default, uniform ±1/√fan_in, is 2.7× smaller for FC6's 25,088 inputs
# (docs/audits/init-2026-12.md item 11). The convs keep the twin's He fan-out.
FC_INIT = nn.initializers.normal(0.01)

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

    Feature maps (torchvision module outputs, timm's for strides 1–16): the input of every max
    pool (the last ReLU, or A-LRN's LRN, of each stage; strides 1, 2, 4, 8, 16) and the last
    pool's output (stride 32). ``num_classes=0`` returns FC7's 4096 ReLU outputs (timm's
    pre-logits), spatially averaged in ``dense`` mode.

    Attributes:
      config: a sequence as in :data:`CONFIGS`.
      batch_norm: BatchNorm after every conv (torchvision's ``vgg*_bn``, not in the paper).
      drop_rate: dropout after FC6 and FC7 (0.5, Sec. 3.1).
      dense: fully-convolutional evaluation (Sec. 3.2) with the same parameters; needs
        inputs ≥ 224 (conv5 pool ≥ 7×7).
    """

    config: Sequence[Any]
    num_classes: int = 1000
    batch_norm: bool = False
    drop_rate: float = 0.5
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
                x = layers.max_pool(layers.tap(x, f"features.{i - 1}"), 2, 2)
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
        x = layers.tap(x, f"features.{i - 1}")
        names = ("classifier.0", "classifier.3", "classifier.6")
        if not self.dense:
            return layers.fc_stack_head(layers.adaptive_avg_pool(x, 7), self.num_classes, self.drop_rate, train,
                                        self.dtype, names=names, kernel_init=FC_INIT)
        # Dense evaluation (Sec. 3.2): the FCs as convs over the whole conv5 pool output.
        if x.shape[1] < 7 or x.shape[2] < 7:
            raise ValueError(f"dense VGG needs a conv5 pool of at least 7×7, got {x.shape[1:3]}")
        fc6, fc7 = (layers.make_dense(self.dtype, kernel_init=FC_INIT)(4096, name=n) for n in names[:2])
        drop = functools.partial(nn.Dropout, self.drop_rate, deterministic=not train)
        x = nn.relu(_dense_as_conv(fc6, x, (x.shape[-1], 7, 7)))
        x = nn.relu(_dense_as_conv(fc7, drop()(x), (x.shape[-1], 1, 1)))
        if self.num_classes == 0:
            return layers.global_avg_pool(x).astype(jnp.float32)
        fc8 = layers.make_dense(self.dtype, kernel_init=FC_INIT)(self.num_classes, name=names[2])
        x = _dense_as_conv(fc8, drop()(x), (x.shape[-1], 1, 1))
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


def vgg_anatomy(config: Sequence[Any], batch_norm: bool = False, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`VGG` built with these arguments.

    Maps: the module before each max pool at strides 1…16 (its channel count is the last
    conv's) and the last pool at stride 32, named by torch ``features`` indices.
    """
    maps, i, channels, reduction = [], 0, 3, 1
    for v in config:
        if v == "M":
            maps.append((f"features.{i - 1}", channels, reduction))
            reduction *= 2
            i += 1
        elif v == "LRN":
            i += 1
        else:
            channels = v[1] if isinstance(v, tuple) else v
            i += 3 if batch_norm else 2
    maps.append((f"features.{i - 1}", channels, reduction))  # the last pool
    return {"num_features": 4096, "feature_info": features(*maps), "classifier": ("classifier.6",),
            "first_conv": "features.0", "dense_eval": {"dense": True}}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`VGG` fields, ``info`` its metadata."""
    register_model(name, functools.partial(VGG, **arch), **vgg_anatomy(**arch), family="vgg", paper=PAPER,
                   year=2015, min_size=32, **info)


# top1: Table 3 (dense evaluation, Sec. 3.2, at one test scale Q; A/A-LRN/B trained and tested
# at S = Q = 256, C/D/E trained with S ∈ [256, 512] and tested at Q = 384; audit
# fidelity-2026-12 §4, verified). Eval preprocessing of the twins: their default torchvision
# weights (VGG*_Weights.IMAGENET1K_V1: resize 256, crop 224, bilinear; tests/test_parity.py checks it);
# the paper-only rows keep that 0.875 (the paper evaluates the whole image densely, no crop).
_TV = {"crop_pct": 0.875, "interpolation": "bilinear"}
_PAPER_ONLY = "Paper-only configuration; count derived in tests/test_classic.py."
_BN_TABLE = ", BatchNorm as torchvision"

_register("vgg11", dict(config=CONFIGS["A"]), table="Table 1 (config A)", **_TV, params=132_863_336,
          top1=70.4, top1_protocol="dense single-scale 256", twin="torchvision:vgg11")
_register("vgg11_lrn", dict(config=CONFIGS["A-LRN"]), table="Table 1 (config A-LRN)", **_TV,
          params=132_863_336, top1=70.3, top1_protocol="dense single-scale 256", notes=_PAPER_ONLY)
_register("vgg13", dict(config=CONFIGS["B"]), table="Table 1 (config B)", **_TV, params=133_047_848,
          top1=71.3, top1_protocol="dense single-scale 256", twin="torchvision:vgg13")
_register("vgg16_c", dict(config=CONFIGS["C"]), table="Table 1 (config C)", **_TV, params=133_638_952,
          top1=72.7, top1_protocol="dense single-scale 384", notes=_PAPER_ONLY)
_register("vgg16", dict(config=CONFIGS["D"]), table="Table 1 (config D)", **_TV, params=138_357_544,
          top1=74.4, top1_protocol="dense single-scale 384", twin="torchvision:vgg16")
_register("vgg19", dict(config=CONFIGS["E"]), table="Table 1 (config E)", **_TV, params=143_667_240,
          top1=74.5, top1_protocol="dense single-scale 384", twin="torchvision:vgg19")
_register("vgg11_bn", dict(config=CONFIGS["A"], batch_norm=True), table="Table 1 (config A)" + _BN_TABLE,
          **_TV, params=132_868_840, twin="torchvision:vgg11_bn")
_register("vgg13_bn", dict(config=CONFIGS["B"], batch_norm=True), table="Table 1 (config B)" + _BN_TABLE,
          **_TV, params=133_053_736, twin="torchvision:vgg13_bn")
_register("vgg16_bn", dict(config=CONFIGS["D"], batch_norm=True), table="Table 1 (config D)" + _BN_TABLE,
          **_TV, params=138_365_992, twin="torchvision:vgg16_bn")
_register("vgg19_bn", dict(config=CONFIGS["E"], batch_norm=True), table="Table 1 (config E)" + _BN_TABLE,
          **_TV, params=143_678_248, twin="torchvision:vgg19_bn")
