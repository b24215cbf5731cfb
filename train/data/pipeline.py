"""Train and eval iterators: TFDS split → this process's shard → augment → numpy batches.

Determinism (exact resume after a kill): the training stream is a fixed function of
``(seed, process shard)``. Epoch ``e`` is the shard in its stored order, shuffled with a
buffer seeded by ``(seed, e)``; example ``i`` (its position in the shard) of epoch ``e`` is
augmented with stateless random ops seeded by ``(seed, process_index, e, i)``. Epochs are
concatenated and batched with batches crossing epoch boundaries, so the stream started
at ``start_step`` is the uninterrupted stream with its first ``start_step × batch``
examples skipped (skipping starts at the right epoch and only reads encoded records).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from train.data import preprocess as pp
from train.data.autoaugment import AUGMENTATIONS
from train.data.builders import DatasetInfo, get_builder, read_split, split_size

_TRAIN_CROPS = ("random_resized", "scale_jitter", "pad_crop", "center")
_EVAL_MODES = ("center", "10crop", "full")
# scale_jitter_range is given for 224 crops (VGG's S ∈ [256, 512]); scaled for other sizes.
_SCALE_JITTER_REFERENCE = 224
# Datasets whose native images are at most this side (digits, mnist, cifar) are whole
# objects: the centre crop keeps the whole image unless a crop ratio is given explicitly.
_SMALL_IMAGE_SIDE = 64


def _get(config: Any, key: str, default: Any) -> Any:
    """``config.key`` for ConfigDicts, dicts and plain objects, ``default`` if absent/None."""
    if isinstance(config, dict) or hasattr(config, "get"):
        value = config.get(key, default)
    else:
        value = getattr(config, key, default)
    return default if value is None else value


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return process_index, process_count


def _local_batch(global_batch_size: int, process_count: int) -> int:
    if global_batch_size % process_count or global_batch_size < process_count:
        raise ValueError(f"global batch {global_batch_size} is not divisible by {process_count} processes")
    return global_batch_size // process_count


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    options.threading.max_intra_op_parallelism = 1
    options.threading.private_threadpool_size = max(2, min(os.cpu_count() or 2, 32))
    return options


def default_crop_ratio(config: Any, info: DatasetInfo) -> float:
    """``config.eval_crop_ratio`` for photo datasets; 1.0 (whole image) for small-image ones."""
    if info.image_size <= _SMALL_IMAGE_SIDE:
        return 1.0
    return float(_get(config, "eval_crop_ratio", 0.875))


def train_example_fn(config: Any, info: DatasetInfo, *, image_size: int, channels: int,
                     mean: Sequence[float], std: Sequence[float], seed: int, process_index: int = 0,
                     crop_ratio: float | None = None):
    """``(epoch, index, {"image": bytes, "label"}) → {"image", "label"}`` training transform."""
    crop_mode = _get(config, "train_crop", "random_resized")
    if crop_mode not in _TRAIN_CROPS:
        raise ValueError(f"train_crop {crop_mode!r} not in {_TRAIN_CROPS}")
    area = tuple(_get(config, "crop_area_range", (0.08, 1.0)))
    ratio = tuple(_get(config, "aspect_ratio_range", (3 / 4, 4 / 3)))
    smin, smax = (max(1, int(round(s * image_size / _SCALE_JITTER_REFERENCE)))
                  for s in _get(config, "scale_jitter_range", (256, 512)))
    padding = int(_get(config, "pad_crop_padding", 4))
    flip = bool(_get(config, "random_flip", True))
    lighting = float(_get(config, "pca_lighting", 0.0))
    jitter = float(_get(config, "color_jitter", 0.0))
    policy = str(_get(config, "auto_augment", ""))
    if policy not in AUGMENTATIONS:
        raise ValueError(f"auto_augment {policy!r} not in {AUGMENTATIONS}")
    ra_ops, ra_magnitude = int(_get(config, "randaugment_num_ops", 2)), float(_get(config, "randaugment_magnitude", 9))
    centre_ratio = default_crop_ratio(config, info) if crop_ratio is None else crop_ratio
    base_key = tf.constant([seed, process_index], tf.int64)

    def fn(epoch, index, ex):
        key = tf.random.experimental.stateless_fold_in(base_key, epoch)
        key = tf.random.experimental.stateless_fold_in(key, index)
        k_crop, k_flip, k_light, k_color = pp.split_seed(key, 4)
        if crop_mode == "random_resized":
            img = pp.decode_random_resized_crop(ex["image"], info.channels, image_size, k_crop, area, ratio)
        else:
            img = pp.decode(ex["image"], info.channels)
            if crop_mode == "scale_jitter":
                img = pp.scale_jitter_crop(img, image_size, k_crop, smin, smax)
            elif crop_mode == "pad_crop":
                img = pp.pad_crop(pp.resize_center_crop(img, image_size, 1.0), padding, k_crop)
            else:
                img = pp.resize_center_crop(img, image_size, centre_ratio)
        img = pp.convert_channels(img, channels)  # pointwise: commutes with crops and resizes
        if flip:
            img = pp.random_flip(img, k_flip)
        if policy:  # own key (folded in) so that the other ops' random streams do not change
            k_aug = tf.random.experimental.stateless_fold_in(key, 4)
            img = pp.auto_augment(img, policy, k_aug, ra_ops, ra_magnitude)
        if lighting > 0 and channels == 3:
            img = pp.pca_lighting(img, lighting, k_light)
        if jitter > 0:
            img = pp.color_jitter(img, jitter, k_color)
        img.set_shape([image_size, image_size, channels])
        img = pp.normalize(img, mean, std)
        return {"image": img, "label": tf.cast(ex["label"], tf.int32)}

    return fn


def train_iterator(config: Any, info: DatasetInfo, *, image_size: int, channels: int, mean: Sequence[float],
                   std: Sequence[float], global_batch_size: int, seed: int, start_step: int = 0,
                   data_dir: str | None = None, process_index: int | None = None,
                   process_count: int | None = None,
                   crop_ratio: float | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Infinite, deterministic, resumable stream of this process's augmented training batches.

    Yields ``{"image": float32 (b, H, W, C), "label": int32 (b,)}`` with
    ``b = global_batch_size // process_count``. The batches after ``start_step`` equal those
    an uninterrupted iterator yields from step ``start_step`` on. ``process_index`` /
    ``process_count`` default to JAX's; ``crop_ratio`` (train_crop "center") defaults to
    :func:`default_crop_ratio`.
    """
    pi, pc = _processes(process_index, process_count)
    local_b = _local_batch(global_batch_size, pc)
    builder = get_builder(info.name, data_dir if data_dir is not None else info.data_dir)
    shard, n = read_split(builder, info.train_split, pi, pc)
    if n == 0:
        raise ValueError(f"{info.name}:{info.train_split} shard {pi}/{pc} is empty")
    buffer = int(max(1, min(int(_get(config, "shuffle_buffer", 10_000)), n)))
    epoch0, offset = divmod(int(start_step) * local_b, n)
    indexed = shard.enumerate()

    def epoch_ds(epoch):
        shuffled = indexed.shuffle(buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + epoch,
                                   reshuffle_each_iteration=False)
        return shuffled.map(lambda i, ex: (epoch, i, ex))

    fn = train_example_fn(config, info, image_size=image_size, channels=channels, mean=mean, std=std,
                          seed=seed, process_index=pi, crop_ratio=crop_ratio)
    ds = tf.data.Dataset.range(epoch0, np.iinfo(np.int64).max).flat_map(epoch_ds).skip(offset)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    if info.name.startswith("folder:"):  # a file that passed the start check but fails to decode: skip it
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(local_b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()


def eval_example_fn(config: Any, info: DatasetInfo, *, image_size: int, channels: int,
                    mean: Sequence[float], std: Sequence[float], mode: str = "center",
                    size: int | None = None, crop_ratio: float | None = None):
    """``{"image": bytes, "label"} → {"image", "label", "mask"}`` evaluation transform."""
    if mode not in _EVAL_MODES:
        raise ValueError(f"eval mode {mode!r} not in {_EVAL_MODES}")
    if mode == "full" and not size:
        raise ValueError('eval mode "full" needs size')
    ratio = default_crop_ratio(config, info) if crop_ratio is None else crop_ratio

    def fn(ex):
        img = pp.convert_channels(pp.decode(ex["image"], info.channels), channels)
        if mode == "center":
            img = pp.resize_center_crop(img, image_size, ratio)
            img.set_shape([image_size, image_size, channels])
        elif mode == "10crop":
            side = max(image_size, int(round(image_size / ratio)))
            img = pp.ten_crop(pp.resize_shorter(img, side), image_size)
            img.set_shape([10, image_size, image_size, channels])
        else:
            img = pp.resize_center_crop(img, size, 1.0)
            img.set_shape([size, size, channels])
        return {"image": pp.normalize(img, mean, std), "label": tf.cast(ex["label"], tf.int32),
                "mask": tf.constant(1.0, tf.float32)}

    return fn


def eval_iterator(config: Any, info: DatasetInfo, *, image_size: int, channels: int, mean: Sequence[float],
                  std: Sequence[float], global_batch_size: int, mode: str = "center", size: int | None = None,
                  data_dir: str | None = None, process_index: int | None = None,
                  process_count: int | None = None,
                  crop_ratio: float | None = None) -> Iterator[dict[str, np.ndarray]]:
    """One pass over this process's shard of the eval split, padded to full batches.

    Yields ``{"image", "label" int32 (b,), "mask" float32 (b,)}`` (mask 0 on padding); image
    is ``(b, H, W, C)`` for "center" and "full" (``size``×``size``), ``(b, 10, H, W, C)`` for
    "10crop". Every process yields the same number of batches (needed for collective
    evaluation steps): ``ceil(ceil(num_eval / process_count) / b)``.
    """
    pi, pc = _processes(process_index, process_count)
    local_b = _local_batch(global_batch_size, pc)
    builder = get_builder(info.name, data_dir if data_dir is not None else info.data_dir)
    shard, n = read_split(builder, info.eval_split, pi, pc)
    total = n if pc == 1 else (split_size(builder, info.eval_split) or info.num_eval)
    num_batches = math.ceil(math.ceil(total / pc) / local_b)
    fn = eval_example_fn(config, info, image_size=image_size, channels=channels, mean=mean, std=std,
                         mode=mode, size=size, crop_ratio=crop_ratio)
    ds = shard.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    num_pad = num_batches * local_b - n
    if num_pad > 0:
        pad = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec)
        ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat(num_pad))
    ds = ds.batch(local_b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()
