"""Training configurations: ``default.py`` (every field) and per-family paper recipes.

A recipe is written for one dataset: ImageNet for the ImageNet networks, CIFAR-10 or MNIST
for the networks whose input is that small (:func:`recipe_home`). On any other dataset
:func:`adapt_recipe` keeps what defines the recipe (optimiser, schedule shape,
regularisation, loss) and re-scales what belongs to the data:

* batch size: at most ``num_train // MIN_STEPS_PER_EPOCH`` rounded down to a power of two, so
  an epoch has at least that many steps (a batch of 1,024 on the 1,437 digits would be one
  step per epoch); smaller recipe batches (LeNet-5's 1) stay as they are. The learning rate
  follows through the recipe's own rule (``lr_batch_denom``);
* length: the dataset's default budget; epoch boundaries of ``step`` schedules become the same
  fractions of the run, ``exponential`` decay intervals and the EMA horizon (in epochs) shrink
  in the same proportion, so the run covers the recipe's whole schedule; a recipe's BatchNorm
  momentum keeps its averaging horizon in epochs; a warm-up keeps its number of updates, up to
  a tenth of the run;
* model fields the recipe sets off its home data only (``adapted_model_overrides``:
  EfficientNet's zero-γ; the recipe gives the measurement);
* the classifier's rate, for an SGD recipe on fewer classes than its home dataset: ×C/C_home
  (``head_lr_mult``; ×10/1000 from ImageNet to the digits), the per-class step the recipe had
  (the derivation is at the rule in :func:`adapt_recipe`);
* image size: a recipe's resolution (299 for Inception) is dropped on small-image datasets,
  where the trainer picks the smallest size the model allows, at least the data's own
  (``train.loop.resolve_image_size``: the digits' native 8×8 for the CIFAR networks), or the
  recipe's ``small_data_image_size`` where that smallest size cripples the model (SqueezeNet);
  auxiliary heads that need the paper's input size (``ModelInfo.min_size_no_aux``: Inception-v3,
  GoogLeNet as printed) are trained off there, so the rest of the network sets the size;
* compute: at most :data:`SMALL_DATA_TFLOP` of training (:func:`budget_epochs`): a network
  whose default budget costs more trains fewer epochs, never fewer than
  :data:`MIN_BUDGET_EPOCHS` (15 for ImageNet recipes, 8 for CIFAR ones, 3 for MNIST), and the start
  line says so;
* augmentation (:func:`adapt_augmentation`): on small images a photo recipe's scale
  augmentation (random-resized crops, scale jitter) becomes a pad-and-crop shift of 1/8 of the
  side; CIFAR's pad-and-crop shift (4 px of 32) keeps its fraction at the training size (1 px
  at 8×8); colour jitter and PCA lighting are turned off there, as in the CIFAR recipes of the
  same authors' code.

Fields given explicitly (``--config.<field>``) are never changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import ml_collections

MIN_STEPS_PER_EPOCH = 16  # an epoch of at least 16 updates (digits: batch ≤ 64)
SMALL_IMAGE_SIDE = 64  # datasets whose images are at most this side are "small" (digits, MNIST, CIFAR)

# Training-set sizes of the recipes' home datasets (TFDS split sizes).
HOME_NUM_TRAIN = {"imagenet2012": 1_281_167, "cifar10": 50_000, "mnist": 60_000}
HOME_NUM_CLASSES = {"imagenet2012": 1000, "cifar10": 10, "mnist": 10}
HOME_DEFAULT_EPOCHS = {"imagenet2012": 90.0, "cifar10": 30.0, "mnist": 10.0}


def recipe_home(arch: str) -> str:
    """The dataset an arch's recipe was written for: MNIST for 1-channel models of at most
    32×32 (LeNet-5, Highway FC), CIFAR-10 for other models of at most 32×32, else ImageNet."""
    import flaxnets

    h, _, c = flaxnets.model_info(arch).input_size
    if h <= 32:
        return "mnist" if c == 1 else "cifar10"
    return "imagenet2012"


# Training compute of a run on a dataset its recipe was not written for (the embedded digits):
# the whole registry at its default command must fit about 4 hours of a 2-core CPU (issue 14).
# Measured there: ~25 GFLOP/s of training on these networks and ~60 s per run of start-up,
# compiles and 30 evaluations, so 114 runs leave ~65 s of training each on average; ~70 of them
# are ImageNet networks at 32x32 that reach any cap. 3 TFLOP (~2 min) per run: 12 TFLOP (until
# 2026-12-02) let wrn_16_8 run past 900 s. Models over it train fewer epochs and say so, down to
# the floor below. The floor puts the registry's default runs well over 4 hours on this machine
# (each ImageNet network at 32x32 trains ≥ 15 epochs): the goal of 95 % at the default command
# takes precedence (issue 14).
SMALL_DATA_TFLOP = 3.0
# The budget never cuts a run below this many epochs: the 95 % goal comes first, the 4 hours
# second. Measured on the digits (TRAINABILITY.md rows and their notes): networks whose recipe
# is written for CIFAR train at the digits' own 8×8; the WRNs pass from 3-6 epochs (wrn_28_10
# 97.50 % at 3, wrn_16_8 98.61 % at 5, wrn_40_4 98.61 % at 6), but fractalnet_cifar, whose
# schedule divides the rate by 10 at half the run, gave 93.61 % at 5 epochs (9af4b24) and 97.22 %
# at the sixth of 8 (91.39 % at the fifth). ImageNet networks train at 32×32 or more with ImageNet
# learning rates scaled down to batch 64, and fail at 3-4 epochs (alexnet 21.67 %, darknet53
# 16.39 %, vgg11 25.83 %, inception_resnet_v1 88.06 %) where 15 pass (resnet18 98.89 %,
# seresnet18 99.44 %, googlenet 98.33 %). No MNIST recipe's network reaches its floor.
MIN_BUDGET_EPOCHS = {"cifar10": 8, "mnist": 3, "imagenet2012": 15}

BN_MOMENTUM_MAX = 0.1  # PyTorch's BatchNorm default (a 10-step horizon): the shortest an adapted recipe gets
WARMUP_MAX_FRACTION = 0.1  # a recipe's warm-up keeps its steps up to this fraction of an adapted run

HOME_IMAGE_SIDE = {"imagenet2012": 224, "cifar10": 32, "mnist": 28}


def adapt_augmentation(config: ml_collections.ConfigDict, dataset: str, image_side: int,
                       explicit: Iterable[str] = (), small_images: bool = False,
                       ) -> tuple[ml_collections.ConfigDict, str]:
    """``config`` with its augmentation adapted from the recipe's home data to ``dataset``
    trained at ``image_side``, and a short description of the change ("" when none).

    * On small-image data (``small_images``: digits, MNIST, CIFAR, whose objects fill the frame)
      a photo recipe's scale augmentation (random-resized crops of 8-100 % of the area,
      VGG's scale jitter) becomes the small-image standard, a random shift by zero-padding and
      cropping (He et al. 2016 Sec. 4.2: 4 px of 32, an eighth of the side). An 8 %-area crop
      of an 8×8 digit is a 2×2-pixel fragment: BN-Inception's recipe with it reached 92 % on
      the digits where the network fits 99 %.
    * ``pad_crop_padding`` is in pixels of the home resolution: it keeps its fraction of the
      image at ``image_side`` (a 4 px shift of an 8×8 digit moves half of it out of frame).
    * On small-image data a photo recipe's photometric augmentation (colour jitter, PCA
      lighting) is turned off, as in its authors' own small-image recipes.
    """
    explicit = set(explicit)
    if not config.get("recipe", True) or recipe_home(config.arch) == dataset:
        return config, ""
    home = recipe_home(config.arch)
    crop = config.get("train_crop")
    config = ml_collections.ConfigDict(config.to_dict())
    changes = []
    if small_images and crop in ("random_resized", "scale_jitter") and not explicit & {
            "train_crop", "crop_area_range", "aspect_ratio_range", "scale_jitter_range"}:
        config.train_crop = "pad_crop"
        if "pad_crop_padding" not in explicit:
            config.pad_crop_padding = max(1, round(image_side / 8))
        changes.append(f"{crop} crops → pad-crop {config.pad_crop_padding} px (small images)")
    elif crop == "pad_crop" and "pad_crop_padding" not in explicit:
        old = int(config.pad_crop_padding)
        new = max(1, round(old * image_side / HOME_IMAGE_SIDE[home])) if old else 0
        if new != old:
            config.pad_crop_padding = new
            changes.append(f"pad-crop {old}→{new} px at {image_side}×{image_side}")
    photometric = [f for f in ("color_jitter", "pca_lighting") if config.get(f) and f not in explicit]
    if small_images and photometric:
        # The small-image standard has no photometric augmentation: the authors whose ImageNet
        # code adds ColorJitter 0.4 and PCA lighting 0.1 (fb.resnet.torch lineage: ResNeXt,
        # DenseNet `datasets/imagenet.lua`) train CIFAR with normalisation, flip and the 4 px
        # shift only (`datasets/cifar10.lua`). PCA lighting's eigenbasis is ImageNet's pixel
        # covariance (AlexNet Sec. 4.1 computes it on the training set), and saturation is a
        # no-op on grey digits. Measured: resnext50_32x4d on the digits 91.67 % with them,
        # 95.56 % without (TRAINABILITY.md's row).
        for f in photometric:
            config[f] = 0.0
        changes.append(" and ".join(f.replace("_", " ") for f in photometric) + " off (small images)")
    return config, ", ".join(changes)


def budget_epochs(default_epochs: float, forward_flops: float, num_train: int,
                  home: str = "cifar10", min_epochs: float = 0.0) -> tuple[float, str]:
    """Epochs within :data:`SMALL_DATA_TFLOP` of training (≈ 3× the forward FLOPs per image:
    forward, input and weight gradients) and the reason, when the dataset's default budget
    exceeds it; at least the :data:`MIN_BUDGET_EPOCHS` of the recipe's ``home`` dataset (never
    more than the default), or the recipe's own ``min_epochs`` (``small_data_min_epochs``) where
    that is more, even above the default: a recipe that states its floor on small data gets it.
    ``(default_epochs, "")`` when nothing changes."""
    per_epoch = 3.0 * forward_flops * num_train
    home_floor = min(MIN_BUDGET_EPOCHS[home], default_epochs)
    floor = max(home_floor, min_epochs)
    affordable = math.floor(SMALL_DATA_TFLOP * 1e12 / per_epoch) if per_epoch > 0 else math.inf
    capped = min(affordable, default_epochs)
    epochs = max(floor, capped)
    if epochs == default_epochs:
        return default_epochs, ""
    which = "recipe's small-data" if min_epochs > home_floor else home
    parts = [f"compute budget: {forward_flops / 1e9:.2f} GFLOPs/image forward, "
             f"{SMALL_DATA_TFLOP:g} TFLOP ≈ {affordable} epochs"] if affordable < default_epochs else []
    above = f", above the default {default_epochs:g}" if epochs > default_epochs else ""
    parts += [f"raised to the {which} floor of {floor:g}{above}"] if floor > capped else []
    return float(epochs), ", ".join(parts)


def _pow2_floor(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def adapt_recipe(config: ml_collections.ConfigDict, dataset: str, num_train: int, image_side: int,
                 default_epochs: float, explicit: Iterable[str] = (), num_classes: int = 0,
                 ) -> tuple[ml_collections.ConfigDict, str]:
    """``config`` (recipe already applied) adapted to ``dataset`` when the arch's recipe was
    written for another one, and a one-line description of the change ("" when none)."""
    from train.configs.recipes import recipe_for

    if not config.get("recipe", True):
        return config, ""
    home = recipe_home(config.arch)
    if dataset == home:
        return config, ""
    recipe = recipe_for(config.arch)
    explicit = set(explicit)
    config = ml_collections.ConfigDict(config.to_dict())
    free = [f for f in recipe if f not in explicit]  # recipe values we may re-scale
    changes = []

    old_batch = int(config.batch_size)
    if "batch_size" not in explicit:
        cap = _pow2_floor(num_train // MIN_STEPS_PER_EPOCH)
        if old_batch > cap:
            config.batch_size = cap
            changes.append(f"batch {old_batch}→{cap}")

    old_epochs = float(recipe["num_epochs"]) if "num_epochs" in recipe else HOME_DEFAULT_EPOCHS[home]
    new_epochs = float(config.num_epochs) if "num_epochs" in explicit and config.num_epochs else default_epochs
    ratio = new_epochs / old_epochs
    if "num_epochs" not in explicit:
        config.num_epochs = new_epochs
        if old_epochs != new_epochs:
            changes.append(f"{old_epochs:g}→{new_epochs:g} epochs")
    if "step_epochs" not in explicit and config.schedule == "step":
        config.step_epochs = tuple(float(e) if e <= 1.0 else e / old_epochs for e in config.step_epochs)
    if "decay_epochs" not in explicit and config.schedule == "exponential":
        config.decay_epochs = float(config.decay_epochs) * ratio
    if "warmup_epochs" not in explicit and config.warmup_epochs:
        # A warm-up gets past the first updates' instability: it is counted in updates. Keep the
        # recipe's number of warm-up steps, up to WARMUP_MAX_FRACTION of the run (never shorter
        # than the proportional share). ResNet-110 (Sec. 4.2: lr 0.01 for ~400 iterations) on the
        # digits: 1 epoch × 30/164 = 4 steps of warm-up ended at 30.56 %, 3 epochs at 96-97 %.
        new_spe = max(num_train // int(config.batch_size), 1)
        home_steps = float(config.warmup_epochs) * HOME_NUM_TRAIN[home] / old_batch
        by_steps = min(home_steps, WARMUP_MAX_FRACTION * new_epochs * new_spe) / new_spe
        config.warmup_epochs = max(float(config.warmup_epochs) * ratio, by_steps)
        changes.append(f"warm-up {config.warmup_epochs:.3g} epochs")
    if "ema_decay" in free and recipe["ema_decay"]:
        # The same averaging horizon in epochs: 1/(1-d) steps scale with the steps per epoch.
        old_steps = HOME_NUM_TRAIN[home] / old_batch * old_epochs
        new_steps = max(num_train // int(config.batch_size), 1) * new_epochs
        config.ema_decay = max(0.0, 1.0 - (1.0 - float(recipe["ema_decay"])) * old_steps / new_steps)
    bn_momentum = dict(recipe.get("model_overrides", {})).get("bn_momentum")
    if "model_overrides" in free and "model_overrides.bn_momentum" not in explicit and bn_momentum:
        # BatchNorm running statistics: the same averaging horizon in epochs (as for the EMA),
        # but never shorter than PyTorch's default momentum 0.1 (10 steps; the twins' value).
        # EfficientNet's 0.01 (TF 0.99) spans 100 steps, a sliver of an ImageNet epoch; on the
        # digits (22 steps per epoch) 100 steps are 4.5 epochs, and after 132 steps the initial
        # statistics still weigh 0.99^132 = 27 %: efficientnet_b0's eval stayed near chance for
        # its first ~200 of 660 steps while its training accuracy rose.
        old_spe = HOME_NUM_TRAIN[home] / old_batch
        new_spe = max(num_train // int(config.batch_size), 1)
        momentum = min(BN_MOMENTUM_MAX, max(float(bn_momentum), float(bn_momentum) * old_spe / new_spe))
        config.model_overrides = dict(config.model_overrides, bn_momentum=momentum)
        changes.append(f"BN momentum {bn_momentum:g}→{momentum:.3g} (horizon in epochs, ≥ 10 steps)")
    adapted = {k: v for k, v in dict(config.get("adapted_model_overrides") or {}).items()
               if f"model_overrides.{k}" not in explicit}
    if "adapted_model_overrides" in free and adapted:
        # Model fields the recipe needs off its home data only (EfficientNet's zero-γ, its recipe says why).
        config.model_overrides = dict(config.model_overrides, **adapted)
        changes.append(", ".join(f"{k}={v}" for k, v in sorted(adapted.items())))
    home_classes = HOME_NUM_CLASSES[home]
    if (config.optimizer == "sgd" and 0 < num_classes < home_classes and "head_lr_mult" not in explicit
            and not config.get("init_from")):
        # The classifier's step per class. Class k's weights get (1/B)·Σ_i (p_ik − y_ik)·f_i: the
        # −y term sums over the batch's images of class k, a 1/C share of the batch, while every
        # other layer gets a share of every image. The recipe's lr rule (linear in the batch)
        # keeps the body's step; with C = 10 classes instead of 1,000 the classifier's per-class
        # step is 100 times the recipe's, and under SGD (unlike RMSProp/Adam, which divide the
        # gradient's scale out) a step of lr·‖f‖² per logit overshoots where ‖f‖² is large:
        # shufflenet_v1_g3 (960 pooled features) went to loss 7.5 by its 3rd step and ended at
        # 88.61 %; with its classifier at ×0.01 (= C/C_home) 98.61 %, ×0.1 99.17 % (30 epochs).
        # Fine-tuning (init_from) keeps the recipe's rate: its new head is the part that must move.
        config.head_lr_mult = float(config.head_lr_mult) * num_classes / home_classes  # × the recipe's own
        changes.append(f"classifier lr ×{num_classes}/{home_classes} (its per-class step)")
    import flaxnets

    info = flaxnets.model_info(config.arch)
    if (info.min_size_no_aux and image_side <= SMALL_IMAGE_SIDE and "image_size" not in explicit
            and "aux_logits" not in dict(config.model_overrides)
            and not explicit & {"model_overrides", "model_overrides.aux_logits"}):
        # Auxiliary heads whose fixed pools need the paper's grid (Inception-v3's 17×17: 299 px,
        # Sec. 7's low-resolution stems keep that grid and its cost; GoogLeNet's 4×4 map at 4a:
        # 223 px) would make the trainer upsample 8×8 digits to the paper's size for them alone.
        # They are trained off: Szegedy et al. 2016 (Inception-v3) Sec. 4 found that the aux
        # classifiers "did not result in improved convergence early in the training" and act as
        # a regulariser near its end. The start line says so; --config.image_size (≥ min_size)
        # or --config.model_overrides.aux_logits=True keeps them.
        config.model_overrides = dict(config.model_overrides, aux_logits=False)
        changes.append(f"aux heads off (they need ≥ {info.min_size} px)")
    if "image_size" in free and image_side <= SMALL_IMAGE_SIDE:
        config.image_size = None
        changes.append("recipe resolution dropped")
    side = int(config.get("small_data_image_size") or 0)
    if image_side <= SMALL_IMAGE_SIDE and side and "small_data_image_size" in free and "image_size" not in explicit:
        changes.append(f"trained at {side}x{side} (the recipe's small-data size)")
    lr_rule = (f"lr ×batch/{config.lr_batch_denom}" if config.lr_batch_denom else "lr unscaled")
    line = (f"{config.arch}'s recipe is written for {home}; on {dataset}: " + ", ".join(changes or ["as is"])
            + f"; schedule shape, optimiser, regularisation and loss kept ({lr_rule}); --config.* wins.")
    if math.isclose(ratio, 1.0) and not changes:
        return config, ""
    return config, line
