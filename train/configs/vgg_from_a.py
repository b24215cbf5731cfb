"""VGG configurations B–E initialised from a trained net A (Simonyan & Zisserman 2015, Sec. 3.1).

The paper's procedure: train configuration A (``vgg11``) from random weights; then train the
deeper nets with their first four conv layers and last three FC layers copied from A and the
layers in between random, without lowering the learning rate of the copied layers. The map
from A's module names to the deeper net's is ``VGG_FROM_A`` next to the VGG recipe
(``train/configs/recipes/classic.py``); the rest of the recipe is the ``vgg*`` one.

    python -m train.main --arch=vgg11 --workdir=runs/vgg_a
    python -m train.main --config=train/configs/vgg_from_a.py --config.init_from=runs/vgg_a \\
        --workdir=runs/vgg_d

``--config=train/configs/vgg_from_a.py:vgg19`` picks another target (vgg13, vgg16_c, vgg16,
vgg19; default vgg16 = D). Multi-scale training (Sec. 3.1, "Training image size"): the
S = 384 net starts from the S = 256 net of the same configuration (every tensor fits: plain
``--config.init_from=RUN`` without a map), and the S ∈ [256, 512] net from the S = 384 one.
"""

import ml_collections

from train.configs import default
from train.configs.recipes.classic import VGG_FROM_A

TARGETS = ("vgg13", "vgg16_c", "vgg16", "vgg19")  # Table 1 configurations B, C, D, E


def get_config(arch: str = "vgg16") -> ml_collections.ConfigDict:
    if arch not in TARGETS:
        raise ValueError(f"vgg_from_a: target {arch!r} is not one of {', '.join(TARGETS)}")
    c = default.get_config()
    c.arch = arch
    c.init_map = VGG_FROM_A
    c.init_arch = "vgg11"  # a torchvision-keyed file of net A (a run's workdir says its own arch)
    return c
