"""Import PyTorch (torchvision / timm) weights into the registered flax models.

Every family names its flax modules after the twin's module paths, so a flax variable
path such as ``("layer1.0", "conv1", "kernel")`` corresponds to the torch key
``layer1.0.conv1.weight``. A family whose naming cannot follow the twin supplies a
``torch_key`` function in its :class:`~flaxnets.registry.ModelInfo`. The leaf conversion
is generic: conv kernels OIHW → HWIO, linear weights transposed, BatchNorm
weight/bias/running stats → scale/bias/mean/var.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from flaxnets.registry import create_model, model_info
from flaxnets.summary import variable_shapes

# flax leaf name → torch parameter/buffer name.
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
# torch buffers that carry no information for inference.
_IGNORED_SUFFIXES = ("num_batches_tracked",)


def _to_numpy(value: Any) -> np.ndarray:
    """numpy view of a torch tensor or array-like, without importing torch."""
    if hasattr(value, "detach"):  # a torch.Tensor; its module is already imported
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _convert_leaf(value: np.ndarray, leaf: str, target_shape: tuple[int, ...]) -> np.ndarray:
    if leaf == "kernel":
        if value.ndim == 4:  # conv OIHW → HWIO
            value = value.transpose(2, 3, 1, 0)
            if len(target_shape) == 2 and value.shape[:2] == (1, 1):  # 1×1 conv ↔ dense
                value = value[0, 0]
        elif value.ndim == 2:  # linear (out, in) → (in, out)
            value = value.T
            if len(target_shape) == 4 and target_shape[:2] == (1, 1):  # dense ↔ 1×1 conv
                value = value[None, None]
    return value


def default_torch_key(path: tuple[str, ...]) -> str:
    """Torch module path of a flax variable path (its leaf name dropped)."""
    return ".".join(path[:-1])


def from_torch(name: str, state_dict: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Convert a torchvision/timm ``state_dict`` into variables for model ``name``.

    Args:
      name: registry name of the flax model.
      state_dict: the twin's ``state_dict()`` (torch tensors or numpy arrays).
      **overrides: passed to :func:`flaxnets.create_model` (e.g. ``num_classes`` for a
        fine-tuned twin; a wrong width shows up as a mis-shaped classifier key).

    Returns:
      ``{"params": ..., "batch_stats": ...}`` (``batch_stats`` only when the model has
      BatchNorm), float32 ``jax.Array`` leaves.

    Raises:
      ValueError: listing missing, unexpected and mis-shaped keys.
    """
    info = model_info(name)
    arrays = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    model = create_model(name, **overrides)
    shapes = variable_shapes(model, info.input_size)  # shapes only: no arrays are made
    to_key = info.torch_key or default_torch_key
    out: dict[tuple[str, ...], Any] = {}
    used: set[str] = set()
    missing, mismatched = [], []
    for path, spec in traverse_util.flatten_dict(
        {k: v for k, v in shapes.items() if k in ("params", "batch_stats")}
    ).items():
        var_path = path[1:]
        prefix = to_key(var_path)
        key = f"{prefix}.{_LEAF.get(var_path[-1], var_path[-1])}" if prefix else var_path[-1]
        if key not in arrays:
            missing.append(key)
            continue
        used.add(key)
        value = _convert_leaf(_to_numpy(arrays[key]), var_path[-1], tuple(spec.shape))
        if tuple(value.shape) != tuple(spec.shape):
            mismatched.append(f"{key}: torch {tuple(value.shape)} vs flax {tuple(spec.shape)}")
            continue
        out[path] = jnp.asarray(value, dtype=jnp.float32)
    unexpected = sorted(set(arrays) - used)
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if items:
                parts.append(f"{label} ({len(items)}): {', '.join(items)}")
        raise ValueError(f"cannot convert state_dict for {name!r}: " + "; ".join(parts))
    return traverse_util.unflatten_dict(out)

