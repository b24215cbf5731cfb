"""GoogLeNet (Inception-v1) and BN-Inception.

Papers:
  * Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 — Table 1 (layer
    configuration), Fig. 2(b) (Inception module), Fig. 3 (LRN placement, auxiliary
    classifiers), Sec. 5 (auxiliary heads: 5×5/3 average pool, 1×1 conv 128, FC 1024,
    dropout 0.7, loss weight 0.3; dropout 0.4 before the main classifier).
  * Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015 — Sec. 4.2 and Figure 5 (the BN-Inception table:
    BatchNorm before every nonlinearity, each 5×5 replaced by two 3×3, stride-2 modules
    3c/4e that concatenate a max-pool pass-through).

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI 2019 — Fig. 2 (SE-Inception
module) and Table 2 (SE-BN-Inception: 24.23% / 7.14% top-1/top-5 error, single 224 crop).

Four registered networks:
  * ``googlenet_paper`` — Table 1 as printed: biased convolutions, no BatchNorm, LRN after
    the first pool and after conv3 (size 5, α 1e-4, β 0.75, k 1 with α/size as in the
    reference Caffe model bvlc_googlenet, since the paper gives no LRN constants), 5×5 convs.
  * ``googlenet`` — torchvision's GoogLeNet: BatchNorm (eps 1e-3) after every conv, a 3×3
    conv where Table 1 has 5×5, aux heads with adaptive 4×4 pooling, dropout 0.2. Module
    names are torchvision's ``state_dict`` paths, so its weights convert 1:1.
    ``transform_input`` is not modelled: torchvision builds it as False without weights.
  * ``bn_inception`` — the BN paper's Figure 5 network (no aux heads, no dropout, no LRN).
  * ``se_bn_inception`` — ``bn_inception`` with an SE block (r = 16, exact C/r, FCs with
    biases) on the output of each of its 10 Inception modules, the stride-2 modules 3c and
    4e included, as in the authors' released ``SE-BN-Inception.prototxt``
    (github.com/hujie-frank/SENet; its SE widths 16, 20, 36, 36, 36, 38, 38, 66, 64, 64 are
    C/16 of the module widths below). Only the SE blocks are taken from that model; the
    rest is this file's Figure 5 network. Derived count: bn_inception_param_count() +
    Σ (C·C/r + C/r + C/r·C + C) over :func:`bn_inception_widths` (+646,398) = 11,931,622.

The aux heads follow the project contract: always called (so ``init`` creates their
parameters whatever ``train`` is), their logits sown into
:data:`flaxnets.AUX_COLLECTION` (``{"aux1": {"logits": ...}, "aux2": ...}``) only when
``train=True``; the return value is the main logits. With ``num_classes=0`` neither the
classifier nor the aux heads are built (the model returns its pooled features).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.layers import SE_PAPER, inception_se, se_param_count
from flaxnets.registry import AUX_COLLECTION, INCEPTION_MEAN, INCEPTION_STD, features, register_model

ModuleDef = Any
Array = Any

GOOGLENET_PAPER = "Going Deeper with Convolutions"
BN_PAPER = ("Batch Normalization: Accelerating Deep Network Training by Reducing Internal "
            "Covariate Shift")

# Table 1 of the GoogLeNet paper: name → (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5,
# pool proj). Max pools (3×3/2) follow 3b and 4e.
GOOGLENET_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}

# Figure 5 of the BN paper: name → (#1×1, #3×3 reduce, #3×3, double #3×3 reduce,
# double #3×3, pool type, pool proj). #1×1 = 0 and proj = 0 mark the stride-2 modules whose
# pool branch is a max-pool pass-through.
BN_INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, str, int]] = {
    "inception3a": (64, 64, 64, 64, 96, "avg", 32),
    "inception3b": (64, 64, 96, 64, 96, "avg", 64),
    "inception3c": (0, 128, 160, 64, 96, "max", 0),
    "inception4a": (224, 64, 96, 96, 128, "avg", 128),
    "inception4b": (192, 96, 128, 96, 128, "avg", 128),
    "inception4c": (160, 128, 160, 128, 160, "avg", 128),
    "inception4d": (96, 128, 192, 160, 192, "avg", 128),
    "inception4e": (0, 128, 192, 192, 256, "max", 0),
    "inception5a": (352, 192, 320, 160, 224, "avg", 128),
    "inception5b": (352, 192, 320, 192, 224, "max", 128),
}

# Modules whose outputs are feature maps (the last at strides 8, 16, 32; conv1 and conv3
# give strides 2 and 4).
GOOGLENET_TAPS = ("inception3b", "inception4e", "inception5b")
BN_INCEPTION_TAPS = ("inception3b", "inception4d", "inception5b")


class InceptionModule(nn.Module):
    """GoogLeNet Inception module (Fig. 2b): 1×1 | 1×1→3×3 | 1×1→k×k | 3×3 max-pool→1×1.

    ``k5`` is the kernel of the "5×5" branch (5 in the paper, 3 in torchvision).
    """

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int
    unit: ModuleDef
    k5: int = 5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u = self.unit
        b1 = u(self.ch1x1, 1, padding=0, name="branch1")(x)
        b2 = u(self.ch3x3red, 1, padding=0, name="branch2.0")(x)
        b2 = u(self.ch3x3, 3, padding=1, name="branch2.1")(b2)
        b3 = u(self.ch5x5red, 1, padding=0, name="branch3.0")(x)
        b3 = u(self.ch5x5, self.k5, padding=self.k5 // 2, name="branch3.1")(b3)
        b4 = layers.max_pool(x, 3, 1, padding=1, ceil_mode=True)
        b4 = u(self.pool_proj, 1, padding=0, name="branch4.1")(b4)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier (Sec. 5): pool → 1×1 conv 128 → FC 1024 → dropout 0.7 → FC.

    Sows its logits into :data:`flaxnets.AUX_COLLECTION` as ``logits`` when ``train``.

    ``adaptive=True`` is torchvision's adaptive 4×4 average pool; otherwise the paper's
    5×5 stride-3 average pool (4×4 for the 14×14 grid of a 224 input).
    """

    num_classes: int
    unit: ModuleDef
    adaptive: bool
    drop_rate: float = 0.7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if self.adaptive:
            x = layers.adaptive_avg_pool(x, 4)
        else:
            x = layers.avg_pool(x, 5, 3)
            if x.shape[1:3] != (4, 4):  # FC 1024 is defined on the 4×4×128 map
                raise ValueError(f"paper aux head needs a 14–16 grid at 4a/4d, got a {x.shape[1:3]} "
                                 "pooled map; use a ≈224 input or aux_logits=False")
        x = self.unit(128, 1, padding=0, name="conv")(x)
        x = layers.flatten_nchw(x)
        dense = layers.make_dense(self.dtype)
        x = nn.relu(dense(1024, name="fc1")(x))
        x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        x = dense(self.num_classes, name="fc2")(x).astype(jnp.float32)
        if train:
            self.sow(AUX_COLLECTION, "logits", x)
        return x


