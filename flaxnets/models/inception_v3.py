"""Inception-v3.

Paper: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
2016 — Table 1 (the network: 299×299 input, 3×Inception Fig. 5, 5×Inception Fig. 6 with
n = 7, 2×Inception Fig. 7, grid reductions Fig. 10), Sec. 4 (auxiliary classifier with
BatchNorm, weight 0.4 in the reference training code), Sec. 7 (lower-resolution inputs:
first conv stride 1, with or without the first max pool).

Module names equal torchvision's ``state_dict`` paths (``Conv2d_1a_3x3``, ``Mixed_5b``,
``AuxLogits`` …), so torchvision's ``inception_v3`` weights convert 1:1. Every conv is
followed by BatchNorm (eps 1e-3) and ReLU. ``transform_input`` is not modelled
(torchvision builds it as False without weights).

Auxiliary head: torchvision runs it in training only. Here it is called in training and at
``init`` (so its parameters exist whatever ``train`` is) and its logits are sown into
:data:`flaxnets.AUX_COLLECTION` only when ``train=True``; evaluation never runs it, so eval
works at any input the main path accepts (≥ 75). Training with the head needs the 17×17
grid to be ≥ 17 (a ≥ 299 input), as in torchvision.

SE-Inception-v3 (``se_inception_v3``): Hu et al., "Squeeze-and-Excitation Networks", CVPR
2018 / TPAMI 2019, Fig. 2 and Sec. 3.3 — the SE block's transformation F_tr is a whole
Inception module, so :class:`flaxnets.layers.SqueezeExcite` (global average pool → FC C/r →
ReLU → FC C → sigmoid → channel scale, FCs with biases) gates each module's concatenated
output (``Mixed_*/se``), with the paper's exact C/r (r = 16; every width here is a multiple
of 16). The two grid-reduction modules (Fig. 10: ``Mixed_6a``, ``Mixed_7a``) are Inception
modules too and get SE as well: the paper applies SE "for each such module in the
architecture", and the authors' released SE-BN-Inception (github.com/hujie-frank/SENet,
``SE-BN-Inception.prototxt``) gates its stride-2 modules 3c and 4e like the others. The
stem convolutions and the auxiliary head carry none. The paper trains no SE-Inception-v3
(Table 2 has SE-BN-Inception and SE-Inception-ResNet-v2), so no accuracy is registered.
Derived count (:func:`flaxnets.layers.se_param_count`): inception_v3's 27,161,264 +
Σ_modules (C·C/r + C/r + C/r·C + C) over C = 256, 288, 288, 768 ×5, 1280, 2048, 2048
(+1,661,620) = 28,822,884.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.layers import SE_PAPER, inception_se, se_param_count
from flaxnets.registry import AUX_COLLECTION, INCEPTION_MEAN, INCEPTION_STD, features, register_model

ModuleDef = Any
Array = Any

PAPER = "Rethinking the Inception Architecture for Computer Vision"


class InceptionA(nn.Module):
    """35×35 module (Fig. 5; 5×5 kept as in the released model): 1×1 | 5×5 | 2×3×3 | pool."""

    pool_features: int
    unit: ModuleDef
    se_reduction: int | None = None  # SE-Inception (Fig. 2 of Hu et al.)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b1 = u(64, 1, name="branch1x1")(x)
        b5 = u(48, 1, name="branch5x5_1")(x)
        b5 = u(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = u(64, 1, name="branch3x3dbl_1")(x)
        b3 = u(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = u(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = u(self.pool_features, 1, name="branch_pool")(layers.avg_pool(x, 3, 1, padding=1))
        return inception_se(jnp.concatenate([b1, b5, b3, bp], axis=-1), self.se_reduction)


class InceptionB(nn.Module):
    """35→17 grid reduction (Fig. 10): 3×3/2 | 1×1→3×3→3×3/2 | max-pool 3×3/2."""

    unit: ModuleDef
    se_reduction: int | None = None  # SE-Inception (Fig. 2 of Hu et al.)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b3 = u(384, 3, strides=2, name="branch3x3")(x)
        bd = u(64, 1, name="branch3x3dbl_1")(x)
        bd = u(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = u(96, 3, strides=2, name="branch3x3dbl_3")(bd)
        return inception_se(jnp.concatenate([b3, bd, layers.max_pool(x, 3, 2)], axis=-1), self.se_reduction)


class InceptionC(nn.Module):
    """17×17 module with factorised 7×7 convolutions (Fig. 6, n = 7)."""

    c7: int
    unit: ModuleDef
    se_reduction: int | None = None  # SE-Inception (Fig. 2 of Hu et al.)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u, c7 = self.unit, self.c7
        b1 = u(192, 1, name="branch1x1")(x)
        b7 = u(c7, 1, name="branch7x7_1")(x)
        b7 = u(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = u(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = u(c7, 1, name="branch7x7dbl_1")(x)
        bd = u(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = u(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = u(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = u(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = u(192, 1, name="branch_pool")(layers.avg_pool(x, 3, 1, padding=1))
        return inception_se(jnp.concatenate([b1, b7, bd, bp], axis=-1), self.se_reduction)


class InceptionD(nn.Module):
    """17→8 grid reduction: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool 3×3/2."""

    unit: ModuleDef
    se_reduction: int | None = None  # SE-Inception (Fig. 2 of Hu et al.)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b3 = u(192, 1, name="branch3x3_1")(x)
        b3 = u(320, 3, strides=2, name="branch3x3_2")(b3)
        b7 = u(192, 1, name="branch7x7x3_1")(x)
        b7 = u(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = u(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = u(192, 3, strides=2, name="branch7x7x3_4")(b7)
        return inception_se(jnp.concatenate([b3, b7, layers.max_pool(x, 3, 2)], axis=-1), self.se_reduction)


class InceptionE(nn.Module):
    """8×8 module with expanded filter bank outputs (Fig. 7)."""

    unit: ModuleDef
    se_reduction: int | None = None  # SE-Inception (Fig. 2 of Hu et al.)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b1 = u(320, 1, name="branch1x1")(x)
        b3 = u(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate([u(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              u(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = u(448, 1, name="branch3x3dbl_1")(x)
        bd = u(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([u(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              u(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        bp = u(192, 1, name="branch_pool")(layers.avg_pool(x, 3, 1, padding=1))
        return inception_se(jnp.concatenate([b1, b3, bd, bp], axis=-1), self.se_reduction)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17×17 grid (Sec. 4, Fig. 8): avg-pool 5×5/3 → 1×1 conv
    128 → 5×5 conv 768 (both with BatchNorm) → global average → FC."""

    num_classes: int
    unit: ModuleDef
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = layers.avg_pool(x, 5, 3)
        if min(x.shape[1:3]) < 5:
            raise ValueError(f"the aux head's 5×5 conv needs a ≥ 17×17 input grid, got a {x.shape[1:3]} "
                             "pooled map; use a larger input or aux_logits=False")
        x = self.unit(128, 1, name="conv0")(x)
        x = self.unit(768, 5, name="conv1")(x)
        x = layers.global_avg_pool(x)
        return layers.make_dense(self.dtype)(self.num_classes, name="fc")(x).astype(jnp.float32)


