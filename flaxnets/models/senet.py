"""SENet family: Squeeze-and-Excitation ResNets, ResNeXts and SENet-154.

Paper: Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI
2020 — Fig. 3 (SE-ResNet module: SE on the residual branch, before the addition), Table 1
(SE-ResNet-50, SE-ResNeXt-50 32×4d), Table 2 (single-crop ImageNet top-1/top-5 of the
SE counterparts of ResNet-50/101/152 and ResNeXt-50/101), Table 8 / TPAMI Appendix (SENet-154).

The SE block (:class:`flaxnets.layers.SqueezeExcite`: global average pool, FC-ReLU-FC-
sigmoid with reduction r = 16, channel-wise scale) is plugged into the ResNet family's
blocks through their ``attn`` hook (:mod:`flaxnets.models.resnet`), so module names are
timm's ``timm.models.resnet`` paths (``layer1.0.se.fc1`` …) and timm weights convert 1:1.
The reduced width follows timm: ``C/16`` rounded to a multiple of 8 (at least 8; the
paper's exact ``C/r`` except SE-ResNet-18/34's 64-channel stage, where 4 → 8).

SENet-154 (timm ``senet154``, the weights of the paper's winning ILSVRC 2017 entry as
re-trained by GluonCV): a SE-ResNeXt-152 64×4d with a deep 3×3 stem (64-64-128), the
first 1×1 of each bottleneck at half width, and 3×3 strided projections. It has exactly
the same parameter count as timm's ``legacy_senet154`` (the authors' Caffe weights), which
differs only in its stem max pool (``ceil_mode=True`` instead of ``padding=1``), its default
head dropout 0.2 and its module names; the registry name follows timm's ``senet154``.
(timm's ``legacy_seresnet*`` are the Caffe v1 variants with the stride on the first 1×1.)

Parity note: with the registry parity test's random BatchNorm state, SENet-154 (and, at
the 1e-4 level, SE-ResNet-152) is numerically chaotic — the timm twin's own fp32 and fp64
logits differ by ~1e2 (1.1e-4) — so ``tests/test_senet.py`` checks SENet-154 in a
contracting regime (last BN of each block scaled by 0.2), where logits match to 1e-4.

Squeeze-and-Excitation Inception variants (SE-Inception-v3, SE-Inception-ResNet-v2,
Table 2) are not registered here; they belong with the Inception family.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from flaxnets import layers
from flaxnets.models.resnet import BasicBlock, Bottleneck, ResNet, resnet_anatomy
from flaxnets.registry import register_model

PAPER = "Squeeze-and-Excitation Networks"


def se_reduced(channels: int, reduction: int = 16, divisor: int = 8) -> int:
    """Width of the SE bottleneck: ``channels / reduction`` rounded to ``divisor`` (timm)."""
    return layers.make_divisible(channels / reduction, divisor)


def se_layer(channels: int, name: str | None = None, dtype: Any = jnp.float32,
             reduction: int = 16) -> layers.SqueezeExcite:
    """The ``attn`` hook of the ResNet blocks: an SE block for ``channels`` channels."""
    return layers.SqueezeExcite(se_reduced(channels, reduction), dtype=dtype, name=name)


class SENet(ResNet):
    """SE-ResNet / SE-ResNeXt / SENet-154 (Hu et al. 2018, Fig. 3 and Table 1).

    :class:`flaxnets.models.resnet.ResNet` (same fields) whose every block applies a
    squeeze-and-excitation block (``attn``, default :func:`se_layer`: reduction 16) to the
    residual branch before the addition, with the last BN scale of each block at 0 as timm.
    """

    attn: Any = se_layer
    # The twins' init: timm's ResNet zero-inits the last BN scale of every residual branch by
    # default (timm 1.0.31 models/resnet.py: ``zero_init_last=True`` at :507, applied at :636-639
    # through each block's ``zero_init_last``: ``bn2`` / ``bn3``), so each SE block starts as the
    # identity. torchvision's plain ResNets default to γ = 1, which :class:`ResNet` keeps.
    zero_init_last: bool = True


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`SENet` fields, ``info`` its metadata."""
    arch = {"stem_tap": "act1", **arch}  # timm's module name for the stem activation
    register_model(name, functools.partial(SENet, **arch), **resnet_anatomy(**arch), family="senet",
                   paper=PAPER, year=2018, twin=f"timm:{name}", interpolation="bicubic", **info)


# top1: single 224 crop, TPAMI Table 2 "SENet" column (Table 8 for SENet-154). Eval
# preprocessing: timm's pretrained_cfg of each twin's default tag (bicubic; crop 0.875,
# seresnet50.a1_in1k 0.95). seresnet18/34/101/152 have only ``.untrained`` tags in timm.
_SE_NOTE = "SE reduction r=16, reduced width rounded to a multiple of 8 as in timm."
_TABLE = "Fig. 3, Table 1/2"

_register("seresnet18", dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock), table=_TABLE,
          params=11_779_624, notes=_SE_NOTE)
_register("seresnet34", dict(stage_sizes=(3, 4, 6, 3), block=BasicBlock), table=_TABLE,
          params=21_960_416, notes=_SE_NOTE)
_register("seresnet50", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck), table=_TABLE, crop_pct=0.95,
          params=28_088_024, top1=76.71, top1_protocol="1 crop 224", notes=_SE_NOTE)
_register("seresnet101", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck), table=_TABLE,
          params=49_326_872, top1=77.62, top1_protocol="1 crop 224", notes=_SE_NOTE)
_register("seresnet152", dict(stage_sizes=(3, 8, 36, 3), block=Bottleneck), table=_TABLE,
          params=66_821_848, top1=78.43, top1_protocol="1 crop 224", notes=_SE_NOTE)
_register("seresnext50_32x4d", dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, groups=32, base_width=4),
          table=_TABLE, params=27_559_896, top1=78.90, top1_protocol="1 crop 224", notes=_SE_NOTE)
_register("seresnext101_32x4d", dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, groups=32, base_width=4),
          table=_TABLE, params=48_955_416, top1=79.30, top1_protocol="1 crop 224", notes=_SE_NOTE)
_register("senet154", dict(stage_sizes=(3, 8, 36, 3), block=Bottleneck, groups=64, base_width=4, stem="deep",
                           reduce_first=2, down_kernel_size=3),
          table="Table 8, Appendix (SENet-154)", params=115_088_984, top1=81.32, top1_protocol="1 crop 224",
          notes=_SE_NOTE + " timm's ResNet-based senet154 (deep stem, half-width first 1×1, 3×3 strided "
                           "projections); dropout 0.2 of the paper via drop_rate=0.2.")