class GoogLeNet(nn.Module):
    """GoogLeNet, Table 1 of Szegedy et al. 2015, with its two auxiliary classifiers.

    Attributes:
      paper: True → the paper's network (biased convs, LRN, 5×5 branch, 5×5/3 aux pool,
        dropout 0.4); False → torchvision's (BatchNorm eps 1e-3, 3×3 branch, adaptive aux
        pool, dropout 0.2).
      aux_logits: build the aux heads after 4a and 4d (sown in training only; never built
        with ``num_classes=0``).
      aux_loss_weight: weight of each aux head's loss (0.3, Sec. 5).
      drop_rate: dropout before the classifier; ``None`` → 0.4 (paper) / 0.2 (torchvision).
      aux_dropout: dropout inside the aux heads (0.7).

    Feature maps (``features_only``): the outputs of ``conv1`` (stride 2), ``conv3`` (4,
    before the paper's LRN), ``inception3b`` (8), ``inception4e`` (16) and ``inception5b``
    (32): the last torchvision module at each resolution, before its max pool.
    """

    num_classes: int = 1000
    paper: bool = False
    aux_logits: bool = True
    aux_loss_weight: float = 0.3
    drop_rate: float | None = None
    aux_dropout: float = 0.7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.paper:
            # No BatchNorm: fan-in He init keeps the activation scale through the 22 layers
            # (fan-out init, right for the BN variants, gives logits in the hundreds at init).
            conv = layers.make_conv(self.dtype, use_bias=True,
                                    kernel_init=layers.conv_init_fan_in)
            unit = functools.partial(layers.ConvBNAct, conv=conv, norm=None)
            lrn = functools.partial(layers.LocalResponseNorm, size=5, alpha=1e-4, beta=0.75, k=1.0,
                                    alpha_over_size=True)
        else:
            conv = layers.make_conv(self.dtype)
            norm = layers.batch_norm(train, self.dtype, epsilon=1e-3)
            unit = functools.partial(layers.ConvBNAct, conv=conv, norm=norm)
        x = x.astype(self.dtype)
        x = layers.tap(unit(64, 7, strides=2, padding=3, name="conv1")(x), "conv1")
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        if self.paper:
            x = lrn()(x)
        x = unit(64, 1, padding=0, name="conv2")(x)
        x = layers.tap(unit(192, 3, padding=1, name="conv3")(x), "conv3")
        if self.paper:
            x = lrn()(x)
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        k5 = 5 if self.paper else 3
        for name, cfg in GOOGLENET_TABLE.items():
            if name == "inception4a":
                x = layers.max_pool(x, 3, 2, ceil_mode=True)
            elif name == "inception5a":
                # Table 1: max pool 3×3/2; torchvision: 2×2/2 (same 7×7 output at 224).
                x = layers.max_pool(x, 3 if self.paper else 2, 2, ceil_mode=True)
            x = InceptionModule(*cfg, unit=unit, k5=k5, name=name)(x)
            if name in GOOGLENET_TAPS:
                x = layers.tap(x, name)
            aux_name = {"inception4a": "aux1", "inception4d": "aux2"}.get(name)
            if aux_name and self.aux_logits and self.num_classes:
                # The head sows its own logits (at ``aux1/logits``): the parent cannot sow
                # under "aux1", the head's (torchvision) module name.
                GoogLeNetAux(self.num_classes, unit, adaptive=not self.paper,
                             drop_rate=self.aux_dropout, dtype=self.dtype, name=aux_name)(x, train)
        # Table 1: 7×7/1 average pool on the 7×7 grid, i.e. a global average.
        rate = self.drop_rate if self.drop_rate is not None else (0.4 if self.paper else 0.2)
        return layers.classifier_head(x, self.num_classes, rate, train, self.dtype, name="fc")


