"""Model registry: names → builders, plus metadata kept apart from the architecture.

Each family file registers its variants with :func:`register_model` (timm style). The
metadata (:class:`ModelInfo`) records where the architecture comes from (paper, table),
what input it expects and what reference numbers it must match (param count, published
top-1) so tests and the trainer can read them without knowing the family.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

# Models with auxiliary classifiers sow their aux logits into this collection during
# training (``self.sow(AUX_COLLECTION, name, logits)``). The trainer asks for it with
# ``mutable=["batch_stats", AUX_COLLECTION]`` and weights each entry by the model's
# ``aux_loss_weight`` attribute; evaluation never asks for it.
AUX_COLLECTION = "aux_logits"


TOP1_PROTOCOLS = ("1 crop", "10 crop", "144 crop", "dense single-scale", "dense multi-scale", "multi-crop + dense",
                  "full image")


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One feature map of ``create_model(name, features_only=True)``.

    Attributes:
      module: the map's name: the module whose output it is (for twins the twin's module
        path, e.g. ``layer1``; a timm twin's ``feature_info`` module).
      channels: its channel count.
      reduction: its stride with respect to the input (2, 4, 8, 16, 32 …).
    """

    module: str
    channels: int
    reduction: int


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model, independent of its code.

    Attributes:
      name: registry name.
      family: family (one file under ``flaxnets/models``).
      paper: title of the paper the architecture follows.
      year: publication year.
      table: where in the paper the layer configuration is given (e.g. "Table 1").
      input_size: default input (H, W, C).
      min_size: smallest square spatial input the architecture accepts (used by tests).
      min_size_no_aux: smallest input without the auxiliary heads (``aux_logits=False``), for
        models whose heads need a larger grid than the rest of the network (``None``: the same).
      fixed_size: the architecture accepts only ``input_size`` (e.g. LeNet-5's C5).
      mean, std: per-channel input normalisation the model was trained with.
      crop_pct, interpolation: eval preprocessing of the model's reference weights (resize the
        shorter side to ``input / crop_pct`` with ``interpolation``, centre crop ``input``).
      num_classes: default number of classes.
      top1: published top-1 accuracy (%), where the paper gives one.
      top1_protocol: how ``top1`` was measured (one of :data:`TOP1_PROTOCOLS` with its size,
        e.g. ``"1 crop 224"``, ``"10 crop 224"``): numbers of different protocols differ.
      params: reference parameter count (twin's count, or the paper's / derived count).
      num_features: width of the pooled pre-logit features (``create_model(num_classes=0)``).
      feature_info: the maps ``features_only=True`` returns, in order (:class:`FeatureInfo`).
      classifier: module paths (``layers.module_path`` form) of the classifier and of every
        auxiliary head: what a new ``num_classes`` re-initialises and ``num_classes=0`` drops.
        The first entry is the layer that outputs the logits.
      first_conv: module path of the first convolution (adapted for other input channels).
      aux_loss_weight: weight of the auxiliary heads' losses; ``has_aux`` is derived from it.
      dense_eval: how to build the model's fully-convolutional (dense) evaluation, which runs
        on inputs larger than ``input_size`` and averages the class score map: the constructor
        overrides (``{"dense": True}`` for VGG, ``{}`` for nets that are fully convolutional
        as built, e.g. NiN); ``None`` when the paper has no dense evaluation.
      twin: ``"torchvision:<fn>"`` or ``"timm:<name>"`` when weights convert 1:1.
      twin_kwargs: keyword arguments to build the twin with the same head configuration.
      twin_sizes: extra (H, W) sizes the parity test checks besides ``input_size``. The default
        97×129 is odd at the input of every stride-2 layer of a 32×-reducing net (97, 49, 25, 13, 7;
        129, 65, 33, 17, 9), as 193×257 was, at a quarter of its pixels.
      torch_key: maps a flax variable path to its torch ``state_dict`` module prefix;
        ``None`` means the flax module names already are the torch module paths.
      notes: anything a reader should know (derivations, deviations).
    """

    name: str
    family: str
    paper: str
    year: int
    table: str = ""
    input_size: tuple[int, int, int] = (224, 224, 3)
    min_size: int = 32
    min_size_no_aux: int | None = None
    fixed_size: bool = False
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    num_classes: int = 1000
    top1: float | None = None
    top1_protocol: str | None = None
    params: int | None = None
    num_features: int | None = None
    feature_info: tuple[FeatureInfo, ...] = ()
    classifier: tuple[str, ...] = ()
    first_conv: str | None = None
    aux_loss_weight: float = 0.0
    dense_eval: Mapping[str, Any] | None = None
    twin: str | None = None
    twin_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    twin_sizes: tuple[tuple[int, int], ...] = ((97, 129),)
    torch_key: Callable[[tuple[str, ...]], str] | None = None
    notes: str = ""

    def smallest_input(self, overrides: Mapping[str, Any] | None = None) -> int:
        """``min_size`` of the model built with constructor ``overrides``: ``min_size_no_aux``
        where they turn the auxiliary heads off (``aux_logits=False``)."""
        if self.min_size_no_aux and dict(overrides or {}).get("aux_logits") is False:
            return self.min_size_no_aux
        return self.min_size

    @property
    def has_aux(self) -> bool:
        """Whether the model has auxiliary classifiers (their loss weight is non-zero)."""
        return self.aux_loss_weight > 0


def features(*maps: tuple[str, int, int]) -> tuple[FeatureInfo, ...]:
    """``feature_info`` from ``(module, channels, reduction)`` rows."""
    return tuple(FeatureInfo(m, c, r) for m, c, r in maps)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(name: str, builder: Callable[..., nn.Module] | None = None, **info: Any):
    """Register ``builder`` under ``name`` with :class:`ModelInfo` fields ``info``.

    Usable as a call (``register_model("vgg16", partial(VGG, ...), family=...)``) or as a
    decorator on a builder function (``@register_model("lenet5", family=...)``).
    """

    def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = fn
        _INFOS[name] = ModelInfo(name=name, **info)
        return fn

    return _register(builder) if builder is not None else _register


def _ensure_loaded() -> None:
    # Importing the models package registers every family.
    from flaxnets import models  # noqa: F401


def _lookup(name: str) -> str:
    _ensure_loaded()
    if name in _BUILDERS:
        return name
    close = difflib.get_close_matches(name, _BUILDERS.keys(), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see flaxnets.list_models()"
    raise ValueError(f"unknown model {name!r}{hint}")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the glob ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model (raises ``ValueError`` naming close matches)."""
    return _INFOS[_lookup(name)]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    dtype: Any = jnp.float32,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model ``name``.

    Args:
      name: registry name (see :func:`list_models`).
      num_classes: classifier outputs; defaults to the model's ``ModelInfo.num_classes``
        (1000 for ImageNet models, 10 for CIFAR/MNIST ones). ``0`` removes the classifier
        (and auxiliary heads): the model returns its pooled pre-logit features
        ``(B, ModelInfo.num_features)``, as timm does.
      features_only: return the list of intermediate feature maps (NHWC) described by
        ``ModelInfo.feature_info`` instead of logits (timm's ``features_only``). The model
        takes the classifier model's variables (e.g. converted twin weights) as they are.
      out_indices: which entries of ``feature_info`` to return (default: all). Negative
        indices count from the end.
      dtype: compute dtype (params stay float32, BatchNorm statistics stay float32).
      **overrides: constructor fields of the model's module (e.g. ``drop_rate=0.2``).
    """
    key = _lookup(name)
    info = _INFOS[key]
    if out_indices is not None and not features_only:
        raise ValueError("out_indices needs features_only=True")
    if num_classes is None:
        num_classes = 0 if features_only else info.num_classes
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    model = _BUILDERS[key](num_classes=num_classes, dtype=dtype, **overrides)
    if not features_only:
        return model
    from flaxnets.features import FeatureExtractor

    n = len(info.feature_info)
    indices = tuple(range(n)) if out_indices is None else tuple(out_indices)
    bad = [i for i in indices if not -n <= i < n]
    if bad or not indices:
        raise ValueError(f"out_indices {indices} out of range for {name!r}'s {n} feature maps")
    return FeatureExtractor(model, tuple(info.feature_info[i].module for i in indices))
