"""Train and eval iterators: TFDS split → global batches → this process's slice → augment → numpy.

Determinism (exact resume after a kill, on any number of hosts): the training stream is a
fixed function of ``(seed, step)`` alone. The global batch of step ``s`` holds the examples at
global positions ``[s·B, (s+1)·B)`` of the endless sequence "epoch 0, epoch 1, …", where
epoch ``e`` is the split permuted by ``(seed, e)``; process ``p`` of ``P`` reads rows
``[p·B/P, (p+1)·B/P)`` of every global batch (where its rows sit on the devices follows the
mesh; the loss and BatchNorm statistics are means over the whole global batch).
Example ``i`` (its index in the split) of epoch ``e`` is augmented with stateless random ops
seeded by ``(seed, e, i)``. So a run resumed at step ``s`` on another number of processes or
devices continues the same stream: same examples, same augmentations, same order.

How positions become examples, chosen by the dataset alone (so a resume takes the same path):

* random access (grain-style): epoch ``e``'s order is the stateless permutation
  ``tf.random.experimental.index_shuffle(·, (seed, e))`` of the split, and each process reads
  only its own examples. Image folders fetch files by path; TFDS splits of at most
  ``IN_MEMORY_BYTES`` encoded (digits, mnist, cifar) are held in memory, encoded.
* streamed (larger TFDS splits stored as TFRecords, e.g. imagenet2012): every process reads the
  split's records in their stored order and shuffles them with a buffer of
  ``config.shuffle_buffer`` seeded by ``(seed, e)``; it keeps its own slice of each global
  batch before decoding, so only reading (not decoding) is repeated across processes.

Resuming at ``start_step`` costs nothing on the random-access path and reads (without
decoding) the skipped records of the current epoch on the streamed path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from train.data import autoaugment
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


def _output(img: tf.Tensor, normalize: bool, mean: Sequence[float], std: Sequence[float],
            keep_float: bool = False) -> tf.Tensor:
    """An example's final image: uint8 pixels, normalised on the host when ``normalize``
    (same numbers as the steps' device normalisation). ``keep_float``: a float image that
    may leave [0, 1] (PCA lighting) is normalised in float instead, whatever ``normalize``."""
    if img.dtype.is_floating:
        if keep_float:
            return pp.normalize(img, mean, std)
        img = pp.to_uint8(img)
    return pp.normalize_uint8(img, mean, std) if normalize else img


def train_example_fn(config: Any, info: DatasetInfo, *, image_size: int, channels: int,
                     mean: Sequence[float], std: Sequence[float], seed: int,
                     crop_ratio: float | None = None, normalize: bool = True):
    """``(epoch, index, {"image": bytes, "label"}) → {"image", "label"}`` training transform.

    ``index`` is the example's index in the split: its random ops depend on
    ``(seed, epoch, index)`` only, not on which process reads it. The image is uint8 pixels
    (``normalize`` False: the device normalises them) or normalised float32; with PCA
    lighting it is always normalised float32 (lighting moves pixels out of [0, 1]).
    """
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
    antialias = bool(_get(config, "train_resize_antialias", False))
    float_out = lighting > 0 and channels == 3
    centre_ratio = default_crop_ratio(config, info) if crop_ratio is None else crop_ratio
    base_key = tf.constant([seed, 0], tf.int64)

    def fn(epoch, index, ex):
        key = tf.random.experimental.stateless_fold_in(base_key, epoch)
        key = tf.random.experimental.stateless_fold_in(key, index)
        k_crop, k_flip, k_light, k_color = pp.split_seed(key, 4)
        if crop_mode == "random_resized":
            img = pp.decode_random_resized_crop(ex["image"], info.channels, image_size, k_crop, area, ratio,
                                                antialias=antialias, uint8=True)
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
            u8 = img if img.dtype == tf.uint8 else pp.to_uint8(img)
            img = autoaugment.augment(u8, policy, k_aug, ra_ops, ra_magnitude)
        if (float_out or jitter > 0) and img.dtype == tf.uint8:
            img = tf.image.convert_image_dtype(img, tf.float32)
        if float_out:
            img = pp.pca_lighting(img, lighting, k_light)
        if jitter > 0:
            img = pp.color_jitter(img, jitter, k_color)
        img.set_shape([image_size, image_size, channels])
        return {"image": _output(img, normalize, mean, std, keep_float=float_out),
                "label": tf.cast(ex["label"], tf.int32)}

    return fn


IN_MEMORY_BYTES = 1 << 30  # TFDS splits up to this size (encoded) are read once and held in memory
_IN_MEMORY_EXAMPLES = 200_000  # the limit when a split's size in bytes is unknown


def _random_access(builder, split: str) -> tuple[Any, int] | None:
    """``(fetch, n)`` with ``fetch(index) → {"image": encoded bytes, "label"}`` for the whole
    split (in its stored order), or None when the split is too large to hold and not a folder."""
    if isinstance(builder, tfds.ImageFolder):  # files are random access by path
        examples = builder._split_examples[split]  # noqa: SLF001 - the folder's fixed (path, label) order
        labels = builder.info.features["label"]
        paths = tf.constant([e.image_path for e in examples])
        ids = tf.constant([labels.str2int(e.label) for e in examples], tf.int64)
        return (lambda i: {"image": tf.io.read_file(tf.gather(paths, i)), "label": tf.gather(ids, i)}), len(examples)
    n = split_size(builder, split)
    try:
        nbytes = int(builder.info.splits[split].num_bytes)
    except Exception:  # noqa: BLE001 (no size metadata, e.g. under mock_data)
        nbytes = 0
    if (nbytes and nbytes > IN_MEMORY_BYTES) or (not nbytes and n and n > _IN_MEMORY_EXAMPLES):
        return None
    images_t, ids_t = _held_split(builder, split)
    return (lambda i: {"image": tf.gather(images_t, i), "label": tf.gather(ids_t, i)}), int(images_t.shape[0])


def _held_split(builder, split: str) -> tuple[tf.Tensor, tf.Tensor]:
    """The split's encoded images and labels, in stored order, read once per process."""
    key = (builder.name, str(builder.data_dir), str(split))
    if key not in _HELD:
        records, _ = read_split(builder, split, 0, 1)
        images, ids = [], []
        for chunk in records.batch(8192).as_numpy_iterator():
            images.append(chunk["image"])
            ids.append(chunk["label"])
        _HELD.clear()  # hold one split at a time
        _HELD[key] = (tf.constant(np.concatenate(images) if images else np.zeros((0,), object), tf.string),
                      tf.constant(np.concatenate(ids) if ids else np.zeros((0,), np.int64), tf.int64))
    return _HELD[key]


_HELD: dict[tuple[str, str, str], tuple[tf.Tensor, tf.Tensor]] = {}


def train_iterator(config: Any, info: DatasetInfo, *, image_size: int, channels: int, mean: Sequence[float],
                   std: Sequence[float], global_batch_size: int, seed: int, start_step: int = 0,
                   data_dir: str | None = None, process_index: int | None = None,
                   process_count: int | None = None, crop_ratio: float | None = None,
                   normalize: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Infinite, deterministic, resumable stream of this process's slice of the global batches.

    Yields ``{"image": (b, H, W, C), "label": int32 (b,)}``: normalised float32 images, or
    with ``normalize`` False uint8 pixels for the device to normalise (4× less to copy;
    float32 normalised all the same under PCA lighting). Rows ``[p·b, (p+1)·b)`` of
    global batch ``start_step, start_step + 1, …`` with ``b = global_batch_size // process_count``
    and ``p = process_index``. The global batches depend on ``(seed, step)`` only (see the module
    docstring), not on ``process_count``. ``process_index`` / ``process_count`` default to JAX's;
    ``crop_ratio`` (train_crop "center") defaults to :func:`default_crop_ratio`.
    """
    pi, pc = _processes(process_index, process_count)
    local_b = _local_batch(global_batch_size, pc)
    big_b = int(global_batch_size)
    builder = get_builder(info.name, data_dir if data_dir is not None else info.data_dir)
    fn = train_example_fn(config, info, image_size=image_size, channels=channels, mean=mean, std=std,
                          seed=seed, crop_ratio=crop_ratio, normalize=normalize)
    seed_t = tf.constant(int(seed), tf.int64)
    source = _random_access(builder, info.train_split)
    if source is not None:
        fetch, n = source
        if n == 0:
            raise ValueError(f"{info.name}:{info.train_split} is empty")

        def example(k):  # k: this process's running example count → its global position
            pos = (k // local_b) * big_b + pi * local_b + k % local_b
            epoch, i = pos // n, pos % n
            index = tf.random.experimental.index_shuffle(i, tf.stack([seed_t, epoch]), tf.constant(n - 1, tf.int64))
            return fn(epoch, index, fetch(index))

        ds = tf.data.Dataset.range(int(start_step) * local_b, np.iinfo(np.int64).max)
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        records, n = read_split(builder, info.train_split, 0, 1)
        if n == 0:
            raise ValueError(f"{info.name}:{info.train_split} is empty")
        buffer = int(max(1, min(int(_get(config, "shuffle_buffer", 10_000)), n)))
        start = int(start_step) * big_b
        epoch0, offset = divmod(start, n)
        indexed = records.enumerate()

        def epoch_ds(epoch):
            shuffled = indexed.shuffle(buffer, seed=seed_t * 1_000_003 + epoch, reshuffle_each_iteration=False)
            return shuffled.map(lambda i, ex: (epoch, i, ex))

        ds = tf.data.Dataset.range(epoch0, np.iinfo(np.int64).max).flat_map(epoch_ds).skip(offset)
        # Keep this process's rows of every global batch, before anything is decoded.
        ds = ds.enumerate(start).filter(lambda pos, _: (pos % big_b) // local_b == pi).map(lambda _, e: e)
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    if info.name.startswith("folder:"):  # a file that passed the start check but fails to decode: skip it
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(local_b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()


def eval_example_fn(config: Any, info: DatasetInfo, *, image_size: int, channels: int,
                    mean: Sequence[float], std: Sequence[float], mode: str = "center",
                    size: int | None = None, crop_ratio: float | None = None, normalize: bool = True):
    """``{"image": bytes, "label"} → {"image", "label", "mask"}`` evaluation transform (uint8
    pixels when ``normalize`` is False, else normalised float32)."""
    if mode not in _EVAL_MODES:
        raise ValueError(f"eval mode {mode!r} not in {_EVAL_MODES}")
    if mode == "full" and not size:
        raise ValueError('eval mode "full" needs size')
    ratio = default_crop_ratio(config, info) if crop_ratio is None else crop_ratio
    mirror = bool(_get(config, "random_flip", True))  # no test-time flips where training has none

    def fn(ex):
        img = pp.convert_channels(pp.decode(ex["image"], info.channels), channels)
        if mode == "center":
            img = pp.resize_center_crop(img, image_size, ratio)
            img.set_shape([image_size, image_size, channels])
        elif mode == "10crop":
            side = max(image_size, int(round(image_size / ratio)))
            img = pp.ten_crop(pp.resize_shorter(img, side), image_size, mirror)
            img.set_shape([10 if mirror else 5, image_size, image_size, channels])
        else:
            img = pp.resize_center_crop(img, size, 1.0)
            img.set_shape([size, size, channels])
        return {"image": _output(img, normalize, mean, std), "label": tf.cast(ex["label"], tf.int32),
                "mask": tf.constant(1.0, tf.float32)}

    return fn


def eval_iterator(config: Any, info: DatasetInfo, *, image_size: int, channels: int, mean: Sequence[float],
                  std: Sequence[float], global_batch_size: int, mode: str = "center", size: int | None = None,
                  data_dir: str | None = None, process_index: int | None = None,
                  process_count: int | None = None, crop_ratio: float | None = None,
                  normalize: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """One pass over this process's shard of the eval split, padded to full batches.

    Yields ``{"image", "label" int32 (b,), "mask" float32 (b,)}`` (mask 0 on padding); image
    (normalised float32, or uint8 pixels when ``normalize`` is False) is ``(b, H, W, C)`` for
    "center" and "full" (``size``×``size``), ``(b, 10, H, W, C)`` for "10crop" (``(b, 5, …)``
    without ``random_flip``: no mirrored crops). Every process
    yields the same number of batches (needed for collective evaluation steps):
    ``ceil(ceil(num_eval / process_count) / b)``.
    """
    pi, pc = _processes(process_index, process_count)
    local_b = _local_batch(global_batch_size, pc)
    root = data_dir if data_dir is not None else info.data_dir
    ratio = default_crop_ratio(config, info) if crop_ratio is None else crop_ratio
    key = (info.name, root, info.eval_split, pi, pc, local_b, image_size, channels, tuple(mean), tuple(std), mode,
           size, ratio, normalize, bool(_get(config, "random_flip", True)))
    ds = _EVAL_DATASETS.get(key)
    if ds is None:
        builder = get_builder(info.name, root)
        shard, n = read_split(builder, info.eval_split, pi, pc)
        total = n if pc == 1 else (split_size(builder, info.eval_split) or info.num_eval)
        num_batches = math.ceil(math.ceil(total / pc) / local_b)
        fn = eval_example_fn(config, info, image_size=image_size, channels=channels, mean=mean, std=std,
                             mode=mode, size=size, crop_ratio=ratio, normalize=normalize)
        ds = shard.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        small = info.image_size <= _CACHE_EVAL_SIDE and not info.name.startswith("folder:")
        if small:  # digits/MNIST/CIFAR: decoded once (≤ 30 MB), the pipeline kept for the next pass
            ds = ds.cache()
        num_pad = num_batches * local_b - n
        if num_pad > 0:
            pad = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec)
            ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat(num_pad))
        ds = ds.batch(local_b, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(_options())
        if small:
            _EVAL_DATASETS[key] = ds
    return ds.as_numpy_iterator()


# Eval pipelines of the small TFDS datasets by everything that defines them: a run evaluates
# every epoch, and building the reader and tracing the map function again each time cost more
# than a digits eval. (Folder and ImageNet pipelines are built per pass: files may change.)
_EVAL_DATASETS: dict[tuple, tf.data.Dataset] = {}
_CACHE_EVAL_SIDE = 64  # eval splits of datasets with images up to this side are cached decoded


class CropStream(NamedTuple):
    """A multi-crop eval pass streamed in chunks of crops (:func:`eval_crop_stream`)."""

    batches: Iterator[dict[str, np.ndarray]]
    num_examples: int  # this process's real examples (their ``example`` indices are 0..n−1)
    num_chunks: int  # batches yielded: the same on every process
    crops_per_example: int


def eval_crop_stream(config: Any, info: DatasetInfo, *, mode: str, sides: Sequence[int], image_size: int,
                     channels: int, mean: Sequence[float], std: Sequence[float], chunk_size: int,
                     max_examples: int | None = None, data_dir: str | None = None,
                     process_index: int | None = None, process_count: int | None = None) -> CropStream:
    """This process's eval examples as a stream of their ``mode`` crops ("144crop",
    "multicrop150"; see :func:`preprocess.multi_scale_crops`), ``chunk_size`` crops per batch.

    Batches are ``{"image" (chunk, H, W, C), "example" int32, "label" int32, "mask" float32}``:
    each crop names its example, so the caller averages softmax outputs per example. Memory
    stays bounded whatever the crop count: a batch holds ``chunk_size`` crops, and crops are
    made one scale of one image at a time. ``max_examples`` keeps the first examples of the
    shard (``steps_per_eval`` × batch: the examples the other modes see). Every process yields
    ``num_chunks`` batches (padding crops have mask 0).
    """
    if mode not in pp.MULTI_SCALE_CROPS:
        raise ValueError(f"crop mode {mode!r} not in {tuple(pp.MULTI_SCALE_CROPS)}")
    if chunk_size < 1 or any(int(s) < image_size for s in sides):
        raise ValueError(f"need chunk_size ≥ 1 and every side ≥ {image_size}, got {chunk_size}, {tuple(sides)}")
    pi, pc = _processes(process_index, process_count)
    builder = get_builder(info.name, data_dir if data_dir is not None else info.data_dir)
    shard, n = read_split(builder, info.eval_split, pi, pc)
    per_process = math.ceil((n if pc == 1 else (split_size(builder, info.eval_split) or info.num_eval)) / pc)
    if max_examples is not None:
        shard, n, per_process = shard.take(max_examples), min(n, max_examples), min(per_process, max_examples)
    per_side_fn, per_side = pp.MULTI_SCALE_CROPS[mode]
    mirror = bool(_get(config, "random_flip", True))  # no test-time flips where training has none
    per_side = per_side if mirror else per_side // 2
    k = per_side * len(sides)
    num_chunks = math.ceil(per_process * k / chunk_size)
    sides_t = tf.constant([int(s) for s in sides], tf.int32)

    def decode(i, ex):
        img = pp.convert_channels(pp.decode(ex["image"], info.channels), channels)
        return tf.cast(i, tf.int32), img, tf.cast(ex["label"], tf.int32)

    def crops(i, img, label):
        def one_side(side):
            out = per_side_fn(pp.resize_shorter(img, side), image_size, mirror=mirror)
            out.set_shape([per_side, image_size, image_size, channels])
            return pp.normalize(out, mean, std)

        scales = tf.data.Dataset.from_tensor_slices(sides_t).map(one_side).unbatch()
        return scales.map(lambda c: {"image": c, "example": i, "label": label, "mask": tf.constant(1.0)})

    ds = shard.enumerate().map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.interleave(crops, cycle_length=4, block_length=per_side, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True)
    num_pad = num_chunks * chunk_size - n * k
    if num_pad > 0:
        pad = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec)
        ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat(num_pad))
    ds = ds.batch(chunk_size, drop_remainder=True).prefetch(2)
    return CropStream(ds.with_options(_options()).as_numpy_iterator(), n, num_chunks, k)