class BNInceptionModule(nn.Module):
    """BN-Inception module (BN paper, Figure 5): 1×1 | 1×1→3×3 | 1×1→3×3→3×3 | pool(→1×1).

    ``strides=2`` (3c, 4e): no 1×1 branch, the last conv of each branch has stride 2 and
    the pool branch is a 3×3/2 max-pool pass-through (padding 1, aligned with the convs).
    ``se_reduction``: an SE block on the concatenated output (SE-Inception, Hu et al. 2018).
    """

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    dbl_red: int
    dbl: int
    pool: str
    pool_proj: int
    unit: ModuleDef
    strides: int = 1
    se_reduction: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        u, s = self.unit, self.strides
        outs = []
        if self.ch1x1:
            outs.append(u(self.ch1x1, 1, padding=0, name="branch1")(x))
        b = u(self.ch3x3red, 1, padding=0, name="branch2.0")(x)
        outs.append(u(self.ch3x3, 3, strides=s, padding=1, name="branch2.1")(b))
        b = u(self.dbl_red, 1, padding=0, name="branch3.0")(x)
        b = u(self.dbl, 3, padding=1, name="branch3.1")(b)
        outs.append(u(self.dbl, 3, strides=s, padding=1, name="branch3.2")(b))
        if self.pool == "max":
            p = layers.max_pool(x, 3, s, padding=1)
        else:
            p = layers.avg_pool(x, 3, s, padding=1)
        if self.pool_proj:
            p = u(self.pool_proj, 1, padding=0, name="branch4.1")(p)
        outs.append(p)
        return inception_se(jnp.concatenate(outs, axis=-1), self.se_reduction)


