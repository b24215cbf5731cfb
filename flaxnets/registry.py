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
from collections.abc import Callable, Mapping
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
      mean, std: per-channel input normalisation the model was trained with.
      num_classes: default number of classes.
      top1: published top-1 accuracy (%), where the paper gives one.
      params: reference parameter count (twin's count, or the paper's / derived count).
      twin: ``"torchvision:<fn>"`` or ``"timm:<name>"`` when weights convert 1:1.
      twin_kwargs: keyword arguments to build the twin with the same head configuration.
      twin_sizes: extra (H, W) sizes the parity test checks besides ``input_size``.
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
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    top1: float | None = None
    params: int | None = None
    twin: str | None = None
    twin_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    twin_sizes: tuple[tuple[int, int], ...] = ((193, 257),)
    torch_key: Callable[[tuple[str, ...]], str] | None = None
    notes: str = ""


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
    name: str, *, num_classes: int | None = None, dtype: Any = jnp.float32, **overrides: Any
) -> nn.Module:
    """Build the registered model ``name``.

    Args:
      name: registry name (see :func:`list_models`).
      num_classes: classifier outputs; defaults to the model's ``ModelInfo.num_classes``
        (1000 for ImageNet models, 10 for CIFAR/MNIST ones).
      dtype: compute dtype (params stay float32, BatchNorm statistics stay float32).
      **overrides: constructor fields of the model's module (e.g. ``drop_rate=0.2``).
    """
    key = _lookup(name)
    if num_classes is None:
        num_classes = _INFOS[key].num_classes
    return _BUILDERS[key](num_classes=num_classes, dtype=dtype, **overrides)
