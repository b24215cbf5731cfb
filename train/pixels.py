"""Pixel normalisation shared by the host pipeline and the jitted steps (numpy only).

The input pipeline ships uint8 pixels to the device (4× less host-to-device traffic than
float32) and the compiled steps normalise them; the host can also normalise the same uint8
batch itself. Both sides apply the same float32 affine map ``x · scale + shift`` with the
constants computed here once, so the two give the same numbers. No TensorFlow or JAX
import: the accelerator machine runs the steps without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ITU-R 601 luma, as tf.image.rgb_to_grayscale.
LUMA = (0.2989, 0.5870, 0.1140)


def channel_stats(values: Sequence[float] | float, channels: int) -> np.ndarray:
    """Per-channel mean or std (float32, shape ``(channels,)``): one value is broadcast,
    three RGB values become one grey value by luma weighting."""
    v = np.asarray(values, np.float32).reshape(-1)
    if v.size == channels:
        return v
    if v.size == 1:
        return np.repeat(v, channels)
    if v.size == 3 and channels == 1:
        return np.asarray([np.sum(v * np.asarray(LUMA, np.float32), dtype=np.float32)], np.float32)
    raise ValueError(f"{v.size} mean/std values for {channels} channels")


def pixel_affine(mean: Sequence[float], std: Sequence[float], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)``, float32 ``(channels,)``: ``u8 · scale + shift = (u8 / 255 − mean) / std``
    (mean/std are those of pixels in [0, 1], as ``ModelInfo`` gives them)."""
    m = channel_stats(mean, channels).astype(np.float64)
    s = channel_stats(std, channels).astype(np.float64)
    if np.any(s <= 0):
        raise ValueError(f"std must be positive, got {tuple(s)}")
    return (1.0 / (255.0 * s)).astype(np.float32), (-m / s).astype(np.float32)
