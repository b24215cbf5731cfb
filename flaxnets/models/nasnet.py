"""NASNet-A (ImageNet): the large 6@4032 and the mobile 4@1056 networks.

Paper: Zoph, Vasudevan, Shlens & Le, "Learning Transferable Architectures for Scalable
Image Recognition", CVPR 2018 — Fig. 2 (ImageNet architecture: stem, N normal cells
between reduction cells, filters ×2 at each reduction), Fig. 4 (the NASNet-A normal and
reduction cells), Appendix A (cell details: every separable convolution is applied twice,
each as ReLU → depthwise → pointwise → BatchNorm; 1×1 "adjust" convolutions and the
factorized reduction — two stride-2 1×1 paths, the second shifted by one pixel — when the
previous-previous input has twice the spatial size), Table 2 (NASNet-A (6 @ 4032): 88.9M
params, 82.7 % top-1 at 331×331) and Table 3 (NASNet-A (4 @ 1056): 5.3M, 74.0 % at 224×224).

The implementation follows timm's ``nasnetalarge`` (ported from the TF-slim reference)
in every numerical detail, so its weights convert 1:1 (module names ``conv0.conv``,
``cell_stem_0``, ``cell_0.comb_iter_0_left.separable_1.depthwise_conv2d``, …,
``last_linear``):

  * the stem is a 3×3 stride-2 convolution without padding plus BN (no ReLU; every cell
    starts its branches with a ReLU), followed by two reduction "stem cells";
  * stride-2 separable convolutions and pools use TensorFlow "SAME" padding (total
    padding split with the extra pixel at the bottom/right, the zeros counted by the
    average pools); stride-1 ones pad symmetrically and their 3×3 average pools do not
    count the padding;
  * the first normal cell after a reduction cell takes, as its previous-previous input,
    either the reduction cell's own previous input (TF-slim ``skip_reduction_layer_input=1``,
    ``large_imagenet_config``: NASNet-A Large) or the reduction cell's current input, the
    output of the stage's last normal cell (``skip_reduction_layer_input=0``,
    ``mobile_imagenet_config``: NASNet-A Mobile); either way it has twice the resolution
    and is reduced with the factorized path (same parameter count, different network);
  * BatchNorm eps 1e-3, PyTorch momentum 0.1.

There is no twin for NASNet-A mobile (timm 1.0.31 only has ``nasnetalarge``): it is the
same network with N = 4 cells per stage, 1056 penultimate filters and a 32-filter stem;
its parameter count is derived in ``tests/test_nasnet.py`` and agrees with the paper's
5.3M. Not implemented: the paper's auxiliary head and ScheduledDropPath (training-only
regularisers; the twin has neither).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import INCEPTION_MEAN, INCEPTION_STD, features, register_model

ModuleDef = Any
Array = jnp.ndarray

PAPER = "Learning Transferable Architectures for Scalable Image Recognition"


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one spatial dim: (before, after), extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def _pads(x: Array, kernel: int, stride: int) -> list[tuple[int, int]]:
    """Padding of the twin's ``padding='same'``: static symmetric at stride 1, TF at 2."""
    if stride == 1:
        return [((kernel - 1) // 2,) * 2] * 2
    return [tf_same_pads(x.shape[1], kernel, stride), tf_same_pads(x.shape[2], kernel, stride)]


def max_pool_same(x: Array, kernel: int = 3, stride: int = 2) -> Array:
    """3×3 max pool with "SAME" padding (-inf padding)."""
    return layers.max_pool_2d(x, kernel, stride, _pads(x, kernel, stride))


def avg_pool_same(x: Array, kernel: int = 3, stride: int = 1) -> Array:
    """3×3 average pool as in the twin: at stride 1 symmetric padding that is not counted;
    at stride 2 TF "SAME" zero padding that *is* counted (it is applied before the pool)."""
    if stride == 1:
        return layers.avg_pool(x, kernel, stride, padding=(kernel - 1) // 2, count_include_pad=False)
    x = jnp.pad(x, [(0, 0), *_pads(x, kernel, stride), (0, 0)])
    return layers.avg_pool(x, kernel, stride)


class SeparableConv(nn.Module):
    """Depthwise k×k (``depthwise_conv2d``) → pointwise 1×1 (``pointwise_conv2d``)."""

    features: int
    kernel_size: int
    strides: int
    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, c = self.kernel_size, x.shape[-1]
        x = self.conv(c, (k, k), strides=(self.strides,) * 2, padding=_pads(x, k, self.strides),
                      feature_group_count=c, name="depthwise_conv2d")(x)
        return self.conv(self.features, (1, 1), padding="VALID", name="pointwise_conv2d")(x)


class BranchSeparables(nn.Module):
    """The paper's "sep k×k" op: (ReLU → separable conv → BN) twice, stride on the first.

    In the first stem cell the first separable conv already maps to ``features``
    (``stem_cell=True``); elsewhere it keeps the input width.
    """

    features: int
    kernel_size: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    stem_cell: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        mid = self.features if self.stem_cell else x.shape[-1]
        x = SeparableConv(mid, self.kernel_size, self.strides, self.conv, name="separable_1")(nn.relu(x))
        x = self.norm(name="bn_sep_1")(x)
        x = SeparableConv(self.features, self.kernel_size, 1, self.conv, name="separable_2")(nn.relu(x))
        return self.norm(name="bn_sep_2")(x)


class ActConvBn(nn.Module):
    """ReLU → 1×1 conv → BN: the cells' input "adjust" layer (``conv_1x1``).

    ``tap``: feature-map name of the ReLU's output (the twin's ``<cell>.conv_1x1.act``).
    """

    features: int
    conv: ModuleDef
    norm: ModuleDef
    tap: str | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = nn.relu(x)
        if self.tap is not None:
            x = layers.tap(x, self.tap)
        x = self.conv(self.features, (1, 1), padding="VALID", name="conv")(x)
        return self.norm(name="bn")(x)


def factorized_reduction(x: Array, features: int, conv: ModuleDef, norm: ModuleDef) -> Array:
    """ReLU, then two stride-2 1×1 paths — the second shifted by one pixel (crop the first
    row/column, zero-pad the last) — concatenated and batch-normalised (Appendix A).

    Called inside a cell's ``__call__`` so its modules (``path_1.conv``, ``path_2.conv``,
    ``final_path_bn``) sit directly in the cell, as in the twin.
    """
    x = nn.relu(x)
    half = features // 2
    p1 = conv(half, (1, 1), padding="VALID", name="path_1.conv")(x[:, ::2, ::2])
    shifted = jnp.pad(x[:, 1:, 1:], [(0, 0), (0, 1), (0, 1), (0, 0)])
    p2 = conv(half, (1, 1), padding="VALID", name="path_2.conv")(shifted[:, ::2, ::2])
    return norm(name="final_path_bn")(jnp.concatenate([p1, p2], axis=-1))


class ReductionCell(nn.Module):
    """NASNet-A reduction cell (Fig. 4 right); also the two stem cells.

    ``kind``: ``"reduction"`` (both inputs adjusted by ReLU-1×1-BN), ``"stem0"`` (one
    input: the stem conv output, adjusted for the left branches and used raw, with
    ``stem_cell`` separables, on the right) or ``"stem1"`` (the previous-previous input
    is the stem conv output at twice the resolution: factorized reduction).
    Output: concat of combinations 1–4 (4 × ``features`` channels). ``tap``: feature-map
    name of the ReLU of ``conv_1x1`` (the activated current input, see :class:`ActConvBn`).
    """

    features: int
    conv: ModuleDef
    norm: ModuleDef
    kind: str = "reduction"
    tap: str | None = None

    @nn.compact
    def __call__(self, x: Array, x_prev: Array | None = None) -> Array:
        f = self.features
        sep = functools.partial(BranchSeparables, conv=self.conv, norm=self.norm)
        if self.kind == "stem0":
            right = ActConvBn(f, self.conv, self.norm, name="conv_1x1")(x)
            left, right_sep = x, functools.partial(sep, stem_cell=True)
        elif self.kind == "stem1":
            right = ActConvBn(f, self.conv, self.norm, self.tap, name="conv_1x1")(x)
            left, right_sep = factorized_reduction(x_prev, f, self.conv, self.norm), sep
        else:
            left = ActConvBn(f, self.conv, self.norm, name="conv_prev_1x1")(x_prev)
            right = ActConvBn(f, self.conv, self.norm, self.tap, name="conv_1x1")(x)
            right_sep = sep
        # Names follow the twin: "left"/"right" are its branch labels (the op on the
        # adjusted current input ``right`` is listed first in each combination).
        c0 = sep(f, 5, 2, name="comb_iter_0_left")(right) + right_sep(f, 7, 2, name="comb_iter_0_right")(left)
        c1 = max_pool_same(right) + right_sep(f, 7, 2, name="comb_iter_1_right")(left)
        c2 = avg_pool_same(right, stride=2) + right_sep(f, 5, 2, name="comb_iter_2_right")(left)
        c3 = avg_pool_same(c0) + c1
        c4 = sep(f, 3, 1, name="comb_iter_4_left")(c0) + max_pool_same(right)
        return jnp.concatenate([c1, c2, c3, c4], axis=-1)


class NormalCell(nn.Module):
    """NASNet-A normal cell (Fig. 4 left). ``first``: the previous-previous input has twice
    the resolution (cell after a reduction) and is reduced by the factorized path.
    Output: concat of the adjusted previous input and the 5 combinations (6 × widths)."""

    features: int
    conv: ModuleDef
    norm: ModuleDef
    first: bool = False

    @nn.compact
    def __call__(self, x: Array, x_prev: Array) -> Array:
        f = self.features
        sep = functools.partial(BranchSeparables, conv=self.conv, norm=self.norm)
        if self.first:
            h = factorized_reduction(x_prev, f, self.conv, self.norm)
        else:
            h = ActConvBn(f, self.conv, self.norm, name="conv_prev_1x1")(x_prev)
        cur = ActConvBn(f, self.conv, self.norm, name="conv_1x1")(x)
        c0 = sep(f, 5, 1, name="comb_iter_0_left")(cur) + sep(f, 3, 1, name="comb_iter_0_right")(h)
        c1 = sep(f, 5, 1, name="comb_iter_1_left")(h) + sep(f, 3, 1, name="comb_iter_1_right")(h)
        c2 = avg_pool_same(cur) + h
        c3 = avg_pool_same(h) + avg_pool_same(h)
        c4 = sep(f, 3, 1, name="comb_iter_4_left")(cur) + cur
        return jnp.concatenate([h, c0, c1, c2, c3, c4], axis=-1)


class NASNetA(nn.Module):
    """NASNet-A for ImageNet (Fig. 2): stem conv, 2 stem reduction cells, then 3 stages of
    ``num_cells`` normal cells separated by 2 reduction cells; ReLU, global average pool,
    dropout, linear classifier.

    Attributes:
      num_cells: normal cells per stage (N; 6 for the large, 4 for the mobile network).
      penultimate_filters: channels before the classifier (4032 / 1056); the first
        stage's cells use ``penultimate_filters // 24`` filters per branch.
      stem_filters: filters of the 3×3 stem conv (96 / 32).
      drop_rate: dropout before the classifier (0.5 in the reference training setup;
        only active with ``train=True``).
      act: final activation before pooling.
      skip_reduction_layer_input: TF-slim's flag of that name (``research/slim/nets/nasnet/
        nasnet.py``, ``_build_nasnet_base``): True (large config: 1) feeds the first normal
        cell after a reduction the reduction cell's previous-previous input; False (mobile
        config: 0) feeds it the reduction cell's current input.

    Feature maps (``features_only``), timm's ``feature_info`` points: the stem conv (+BN,
    ``conv0``), the ReLU-activated inputs of ``cell_stem_1`` and of the two reduction cells
    (``<cell>.conv_1x1.act``: the outputs of ``cell_stem_0`` and of each stage's last normal
    cell) and the final activation ``act``: strides 2, 4, 8, 16, 32.
    """

    num_cells: int = 6
    penultimate_filters: int = 4032
    stem_filters: int = 96
    drop_rate: float = 0.5
    num_classes: int = 1000
    act: Callable = nn.relu
    skip_reduction_layer_input: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        conv = layers.make_conv(self.dtype)
        norm = layers.batch_norm(train, self.dtype, epsilon=1e-3)
        c = self.penultimate_filters // 24
        x = x.astype(self.dtype)
        x0 = conv(self.stem_filters, (3, 3), strides=(2, 2), padding="VALID", name="conv0.conv")(x)
        x0 = layers.tap(norm(name="conv0.bn")(x0), "conv0")
        s0 = ReductionCell(c // 4, conv, norm, kind="stem0", name="cell_stem_0")(x0)
        s1 = ReductionCell(c // 2, conv, norm, kind="stem1", tap="cell_stem_1.conv_1x1.act",
                           name="cell_stem_1")(s0, x0)
        prev, cur = s0, s1
        for stage in range(3):
            f = c * 2**stage
            if stage > 0:  # the reduction cell, on (cur, prev)
                reduced = ReductionCell(f, conv, norm, tap=f"reduction_cell_{stage - 1}.conv_1x1.act",
                                        name=f"reduction_cell_{stage - 1}")(cur, prev)
                # TF-slim: with skip_reduction_layer_input=1 the next cell's prev_layer was
                # taken before the reduction output was appended (the reduction cell's own
                # prev); with 0, after it (the reduction cell's input ``cur``).
                if not self.skip_reduction_layer_input:
                    prev = cur
                cur = reduced
            for j in range(self.num_cells):
                idx = stage * self.num_cells + j
                out = NormalCell(f, conv, norm, first=j == 0, name=f"cell_{idx}")(cur, prev)
                prev, cur = cur, out
        x = layers.tap(self.act(cur), "act")
        return layers.classifier_head(x, self.num_classes, self.drop_rate, train, self.dtype, name="last_linear")


def nasnet_anatomy(penultimate_filters: int = 4032, stem_filters: int = 96, **_: Any) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`NASNetA` (timm's ``feature_info`` points)."""
    c = penultimate_filters // 24
    maps = [("conv0", stem_filters, 2), ("cell_stem_1.conv_1x1.act", 4 * (c // 4), 4),
            ("reduction_cell_0.conv_1x1.act", 6 * c, 8), ("reduction_cell_1.conv_1x1.act", 12 * c, 16),
            ("act", penultimate_filters, 32)]
    return {"num_features": penultimate_filters, "feature_info": features(*maps), "classifier": ("last_linear",),
            "first_conv": "conv0.conv"}


def _register(name: str, arch: dict[str, Any], **info: Any) -> None:
    """One registry row: ``arch`` are :class:`NASNetA` fields, ``info`` its metadata."""
    register_model(name, functools.partial(NASNetA, **arch), **nasnet_anatomy(**arch), family="nasnet",
                   paper=PAPER, year=2018, min_size=32, mean=INCEPTION_MEAN, std=INCEPTION_STD, **info)


# top1: single crop, slim nasnet/README (fidelity audit 2026-12, §23: verified) = Tables 2/3.
# nasnetalarge's eval preprocessing is timm's pretrained_cfg of nasnetalarge.tf_in1k (crop
# 0.911, bicubic); nasnetamobile (no twin) keeps TF-slim's Inception eval (central 0.875).
_register("nasnetalarge", dict(num_cells=6, penultimate_filters=4032, stem_filters=96),
          table="Fig. 2, Fig. 4, Appendix A, Table 2", input_size=(331, 331, 3), crop_pct=0.911,
          interpolation="bicubic", top1=82.7, top1_protocol="1 crop 331", params=88_753_150,
          twin="timm:nasnetalarge",
          # A small odd non-square size keeps the (slow) second parity compile cheap.
          twin_sizes=((67, 97),),
          notes="NASNet-A (6 @ 4032). timm/TF-slim port: TF 'SAME' padding at stride 2. The paper "
                "counts 88.9M (with its auxiliary head, not part of the twin).")
# Wiring: TF-slim nasnet.py large_imagenet_config skip_reduction_layer_input=1,
# mobile_imagenet_config skip_reduction_layer_input=0 (pinned in tests/test_nasnet.py).
_register("nasnetamobile", dict(num_cells=4, penultimate_filters=1056, stem_filters=32,
                                skip_reduction_layer_input=False),
          table="Fig. 2, Fig. 4, Appendix A, Table 3", input_size=(224, 224, 3), crop_pct=0.875,
          top1=74.0, top1_protocol="1 crop 224", params=5_289_978,
          notes="NASNet-A (4 @ 1056), no twin in timm; count derived in tests/test_nasnet.py "
                "(paper: 5.3M). TF-slim mobile wiring (skip_reduction_layer_input=0).")