class Inception3(nn.Module):
    """Inception-v3 (Table 1 of Szegedy et al. 2016), torchvision layout.

    Attributes:
      aux_logits: build the auxiliary head on the 17×17 grid (sown in training only).
      aux_loss_weight: its loss weight (0.4, as in the reference training code).
      drop_rate: dropout before the classifier (torchvision 0.5; the paper's Table 1 has
        none but the released model uses keep 0.8 → pass 0.2).
      low_res: Sec. 7 low-resolution stems. 0 → standard (299 input); 151 → first conv
        stride 1 (the 151×151 receptive-field variant); 79 → first conv stride 1 and no
        first max pool (the 79×79 variant). Same parameters as the standard network.
      se_reduction: None → Inception-v3; r → SE-Inception-v3: an SE block with reduction r
        on the output of every Inception module, grid reductions included (Hu et al. 2018,
        Fig. 2); the stem and the aux head are unchanged.

    Feature maps (``features_only``): the outputs of ``Conv2d_2b_3x3`` (stride 2),
    ``Conv2d_4a_3x3`` (4), ``Mixed_5d`` (8), ``Mixed_6e`` (16) and ``Mixed_7c`` (32), the
    last module of each resolution (timm's choice too). ``num_classes=0`` builds neither
    ``fc`` nor ``AuxLogits`` and returns the pooled 2048 ``Mixed_7c`` features.
    """

    num_classes: int = 1000
    aux_logits: bool = True
    aux_loss_weight: float = 0.4
    drop_rate: float = 0.5
    low_res: int = 0
    se_reduction: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.low_res not in (0, 79, 151):
            raise ValueError(f"low_res must be 0, 79 or 151, got {self.low_res}")
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype, epsilon=1e-3)
        unit = functools.partial(layers.ConvBNAct, conv=conv, norm=norm, padding=0)
        se = self.se_reduction
        x = x.astype(self.dtype)
        x = unit(32, 3, strides=1 if self.low_res else 2, name="Conv2d_1a_3x3")(x)
        x = unit(32, 3, name="Conv2d_2a_3x3")(x)
        x = layers.tap(unit(64, 3, padding=1, name="Conv2d_2b_3x3")(x), "Conv2d_2b_3x3")
        if self.low_res != 79:
            x = layers.max_pool(x, 3, 2)
        x = unit(80, 1, name="Conv2d_3b_1x1")(x)
        x = layers.tap(unit(192, 3, name="Conv2d_4a_3x3")(x), "Conv2d_4a_3x3")
        x = layers.max_pool(x, 3, 2)
        for name, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pf, unit, se, name=name)(x)
        x = layers.tap(x, "Mixed_5d")
        x = InceptionB(unit, se, name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, unit, se, name=name)(x)
        x = layers.tap(x, "Mixed_6e")
        if self.aux_logits and self.num_classes and (train or self.is_initializing()):
            aux_in = x
            if not train and min(x.shape[1:3]) < 17:
                # Parameter shapes do not depend on the grid: create them on a 17×17 map so
                # that init works at every size eval accepts.
                aux_in = jnp.zeros((x.shape[0], 17, 17, x.shape[3]), x.dtype)
            aux = InceptionAux(self.num_classes, unit, self.dtype, name="AuxLogits")(aux_in)
            if train:
                self.sow(AUX_COLLECTION, "aux", aux)
        x = InceptionD(unit, se, name="Mixed_7a")(x)
        x = InceptionE(unit, se, name="Mixed_7b")(x)
        x = layers.tap(InceptionE(unit, se, name="Mixed_7c")(x), "Mixed_7c")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc")


