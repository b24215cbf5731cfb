"""Network in Network.

Paper: Lin, Chen & Yan, "Network In Network", ICLR 2014 — Sec. 3.1 (mlpconv layer: a conv
followed by 1×1 "cascaded cross channel parametric pooling" convs, all ReLU), Sec. 3.2
(global average pooling over one map per class, no FC layers), Sec. 4.1–4.2 (three
mlpconv layers on CIFAR-10, max pooling and dropout between them; Table 1: 10.41 % test
error without data augmentation).

Layer details follow the authors' released Caffe models:

* ``nin_cifar10`` (32×32×3): [conv 192@5×5 pad 2, 1×1 160, 1×1 96] → 3×3/2 max pool →
  dropout 0.5 → [conv 192@5×5 pad 2, 1×1 192, 1×1 192] → 3×3/2 avg pool → dropout 0.5 →
  [conv 192@3×3 pad 1, 1×1 192, 1×1 classes] → global average pool. Caffe pools round up
  (``ceil_mode``): 32 → 16 → 8.
* ``nin`` (ImageNet, 224×224×3): [conv 96@11×11/4, 1×1 96, 1×1 96] → 3×3/2 max pool →
  [conv 256@5×5 pad 2, 1×1 256, 1×1 256] → max pool → [conv 384@3×3 pad 1, 1×1 384, 1×1
  384] → max pool → dropout 0.5 → [conv 1024@3×3 pad 1, 1×1 1024, 1×1 classes] → global
  average pool. Map sizes 54 → 27 → 13 → 6 (ceil-mode pools).

The last 1×1 conv gives the class maps whose spatial means are the logits (Sec. 3.2:
"fed directly into the softmax layer"). The released prototxts also put a ReLU on those
maps; ``relu_last=True`` reproduces that (off by default: it clips logits at 0).
Module names are the Caffe layer names (``conv1``, ``cccp1`` …).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import CIFAR_MEAN, CIFAR_STD, features, register_model

PAPER = "Network In Network"

# One row per mlpconv block: (conv channels, kernel, stride, padding, 1×1 channels
# (None = num_classes), pooling after the block: ("max"|"avg"|None), dropout after it).
CIFAR10_BLOCKS = (
    (192, 5, 1, 2, (160, 96), "max", True),
    (192, 5, 1, 2, (192, 192), "avg", True),
    (192, 3, 1, 1, (192, None), None, False),
)
IMAGENET_BLOCKS = (
    (96, 11, 4, 0, (96, 96), "max", False),
    (256, 5, 1, 2, (256, 256), "max", False),
    (384, 3, 1, 1, (384, 384), "max", True),
    (1024, 3, 1, 1, (1024, None), None, False),
)


class NiN(nn.Module):
    """Network in Network: mlpconv blocks, pooling/dropout between them, GAP logits.

    The last 1×1 conv (``cccp6`` / ``cccp8-1024``) makes the class maps, so it is the
    classifier: ``num_classes=0`` drops it and returns the global average of the map it
    reads (192 / 1024 channels). Without ``relu_last`` the logits are that pooled vector
    through the classifier conv's kernel (GAP and a 1×1 conv commute), as with timm's
    pre-logits. Feature maps (Caffe blob names, ReLUs in place): each mlpconv block's output
    before its pool, the last block's up to the classifier conv.
    """

    blocks: Sequence[tuple[Any, ...]]
    num_classes: int = 1000
    drop_rate: float = 0.5  # after the pools of the marked blocks (Sec. 4.1)
    relu_last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = layers.make_conv(self.dtype, use_bias=True)
        x = x.astype(self.dtype)
        cccp = 0
        for b, (c, k, s, p, ones, pool, drop) in enumerate(self.blocks):
            suffix = "-1024" if b == 3 else ""  # the ImageNet model's 4th-block names
            x = nn.relu(conv(c, (k, k), strides=(s, s), padding=layers.pad2d(p),
                             name=f"conv{b + 1}{suffix}")(x))
            for j, c1 in enumerate(ones):
                cccp += 1
                name = f"cccp{cccp}{suffix}"
                if c1 is None:  # the classifier: class maps, averaged into logits
                    if self.num_classes == 0:
                        return layers.global_avg_pool(x).astype(jnp.float32)
                    x = conv(self.num_classes, (1, 1), padding="VALID", name=name)(x)
                    x = nn.relu(x) if self.relu_last else x
                else:
                    x = nn.relu(conv(c1, (1, 1), padding="VALID", name=name)(x))
                    if j + 1 == len(ones) or ones[j + 1] is None:  # the block's output map
                        x = layers.tap(x, name)
            if pool == "max":
                x = layers.max_pool(x, 3, 2, ceil_mode=True)
            elif pool == "avg":
                x = layers.avg_pool(x, 3, 2, ceil_mode=True)
            if drop:
                x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        return layers.global_avg_pool(x).astype(jnp.float32)


def nin_anatomy(blocks: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """``ModelInfo`` anatomy fields of a :class:`NiN` with these blocks.

    Maps: the last 1×1 conv of each block before the classifier conv; reductions from the
    first conv's stride, ×2 per pool.
    """
    maps, cccp, reduction, classifier = [], 0, blocks[0][2], ""
    for b, (_, _, _, _, ones, pool, _) in enumerate(blocks):
        suffix = "-1024" if b == 3 else ""
        for c1 in ones:
            cccp += 1
            if c1 is None:
                classifier = f"cccp{cccp}{suffix}"
            else:
                width, name = c1, f"cccp{cccp}{suffix}"
        maps.append((name, width, reduction))
        reduction *= 2 if pool else 1
    return {"num_features": maps[-1][1], "feature_info": features(*maps), "first_conv": "conv1",
            "classifier": (classifier,), "dense_eval": {}}


def _count(blocks: Sequence[tuple[Any, ...]], in_ch: int, classes: int) -> int:
    """Parameters of the mlpconv stack: k²·c_in·c + c per conv, c_in·c + c per 1×1."""
    total, c_in = 0, in_ch
    for c, k, _, _, ones, _, _ in blocks:
        total += k * k * c_in * c + c
        c_in = c
        for c1 in ones:
            c1 = classes if c1 is None else c1
            total += c_in * c1 + c1
            c_in = c1
    return total


# CIFAR-10: 14,592 + 30,880 + 15,456 + 460,992 + 37,056 + 37,056 + 331,968 + 37,056 + 1,930
# = 966,986. ImageNet: 34,944 + 9,312·2 + 614,656 + 65,792·2 + 885,120 + 147,840·2 +
# 3,539,968 + 1,049,600 + 1,025,000 = 7,595,176 (written out in tests/test_classic.py).
# dense_eval={}: fully convolutional as built (GAP over any map size).
register_model(
    "nin_cifar10", functools.partial(NiN, blocks=CIFAR10_BLOCKS), family="nin", paper=PAPER,
    year=2014, table="Sec. 4.2 (authors' cifar10 model)", input_size=(32, 32, 3), min_size=6,
    mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10,
    # Table 1: NIN + Dropout, 10.41 % test error on the whole 32×32 CIFAR-10 test images.
    top1=89.59, top1_protocol="full image 32", crop_pct=1.0,
    params=_count(CIFAR10_BLOCKS, 3, 10), **nin_anatomy(CIFAR10_BLOCKS),
    notes="The paper preprocesses with GCN + ZCA whitening; here the usual per-channel "
          "normalisation. No ReLU before GAP unless relu_last=True.",
)
register_model(
    "nin", functools.partial(NiN, blocks=IMAGENET_BLOCKS), family="nin", paper=PAPER, year=2014,
    table="Sec. 3 (authors' ImageNet model)", min_size=55, top1=None,
    params=_count(IMAGENET_BLOCKS, 3, 1000), **nin_anatomy(IMAGENET_BLOCKS),
    notes="ImageNet architecture of the authors' released model; the paper reports no ImageNet "
          "result.",
)
