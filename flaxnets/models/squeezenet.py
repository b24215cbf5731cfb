"""SqueezeNet family: SqueezeNet 1.0 / 1.1 and the paper's bypass variants.

Paper: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", arXiv 2016 (ICLR 2017 submission).
  * Table 1: SqueezeNet (1.0) layer configuration; Sec. 3.1 / Fig. 2: the Fire module
    (squeeze 1×1 → expand 1×1 ‖ expand 3×3, all with ReLU); final ``conv10`` 1×1 to the
    classes, ReLU, global average pooling; dropout 0.5 after fire9.
  * Sec. 6 / Fig. 2 (middle, right) / Table 3: simple bypass (identity around fire3, fire5,
    fire7, fire9, where input and output widths agree) and complex bypass (additionally a
    1×1 convolution around fire2, fire4, fire6, fire8).
  * SqueezeNet 1.1 (the authors' GitHub release, v1.1): 3×3/64 conv1 and earlier pooling,
    2.4× less computation, same accuracy.

Module names equal torchvision's ``state_dict`` paths (``features.3.squeeze`` …,
``classifier.1``); max pools use ``ceil_mode=True`` as in the Caffe original. (The Caffe
``conv10`` also has ``pad: 1``, which torchvision and this port omit: padding a 1×1 conv
only adds a border of ReLU(bias) values to the global average.)

Bypass parameter counts (derived, checked in ``tests/test_squeezenet.py``): the simple
bypass adds no parameters (1,248,424 for 1.0). The complex bypass adds a 1×1 conv with
bias around fire2 (96→128), fire4 (128→256), fire6 (256→384) and fire8 (384→512):
96·128 + 128·256 + 256·384 + 384·512 + (128 + 256 + 384 + 512) = 341,248 parameters, so
1,589,672 in total. The paper's Table 3 reports model sizes (4.8 MB vanilla and simple,
7.7 MB complex) rather than counts; it does not specify whether the bypass convs have a
bias (Caffe's default, which we follow).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import features, register_model

ModuleDef = Any

PAPER = "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"

# Per version: (stem features, stem kernel, layout). "P" is a 3×3/2 ceil-mode max pool,
# a tuple is a Fire module (squeeze, expand1x1, expand3x3). Index = torchvision index - 3.
_VERSIONS: dict[str, tuple[int, int, tuple[Any, ...]]] = {
    "1_0": (96, 7, ((16, 64, 64), (16, 64, 64), (32, 128, 128), "P", (32, 128, 128),
                    (48, 192, 192), (48, 192, 192), (64, 256, 256), "P", (64, 256, 256))),
    "1_1": (64, 3, ((16, 64, 64), (16, 64, 64), "P", (32, 128, 128), (32, 128, 128), "P",
                    (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256))),
}
BYPASS_MODES = ("none", "simple", "complex")


# Caffe's "xavier" filler: uniform on ±sqrt(3 / fan_in) (variance 1/fan_in).
CAFFE_XAVIER = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
# conv10's bias starts at 1, not at Caffe's / torchvision's 0. Its ReLU before the global
# average pool clips each class map at 0; a class whose map is <= 0 on every input has logit 0
# and gradient exactly 0 for good. At 32×32 the map is 1×1 (conv10 → ReLU is a clipped logit):
# with zero bias the sign of w_c·a, shared by every image (post-ReLU features a >= 0 share a large
# common part), already kills about half of the 10 digit classes at init and the first updates the
# rest (squeezenet1_1's default run on digits: 29.17 % test top-1; 91.94 % with bias 1).
# Krizhevsky et al. 2012 (AlexNet), Sec. 5: biases of ReLU layers set to "the constant 1. This
# initialization accelerates the early stages of learning by providing the ReLUs with positive
# inputs." A bias shared by all classes leaves the softmax unchanged while the maps are positive.
CLASSIFIER_BIAS_INIT = 1.0

class Fire(nn.Module):
    """Fire module (paper Sec. 3.1): squeeze 1×1 → ReLU → [expand 1×1 ‖ expand 3×3] → ReLU.

    ``bypass``: "none", "identity" (simple bypass, Sec. 6) or "conv" (complex bypass: a 1×1
    convolution on the shortcut, named ``bypass``). The bypass is added after the concat.
    """

    squeeze: int
    expand1x1: int
    expand3x3: int
    conv: ModuleDef = nn.Conv
    bypass: str = "none"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        s = nn.relu(self.conv(self.squeeze, (1, 1), padding="VALID", name="squeeze")(x))
        a = nn.relu(self.conv(self.expand1x1, (1, 1), padding="VALID", name="expand1x1")(s))
        b = nn.relu(self.conv(self.expand3x3, (3, 3), padding=((1, 1), (1, 1)), name="expand3x3")(s))
        y = jnp.concatenate([a, b], axis=-1)
        if self.bypass == "identity":
            y = y + x
        elif self.bypass == "conv":
            y = y + self.conv(y.shape[-1], (1, 1), padding="VALID", name="bypass")(x)
        return y


class SqueezeNet(nn.Module):
    """SqueezeNet 1.0 (paper Table 1) or 1.1, optionally with the paper's bypasses (Sec. 6).

    Attributes:
      version: "1_0" or "1_1".
      bypass: "none", "simple" (identity around fire3/5/7/9) or "complex" (also a 1×1 conv
        around fire2/4/6/8).
      drop_rate: dropout before the classifier conv (0.5 in the paper).
      caffe_init: initialise the convs as the authors' Caffe network (forresti/SqueezeNet
        ``SqueezeNet_v1.0/train_val.prototxt``: ``weight_filler { type: "xavier" }``, i.e.
        uniform with variance 1/fan_in) instead of torchvision's He fan-in. Both bypass
        variants (paper-only models, trained with the authors' Caffe setup) use it: without
        normalisation each bypass sum adds the variances. With He init (variance 2/fan_in) the
        complex bypass starts at a loss of ~35 and a gradient norm of ~2000 on 10 classes
        (non-finite loss within a few steps), with Caffe's at ~2.6 and ~36; the simple bypass's
        pooled features have a squared norm of ~2.3e5 with He init (loss ~7.6 at init, 39.44 %
        on digits at the default command) and ~71 with Caffe's (99.72 %). The plain 1.0 / 1.1
        keep He: with Caffe's filler and this project's normalised inputs (Caffe fed mean-
        subtracted 0-255 pixels) their features vanish (~0.004) and 1.1 stays at 10 %.

    Feature maps (``features_only``): the stem ReLU (torchvision ``features.1``) and the last
    Fire module at each stride (torchvision ``features.N``); ``num_classes=0`` returns the
    globally pooled fire9 output, the 512 features that reach the classifier conv.
    """

    version: str = "1_0"
    num_classes: int = 1000
    bypass: str = "none"
    drop_rate: float = 0.5
    caffe_init: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.bypass not in BYPASS_MODES:
            raise ValueError(f"bypass must be one of {BYPASS_MODES}, got {self.bypass!r}")
        stem, k, layout = _VERSIONS[self.version]
        taps = {f.module for f in squeezenet_anatomy(self.version)["feature_info"]}
        # Init as torchvision: He fan-in for every conv (kaiming_uniform_), N(0, 0.01) for the
        # classifier conv (also Caffe's train_val.prototxt conv10 filler), whose bias starts at
        # CLASSIFIER_BIAS_INIT. (The project's fan-out default gave a loss of ~20 at init: the
        # narrow squeeze layers have a small fan-out, hence large weights.)
        init = CAFFE_XAVIER if self.caffe_init else layers.conv_init_fan_in
        conv = layers.make_conv(self.dtype, use_bias=True, kernel_init=init)
        x = x.astype(self.dtype)
        x = nn.relu(conv(stem, (k, k), strides=(2, 2), padding="VALID", name="features.0")(x))
        x = layers.tap(x, "features.1")  # torchvision's ReLU module after the stem conv
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        fire = 0  # paper numbering: fire2 … fire9 ↔ fire = 0 … 7
        for i, item in enumerate(layout):
            if item == "P":
                x = layers.max_pool(x, 3, 2, ceil_mode=True)
                continue
            mode = "none"
            if self.bypass != "none" and fire % 2 == 1:  # fire3, fire5, fire7, fire9
                mode = "identity"
            elif self.bypass == "complex":  # fire2, fire4, fire6, fire8: widths change
                mode = "conv"
            x = Fire(*item, conv=conv, bypass=mode, name=f"features.{i + 3}")(x)
            if f"features.{i + 3}" in taps:
                x = layers.tap(x, f"features.{i + 3}")
            fire += 1
        if self.num_classes == 0:
            return layers.global_avg_pool(x).astype(jnp.float32)
        x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        x = nn.relu(conv(self.num_classes, (1, 1), padding="VALID", kernel_init=nn.initializers.normal(0.01),
                         bias_init=nn.initializers.constant(CLASSIFIER_BIAS_INIT), name="classifier.1")(x))
        return layers.global_avg_pool(x).astype(jnp.float32)


def squeezenet_anatomy(version: str = "1_0", **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`SqueezeNet` of ``version``.

    Maps: the stem ReLU (stride 2) and the Fire module before each max pool and the last one
    (strides 4, 8, 16), named by their torchvision ``features`` index.
    """
    stem, _, layout = _VERSIONS[version]
    maps, stride, width = [("features.1", stem, 2)], 4, stem
    for i, item in enumerate(layout):
        if item == "P":
            maps.append((f"features.{i + 2}", width, stride))
            stride *= 2
        else:
            width = item[1] + item[2]
    maps.append((f"features.{len(layout) + 2}", width, stride))
    return {"num_features": width, "feature_info": features(*maps), "classifier": ("classifier.1",),
            "first_conv": "features.0", "dense_eval": {}}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`SqueezeNet` fields, ``info`` its metadata."""
    register_model(name, functools.partial(SqueezeNet, **arch), **squeezenet_anatomy(**arch), **info)


# Fully convolutional as built (conv classifier + global pooling): dense evaluation needs no
# overrides. top1: the paper's Caffe numbers, measured on the central 227 crop of the 256×256
# validation images (forresti/SqueezeNet ``train_val.prototxt``, TEST phase ``crop_size: 227``);
# eval preprocessing of the twins: torchvision's IMAGENET1K_V1 weights (resize 256, crop 224,
# bilinear); the paper-only bypass variants: Caffe's 227 of 256.
_COMMON = dict(family="squeezenet", paper=PAPER, year=2016, min_size=21)
_CAFFE = dict(crop_pct=227 / 256, top1_protocol="1 crop 227")

_register("squeezenet1_0", dict(version="1_0"), **_COMMON, table="Table 1", crop_pct=0.875,
          top1=57.5, top1_protocol="1 crop 227", params=1_248_424, twin="torchvision:squeezenet1_0",
          notes="Paper top-1 57.5 (Table 2, Caffe); torchvision's weights reach 58.09.")
_register("squeezenet1_1", dict(version="1_1"), **_COMMON,
          table="Table 1 (v1.1 of the authors' release: 3×3/64 conv1, pools after fire3/fire5)",
          crop_pct=0.875, top1=None, params=1_235_496, twin="torchvision:squeezenet1_1",
          notes="No paper number; torchvision's weights reach 58.18 top-1.")
_register("squeezenet1_0_simple_bypass", dict(version="1_0", bypass="simple", caffe_init=True), **_COMMON, **_CAFFE,
          table="Sec. 6, Fig. 2 (middle), Table 3", top1=60.4, params=1_248_424,
          notes="Identity bypass around fire3/5/7/9: no extra parameters.")
_register("squeezenet1_0_complex_bypass", dict(version="1_0", bypass="complex", caffe_init=True), **_COMMON, **_CAFFE,
          table="Sec. 6, Fig. 2 (right), Table 3", top1=58.8,
          params=1_248_424 + 96 * 128 + 128 * 256 + 256 * 384 + 384 * 512 + 128 + 256 + 384 + 512,
          notes="Derived count: 1×1 bypass convs (with bias) around fire2/4/6/8 add 341,248 params.")
