"""AlexNet: torchvision's single-tower variant and the 2012 paper's two-GPU network.

Paper: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012 — Sec. 3.3 (local response normalisation), Sec. 3.4
(overlapping 3×3/2 max pooling), Sec. 3.5 and Fig. 2 (layer configuration), Sec. 4.2
(dropout 0.5 in the first two FC layers), Table 2 (1 CNN: 40.7 % top-1 error).

* ``alexnet`` is torchvision's architecture exactly ("One weird trick", Krizhevsky 2014:
  64-192-384-256-256 kernels, no LRN, no groups, adaptive 6×6 average pool); module names
  are torchvision's ``features.N`` / ``classifier.N`` so weights convert 1:1.
* ``alexnet_paper`` is the paper's network: 96-256-384-384-256 kernels of 11/5/3/3/3,
  conv1 stride 4, LRN (k=2, n=5, α=1e-4, β=0.75, α not divided by n) after the ReLUs of
  conv1 and conv2, overlapping max pooling after both LRNs and after conv5, conv2/conv4/
  conv5 split into the two GPU halves (``feature_group_count=2``: each kernel sees only the
  48/192/192 maps on its own GPU), conv3 and the FC layers fully connected.

224 vs 227: the paper says the input is 224×224×3 and conv1 (11×11, stride 4) yields
55×55×96, which needs a 227 input without padding ((227−11)/4+1 = 55). We keep the 224
input and pad conv1 by 2 on each side: ⌊(224+4−11)/4⌋+1 = 55 (the last 1 padded row and
column are never covered by a window, as in torchvision). The rest of the map sizes then
follow the paper: 55 → 27 → 27 → 13 → 13 → 13 → 6.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import features, register_model

PAPER = "ImageNet Classification with Deep Convolutional Neural Networks"


class AlexNet(nn.Module):
    """torchvision's AlexNet (64-192-384-256-256, adaptive 6×6 pool, dropout 0.5).

    Feature maps: the ReLU before each max pool (``features.1/4/11``, strides 4/8/16) and the
    last pool (``features.12``, stride 32), as torchvision module outputs. ``num_classes=0``
    returns FC7's 4096 ReLU outputs.
    """

    num_classes: int = 1000
    drop_rate: float = 0.5  # before FC6 and FC7 (torchvision's order)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = layers.make_conv(self.dtype, use_bias=True)
        x = x.astype(self.dtype)
        x = layers.tap(nn.relu(conv(64, (11, 11), strides=(4, 4), padding=layers.pad2d(2), name="features.0")(x)),
                       "features.1")
        x = layers.max_pool(x, 3, 2)
        x = layers.tap(nn.relu(conv(192, (5, 5), padding=layers.pad2d(2), name="features.3")(x)), "features.4")
        x = layers.max_pool(x, 3, 2)
        x = nn.relu(conv(384, (3, 3), padding=layers.pad2d(1), name="features.6")(x))
        x = nn.relu(conv(256, (3, 3), padding=layers.pad2d(1), name="features.8")(x))
        x = layers.tap(nn.relu(conv(256, (3, 3), padding=layers.pad2d(1), name="features.10")(x)), "features.11")
        x = layers.tap(layers.max_pool(x, 3, 2), "features.12")
        return layers.fc_stack_head(layers.adaptive_avg_pool(x, 6), self.num_classes, self.drop_rate, train,
                                    self.dtype, names=("classifier.1", "classifier.4", "classifier.6"),
                                    dropout_first=True)


class AlexNetPaper(nn.Module):
    """The 2012 paper's AlexNet (Fig. 2): LRN, overlapping pooling, two-group convs.

    Accepts inputs whose conv5 pooling gives 6×6 (223…254 square; 224 by default), since
    FC6 has the paper's fixed 6·6·256 inputs. Feature maps (Caffe blob names, ReLUs in
    place): the last map at each stride, ``norm1`` (4), ``norm2`` (8), ``conv5`` (16) and
    ``pool5`` (32). ``num_classes=0`` returns FC7's 4096 ReLU outputs.
    """

    num_classes: int = 1000
    drop_rate: float = 0.5  # after FC6 and FC7 (Sec. 4.2)
    groups: int = 2  # the two GPU halves of conv2, conv4, conv5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = layers.make_conv(self.dtype, use_bias=True)
        lrn = functools.partial(layers.LocalResponseNorm, size=5, alpha=1e-4, beta=0.75, k=2.0,
                                alpha_over_size=False)
        g = self.groups
        x = x.astype(self.dtype)
        x = nn.relu(conv(96, (11, 11), strides=(4, 4), padding=layers.pad2d(2), name="conv1")(x))
        x = layers.max_pool(layers.tap(lrn(name="norm1")(x), "norm1"), 3, 2)
        x = nn.relu(conv(256, (5, 5), padding=layers.pad2d(2), feature_group_count=g, name="conv2")(x))
        x = layers.max_pool(layers.tap(lrn(name="norm2")(x), "norm2"), 3, 2)
        x = nn.relu(conv(384, (3, 3), padding=layers.pad2d(1), name="conv3")(x))
        x = nn.relu(conv(384, (3, 3), padding=layers.pad2d(1), feature_group_count=g, name="conv4")(x))
        x = nn.relu(conv(256, (3, 3), padding=layers.pad2d(1), feature_group_count=g, name="conv5")(x))
        x = layers.tap(layers.max_pool(layers.tap(x, "conv5"), 3, 2), "pool5")
        return layers.fc_stack_head(x, self.num_classes, self.drop_rate, train, self.dtype, in_hw=(6, 6))


# Eval preprocessing: the twin's default weights (AlexNet_Weights.IMAGENET1K_V1: resize 256,
# crop 224, bilinear; checked by tests/test_parity.py::test_metadata_matches_twin), which is also the 0.875 default.
register_model(
    "alexnet", AlexNet, family="alexnet", paper=PAPER, year=2012,
    table="torchvision variant (One weird trick, 2014); paper Fig. 2",
    min_size=63, top1=None, params=61_100_840, twin="torchvision:alexnet",
    crop_pct=0.875, interpolation="bilinear",
    num_features=4096, classifier=("classifier.6",), first_conv="features.0",
    feature_info=features(("features.1", 64, 4), ("features.4", 192, 8), ("features.11", 256, 16),
                          ("features.12", 256, 32)),
    notes="torchvision's single-GPU AlexNet (64-192-384-256-256, no LRN); not the 2012 paper's.",
)

# conv1 11·11·3·96+96 = 34,944; conv2 5·5·48·256+256 = 307,456; conv3 3·3·256·384+384 =
# 885,120; conv4 3·3·192·384+384 = 663,936; conv5 3·3·192·256+256 = 442,624; fc6
# 9216·4096+4096 = 37,752,832; fc7 4096·4096+4096 = 16,781,312; fc8 4096·1000+1000 =
# 4,097,000 → 60,965,224 ("60 million parameters", Sec. 4). Re-derived in tests/test_classic.py.
ALEXNET_PAPER_PARAMS = 60_965_224

register_model(
    "alexnet_paper", AlexNetPaper, family="alexnet", paper=PAPER, year=2012,
    table="Sec. 3.5, Fig. 2", min_size=223,
    # Table 2: 1 CNN, top-1 error 40.7 %, measured on 10 patches (4 corners + centre of the
    # 256×256 image, and their flips) averaged (Sec. 4.1; audit fidelity-2026-12 §2).
    top1=59.3, top1_protocol="10 crop 224", crop_pct=224 / 256,  # the paper's 256 → 224 patches
    params=ALEXNET_PAPER_PARAMS,
    num_features=4096, classifier=("fc8",), first_conv="conv1",
    feature_info=features(("norm1", 96, 4), ("norm2", 256, 8), ("conv5", 256, 16), ("pool5", 256, 32)),
    notes="224 input with conv1 padding 2 (→ 55×55×96); conv2/4/5 grouped ×2 as the two GPUs; "
          "LRN with the paper's α (not α/n).",
)