def inception_v3_anatomy(aux_logits: bool = True, aux_loss_weight: float = Inception3.aux_loss_weight,
                         **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of an :class:`Inception3` built with these arguments
    (standard stem, ``low_res=0``): torchvision module outputs at strides 2 … 32."""
    maps = (("Conv2d_2b_3x3", 64, 2), ("Conv2d_4a_3x3", 192, 4), ("Mixed_5d", 288, 8),
            ("Mixed_6e", 768, 16), ("Mixed_7c", 2048, 32))
    return {"num_features": 2048, "feature_info": features(*maps), "first_conv": "Conv2d_1a_3x3/conv",
            "classifier": ("fc", "AuxLogits") if aux_logits else ("fc",),
            "aux_loss_weight": aux_loss_weight if aux_logits else 0.0}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`Inception3` fields, ``info`` its metadata."""
    register_model(name, functools.partial(Inception3, **arch), **inception_v3_anatomy(**arch),
                   family="inception_v3", input_size=(299, 299, 3), min_size=299, min_size_no_aux=75,
                   mean=INCEPTION_MEAN, std=INCEPTION_STD, **info)


# Eval preprocessing of inception_v3: the twin's default torchvision weights
# (Inception_V3_Weights.IMAGENET1K_V1: resize 342, crop 299, bilinear). top1: Table 3 single
# 299 crop (audit fidelity-2026-12 §8).
_register(
    "inception_v3", {},
    paper=PAPER, year=2016, table="Table 1, Figs. 5-7, 10", crop_pct=299 / 342,
    top1=78.8, top1_protocol="1 crop 299", params=27_161_264, twin="torchvision:inception_v3",
    twin_kwargs={"aux_logits": True, "init_weights": True},
    notes="23,834,568 params without the aux head (aux_logits=False). min_size 299 is the "
          "smallest input that trains with the aux head (its 5×5/3 pool and 5×5 conv need "
          "a 17×17 grid); eval and aux_logits=False accept ≥ 75. top1: single model, "
          "single crop (Table 3: 21.2% top-1 / 5.6% top-5 error, Inception-v3 BN-auxiliary; "
          "Table 4, 144 crops: 18.77% / 4.2%).",
)

# Output widths of the 11 modules Mixed_5b … Mixed_7c (torchvision layout): the C of each SE block.
SE_INCEPTION_V3_WIDTHS = [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048]

# No published number, so no protocol; eval preprocessing: the 0.875 default.
_register(
    "se_inception_v3", {"se_reduction": 16},
    paper=SE_PAPER, year=2018, table="Fig. 2, Sec. 3.3 (no table entry)",
    top1=None, params=27_161_264 + se_param_count(SE_INCEPTION_V3_WIDTHS),
    notes="Inception-v3 (torchvision layout, aux head) with an SE block (r = 16) on each of "
          "the 11 Inception modules, grid reductions Mixed_6a/7a included. Derived count: "
          "inception_v3's 27,161,264 + Σ over modules of C·C/16 + C/16 + C/16·C + C with "
          "C = 256, 288, 288, 768 ×5, 1280, 2048, 2048 (+1,661,620) = 28,822,884; "
          "25,496,188 with aux_logits=False. The SENet paper reports no SE-Inception-v3 "
          "result (its Inception results are SE-BN-Inception and SE-Inception-ResNet-v2, "
          "Table 2), so top1 is None.",
)
