"""Eval preprocessing of a model's reference weights, for numpy arrays and PIL images.

``transforms(name)(image)`` resizes the shorter side to ``floor(input / crop_pct)`` with the
weights' interpolation, takes the centre ``input × input`` crop, scales to [0, 1] and
normalises with the model's mean/std, returning a float32 NHWC-ready (H, W, C) array.

It is torchvision's ``Resize(short) → CenterCrop → ToTensor → Normalize`` on PIL images: the
resize is PIL's own ``Image.resize`` (antialiased, as torchvision's PIL path), the long side is
``int(short_target · long / short)`` and the crop offset ``round((size - crop) / 2)``, as in
torchvision. It differs from torchvision's *tensor* path (``antialias`` handling, float
rounding before uint8) by a few grey levels, and from timm's ``crop_mode="squash"`` configs.
numpy inputs are HWC uint8 (0–255) or float in [0, 1]; grey images are repeated to RGB for
3-channel models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from flaxnets.registry import model_info

CLASSES_FILE = "data/imagenet1k_classes.txt"


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in label order (torchvision's list)."""
    from importlib import resources

    return resources.files("flaxnets").joinpath(CLASSES_FILE).read_text().splitlines()


def _pil(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def transforms(name: str, *, crop_pct: float | None = None, size: int | None = None,
               interpolation: str | None = None) -> Callable[[Any], np.ndarray]:
    """The eval transform of model ``name``'s weights (overridable per argument)."""
    from PIL import Image

    info = model_info(name)
    crop = size or info.input_size[0]
    short = int(math.floor(crop / (crop_pct or info.crop_pct) + 1e-6))
    method = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[
        interpolation or info.interpolation]
    channels = info.input_size[2]
    mean, std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)

    def apply(image: Any) -> np.ndarray:
        img = _pil(image).convert("RGB" if channels == 3 else "L")
        w, h = img.size
        if w <= h:
            new = (short, int(short * h / w))
        else:
            new = (int(short * w / h), short)
        img = img.resize(new, method)
        w, h = img.size
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        img = img.crop((left, top, left + crop, top + crop))
        arr = np.asarray(img, np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return (arr - mean) / std

    return apply
