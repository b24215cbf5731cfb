"""ZFNet.

Paper: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
— Fig. 3 (architecture), Sec. 3 (training details), Sec. 4.1 / Table 2 (ImageNet 2012
results: "1 convnet as per Fig. 3", 38.4 % top-1 validation error).

Fig. 3: 224×224×3 → conv1 96@7×7 stride 2 → 110×110 → 3×3/2 max pool → 55×55 →
contrast normalisation → conv2 256@5×5 stride 2 → 26×26 → 3×3/2 max pool → 13×13 →
contrast normalisation → conv3 384@3×3 → conv4 384@3×3 → conv5 256@3×3 (13×13) →
3×3/2 max pool → 6×6×256 → FC 4096 → FC 4096 → C-way softmax. Unlike AlexNet, all
layers are densely connected (no two-GPU split, Sec. 3).

Padding (the paper gives only the map sizes; this is the padding that reproduces them):
conv1 pads 1 (⌊(224+2−7)/2⌋+1 = 110), conv2 pads 0 (⌊(55−5)/2⌋+1 = 26), conv3–5 pad 1;
the three pools round up (``ceil_mode``, as in Caffe): 110 → 55, 26 → 13, 13 → 6.
"Contrast normalisation" is implemented as AlexNet's local response normalisation
(k=2, n=5, α=1e-4, β=0.75), applied after each of the first two pools as in Fig. 3.
Dropout 0.5 on FC6 and FC7 (Sec. 3).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxnets import layers
from flaxnets.registry import features, register_model

PAPER = "Visualizing and Understanding Convolutional Networks"


class ZFNet(nn.Module):
    """ZFNet (Zeiler & Fergus 2014, Fig. 3); map sizes 110, 55, 26, 13, 6.

    FC6 has the paper's fixed 6·6·256 inputs, so the input must give a 6×6 conv5 pool
    (square 207…238; 224 by default). Feature maps (Caffe-style names, ReLUs in place): the
    last map at each stride, ``conv1`` (2), ``norm1`` (4), ``conv2`` (8), ``conv5`` (16) and
    ``pool5`` (32). ``num_classes=0`` returns FC7's 4096 ReLU outputs.
    """

    num_classes: int = 1000
    drop_rate: float = 0.5  # after FC6 and FC7 (Sec. 3)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = layers.make_conv(self.dtype, use_bias=True)
        lrn = functools.partial(layers.LocalResponseNorm, size=5, alpha=1e-4, beta=0.75, k=2.0)
        x = x.astype(self.dtype)
        x = nn.relu(conv(96, (7, 7), strides=(2, 2), padding=layers.pad2d(1), name="conv1")(x))
        x = layers.tap(lrn(name="norm1")(layers.max_pool(layers.tap(x, "conv1"), 3, 2, ceil_mode=True)), "norm1")
        x = nn.relu(conv(256, (5, 5), strides=(2, 2), padding="VALID", name="conv2")(x))
        x = lrn(name="norm2")(layers.max_pool(layers.tap(x, "conv2"), 3, 2, ceil_mode=True))
        x = nn.relu(conv(384, (3, 3), padding=layers.pad2d(1), name="conv3")(x))
        x = nn.relu(conv(384, (3, 3), padding=layers.pad2d(1), name="conv4")(x))
        x = nn.relu(conv(256, (3, 3), padding=layers.pad2d(1), name="conv5")(x))
        x = layers.tap(layers.max_pool(layers.tap(x, "conv5"), 3, 2, ceil_mode=True), "pool5")
        return layers.fc_stack_head(x, self.num_classes, self.drop_rate, train, self.dtype, in_hw=(6, 6))


# conv1 7·7·3·96+96 = 14,208; conv2 5·5·96·256+256 = 614,656; conv3 3·3·256·384+384 =
# 885,120; conv4 3·3·384·384+384 = 1,327,488; conv5 3·3·384·256+256 = 884,992; fc6
# 9216·4096+4096 = 37,752,832; fc7 16,781,312; fc8 4,097,000 → 62,357,608
# (re-derived in tests/test_classic.py).
ZFNET_PARAMS = 62_357_608

register_model(
    "zfnet", ZFNet, family="zfnet", paper=PAPER, year=2014, table="Fig. 3",
    min_size=207,
    # Table 2: 1 convnet as per Fig. 3, 38.4 % top-1 val error (audit fidelity-2026-12 §3).
    # Sec. 3.1: 10 sub-crops of 224 (corners + centre, with/without flips) of the central
    # 256×256 region, Krizhevsky's 10-patch protocol that Table 2 compares with.
    top1=61.6, top1_protocol="10 crop 224", crop_pct=224 / 256,
    params=ZFNET_PARAMS,
    num_features=4096, classifier=("fc8",), first_conv="conv1",
    feature_info=features(("conv1", 96, 2), ("norm1", 96, 4), ("conv2", 256, 8), ("conv5", 256, 16),
                          ("pool5", 256, 32)),
    notes="Padding derived from Fig. 3's map sizes (conv1 pad 1, conv2 pad 0, ceil-mode pools); "
          "contrast normalisation = AlexNet LRN.",
)