class BNInception(nn.Module):
    """BN-Inception (Ioffe & Szegedy 2015, Figure 5): Inception with BatchNorm everywhere.

    Stem: conv 7×7/2 64, max pool 3×3/2, conv 1×1 64, conv 3×3 192, max pool 3×3/2 (ceil
    mode, as GoogLeNet); modules per :data:`BN_INCEPTION_TABLE`; global average pool,
    optional dropout ``drop_rate`` (the paper removes it, Sec. 4.2.1), linear classifier.
    ``se_reduction`` r → SE-BN-Inception (Hu et al. 2018): an SE block with reduction r on
    every module's output.

    Feature maps (``features_only``): the outputs of ``conv1`` (stride 2), ``conv3`` (4),
    ``inception3b`` (8), ``inception4d`` (16) and ``inception5b`` (32), the last layer at
    each resolution (3c and 4e reduce the grid).
    """

    num_classes: int = 1000
    drop_rate: float = 0.0
    se_reduction: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype)
        unit = functools.partial(layers.ConvBNAct, conv=conv, norm=norm)
        x = x.astype(self.dtype)
        x = layers.tap(unit(64, 7, strides=2, padding=3, name="conv1")(x), "conv1")
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        x = unit(64, 1, padding=0, name="conv2")(x)
        x = layers.tap(unit(192, 3, padding=1, name="conv3")(x), "conv3")
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        for name, cfg in BN_INCEPTION_TABLE.items():
            x = BNInceptionModule(*cfg, unit=unit, strides=1 if cfg[0] else 2, se_reduction=self.se_reduction,
                                  name=name)(x)
            if name in BN_INCEPTION_TAPS:
                x = layers.tap(x, name)
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="fc")


def _conv_params(k: int | Sequence[int], cin: int, cout: int, bias: bool) -> int:
    kh, kw = (k, k) if isinstance(k, int) else k
    return kh * kw * cin * cout + (cout if bias else 0)


def googlenet_param_count(paper: bool, aux: bool, num_classes: int = 1000) -> int:
    """Parameter count of GoogLeNet derived from Table 1 (weights + biases / BN affine).

    Paper: every conv has a bias, the "5×5" branch is 5×5. torchvision: no conv bias, a
    BatchNorm (γ, β) after every conv, 3×3 instead of 5×5.
    """
    extra = (lambda c: c) if paper else (lambda c: 2 * c)  # bias, or BN scale + shift

    def conv(k: int, cin: int, cout: int) -> int:
        return _conv_params(k, cin, cout, bias=False) + extra(cout)

    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    cin, aux_in = 192, []
    for name, (c1, r3, c3, r5, c5, pp) in GOOGLENET_TABLE.items():
        if name in ("inception4a", "inception4d"):
            aux_in.append(c1 + c3 + c5 + pp)
        total += (conv(1, cin, c1) + conv(1, cin, r3) + conv(3, r3, c3) + conv(1, cin, r5)
                  + conv(5 if paper else 3, r5, c5) + conv(1, cin, pp))
        cin = c1 + c3 + c5 + pp
    total += cin * num_classes + num_classes
    if aux:
        for c in aux_in:
            total += conv(1, c, 128) + (2048 * 1024 + 1024) + (1024 * num_classes + num_classes)
    return total


def bn_inception_param_count(num_classes: int = 1000) -> int:
    """Parameter count of BN-Inception derived from Figure 5 (conv weights + BN γ, β)."""

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + 2 * cout

    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    cin = 192
    for c1, r3, c3, rd, cd, _, pp in BN_INCEPTION_TABLE.values():
        total += conv(1, cin, c1) if c1 else 0
        total += conv(1, cin, r3) + conv(3, r3, c3) + conv(1, cin, rd) + conv(3, rd, cd) + conv(3, cd, cd)
        total += conv(1, cin, pp) if pp else 0
        cin = c1 + c3 + cd + (pp if pp else cin)
    return total + cin * num_classes + num_classes


def bn_inception_widths() -> list[int]:
    """Output channels of the 10 BN-Inception modules (Figure 5 branch widths; a max-pool
    pass-through keeps its input's channels)."""
    cin, widths = 192, []
    for c1, _, c3, _, cd, _, pp in BN_INCEPTION_TABLE.values():
        cin = c1 + c3 + cd + (pp if pp else cin)
        widths.append(cin)
    return widths


