"""flaxnets: the classic convolutional networks in JAX/Flax, faithful to their papers.

Public API::

    create_model(name, num_classes=..., dtype=...)   # a flax.linen.Module
    create_model(name, num_classes=0)                # pooled pre-logit features
    create_model(name, features_only=True)           # list of stage feature maps
    list_models(pattern="*")                         # registered names
    model_info(name)                                 # paper, input size, reference numbers
    from_torch(name, state_dict)                     # torchvision/timm weights → variables
    summary(name, input_size=None)                   # per-layer shapes, params, FLOPs
    load_weights(name, source, num_classes=..., in_chans=...)  # tags or files → variables
    save_weights(path, variables, name=...)          # portable safetensors file
    transforms(name)                                 # the weights' eval preprocessing
    export(name, variables, path, format=...)        # SavedModel / StableHLO / TFLite (TF imported lazily)
"""

from flaxnets import weights
from flaxnets.export import export
from flaxnets.interop import from_torch
from flaxnets.registry import (
    AUX_COLLECTION,
    FeatureInfo,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)
from flaxnets.summary import Summary, summary
from flaxnets.transforms import transforms
from flaxnets.weights import WeightsError, load_weights, save_weights

__all__ = [
    "AUX_COLLECTION",
    "FeatureInfo",
    "ModelInfo",
    "Summary",
    "create_model",
    "export",
    "from_torch",
    "list_models",
    "model_info",
    "register_model",
    "load_weights",
    "save_weights",
    "summary",
    "transforms",
    "weights",
    "WeightsError",
]
__version__ = "0.1.0"