def googlenet_anatomy(aux_logits: bool = True, aux_loss_weight: float = GoogLeNet.aux_loss_weight,
                      **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`GoogLeNet` built with these arguments."""
    widths = {name: c1 + c3 + c5 + pp for name, (c1, _, c3, _, c5, pp) in GOOGLENET_TABLE.items()}
    maps = [("conv1", 64, 2), ("conv3", 192, 4)] + [
        (n, widths[n], r) for n, r in zip(GOOGLENET_TAPS, (8, 16, 32), strict=True)]
    return {"num_features": widths["inception5b"], "feature_info": features(*maps), "first_conv": "conv1/conv",
            "classifier": ("fc", "aux1", "aux2") if aux_logits else ("fc",),
            "aux_loss_weight": aux_loss_weight if aux_logits else 0.0}


def bn_inception_anatomy(**_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`BNInception` (SE or not: same maps)."""
    widths = dict(zip(BN_INCEPTION_TABLE, bn_inception_widths(), strict=True))
    maps = [("conv1", 64, 2), ("conv3", 192, 4)] + [
        (n, widths[n], r) for n, r in zip(BN_INCEPTION_TAPS, (8, 16, 32), strict=True)]
    return {"num_features": widths["inception5b"], "feature_info": features(*maps), "first_conv": "conv1/conv",
            "classifier": ("fc",)}


def _register(name: str, cls: type[nn.Module], arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are ``cls`` fields, ``info`` its metadata."""
    anatomy = googlenet_anatomy(**arch) if cls is GoogLeNet else bn_inception_anatomy(**arch)
    register_model(name, functools.partial(cls, **arch), **anatomy, family="googlenet", **info)


# Eval preprocessing: googlenet is the twin's default torchvision weights
# (GoogLeNet_Weights.IMAGENET1K_V1: resize 256, crop 224, bilinear = the 0.875 default); the
# paper-only models keep the 0.875 default. top1 protocols: torchvision's single 224 crop;
# BN paper Fig. 3 and SENet Table 2 single 224 crop (audit fidelity-2026-12 §7, §14).
_register(
    "googlenet_paper", GoogLeNet, {"paper": True},
    paper=GOOGLENET_PAPER, year=2015, table="Table 1, Fig. 3, Sec. 5",
    min_size=223, min_size_no_aux=15, top1=None, params=googlenet_param_count(paper=True, aux=True),
    notes="Table 1 as printed (biases, LRN, 5×5 branch, 5×5/3 aux pools, dropout 0.4). The "
          "aux FC takes the 4×4×128 map, so inputs must give a 14–16 grid at 4a (223–270 px "
          "for the aux heads; without them any size ≥ 15). Derived count with aux heads; "
          "without: googlenet_param_count(True, False) ≈ 6.99M (the paper's column sums to "
          "≈6.8M, it omits biases and rounds). Top-5 error 10.07% (single net, 1 crop, "
          "Table 3); 6.67% for the 7-model 144-crop ensemble.",
)
_register(
    "googlenet", GoogLeNet, {"paper": False},
    paper=GOOGLENET_PAPER, year=2015, table="Table 1 (torchvision variant)",
    min_size=15, top1=69.778, top1_protocol="1 crop 224", params=13_004_888, twin="torchvision:googlenet",
    # torchvision's weights were trained on [-1, 1] inputs: its builder sets transform_input=True,
    # which maps ImageNet-normalised input to that range inside the model; this model has no such
    # step, so converted weights take (x - 0.5) / 0.5 directly.
    mean=INCEPTION_MEAN, std=INCEPTION_STD,
    twin_kwargs={"aux_logits": True, "init_weights": True},
    notes="torchvision GoogLeNet: BN eps 1e-3, 3×3 conv in the '5×5' branch, adaptive aux "
          "pool; 6,624,904 params without the aux heads (aux_logits=False). top1 is "
          "torchvision's (the paper reports top-5 only).",
)
_register(
    "bn_inception", BNInception, {},
    paper=BN_PAPER, year=2015, table="Figure 5",
    min_size=7, top1=74.8, top1_protocol="1 crop 224", params=bn_inception_param_count(),
    notes="Derived count (conv weights + BN γ/β + classifier): bn_inception_param_count(). "
          "Stride-2 modules use 3×3/2 max pools with padding 1 so they align with the "
          "padded stride-2 convs at any size. top1: BN-x30, single crop (Sec. 4.2.2, Fig. 3).",
)
_register(
    "se_bn_inception", BNInception, {"se_reduction": 16},
    paper=SE_PAPER, year=2018, table="Table 2, Fig. 2",
    min_size=7, top1=75.77, top1_protocol="1 crop 224",
    params=bn_inception_param_count() + se_param_count(bn_inception_widths()),
    notes="bn_inception with an SE block (r = 16) on each of the 10 modules (3c/4e included). "
          "Derived count: bn_inception_param_count() + Σ C·C/16 + C/16 + C/16·C + C over the "
          "module widths C = 256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024 (+646,398). "
          "top1: Table 2, single 224 crop (24.23% / 7.14% error; re-implemented BN-Inception "
          "25.38% / 7.89%). The authors' GitHub release reports 23.62% / 7.04% for a re-trained "
          "model, not the paper's number.",
)
