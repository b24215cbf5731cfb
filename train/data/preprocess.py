"""Pure TensorFlow image ops for the input pipeline (one example, HWC, no Python state).

Random ops are stateless (``tf.random.stateless_*`` / ``tf.image.stateless_*``) and take a
``seed`` of shape ``(2,)``: the same seed always gives the same output, which makes the
pipeline exactly resumable. Float images are in [0, 1] until :func:`normalize`; the
pipeline ends in uint8 pixels (:func:`to_uint8`), which the device normalises
(:func:`normalize_uint8` is the same map on the host).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from train import pixels
from train.data import autoaugment

# AlexNet PCA lighting (Krizhevsky et al. 2012, Sec. 4.1): eigen-decomposition of the
# covariance of ImageNet RGB pixels in [0, 1]. Columns of IMAGENET_EIGVEC are the
# eigenvectors, in the order of IMAGENET_EIGVAL.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))
LUMA = pixels.LUMA  # ITU-R 601 luma, as tf.image.rgb_to_grayscale


def split_seed(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """``num`` independent stateless seeds derived from ``seed``."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num))


def decode(encoded: tf.Tensor, channels: int) -> tf.Tensor:
    """Encoded PNG/JPEG/BMP/GIF bytes → float32 HWC image in [0, 1] with ``channels``."""
    img = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    img.set_shape([None, None, channels])
    return tf.image.convert_image_dtype(img, tf.float32)


def resize(img: tf.Tensor, height, width, antialias: bool = True) -> tf.Tensor:
    """Bilinear resize, antialiased when shrinking unless ``antialias`` is False (plain
    bilinear: about 2.5× cheaper, what the TF/flax ImageNet examples do for training crops)."""
    return tf.image.resize(img, tf.stack([height, width]), method="bilinear", antialias=antialias)


def to_uint8(img: tf.Tensor) -> tf.Tensor:
    """Float image in [0, 1] → uint8 pixels (rounded to nearest, clipped)."""
    return tf.cast(tf.round(tf.clip_by_value(img * 255.0, 0.0, 255.0)), tf.uint8)


def normalize_uint8(img: tf.Tensor, mean, std) -> tf.Tensor:
    """uint8 pixels → ``(img / 255 − mean) / std`` as ``img · scale + shift`` (float32), with the
    constants of :func:`train.pixels.pixel_affine`: the same map the jitted steps apply."""
    scale, shift = pixels.pixel_affine(mean, std, img.shape[-1])
    return tf.cast(img, tf.float32) * tf.constant(scale) + tf.constant(shift)


def resize_shorter(img: tf.Tensor, side) -> tf.Tensor:
    """Resize so that the shorter side is ``side``, keeping the aspect ratio."""
    shape = tf.shape(img)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    side = tf.cast(side, tf.float32)
    scale = side / tf.minimum(h, w)
    nh = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), tf.cast(side, tf.int32))
    nw = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), tf.cast(side, tf.int32))
    return resize(img, nh, nw)


def crop(img: tf.Tensor, top, left, height, width) -> tf.Tensor:
    """The window ``[top:top+height, left:left+width]`` (keeps the static channel count)."""
    out = tf.slice(img, tf.stack([top, left, 0]), tf.stack([height, width, -1]))
    out.set_shape([None, None, img.shape[-1]])
    return out


def center_crop(img: tf.Tensor, size: int) -> tf.Tensor:
    """Central ``size``×``size`` window (the image must be at least that large)."""
    shape = tf.shape(img)
    return crop(img, (shape[0] - size) // 2, (shape[1] - size) // 2, size, size)


def resize_center_crop(img: tf.Tensor, size: int, crop_ratio: float = 1.0) -> tf.Tensor:
    """Shorter side → ``size / crop_ratio``, then the central ``size``×``size`` crop."""
    side = max(size, int(round(size / crop_ratio)))
    return center_crop(resize_shorter(img, side), size)


def _sample_window(shape: tf.Tensor, seed: tf.Tensor, area_range: Sequence[float],
                   aspect_ratio_range: Sequence[float], max_attempts: int) -> tuple[tf.Tensor, tf.Tensor]:
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=tuple(aspect_ratio_range),
        area_range=tuple(area_range), max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    return begin, extent


def random_resized_crop(img: tf.Tensor, size: int, seed: tf.Tensor,
                        area_range: Sequence[float] = (0.08, 1.0),
                        aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
                        max_attempts: int = 10, antialias: bool = True) -> tf.Tensor:
    """Inception-style crop: a window with area fraction in ``area_range`` and aspect
    ratio in ``aspect_ratio_range`` (whole image after ``max_attempts`` failures), resized to
    ``size``×``size``."""
    begin, extent = _sample_window(tf.shape(img), seed, area_range, aspect_ratio_range, max_attempts)
    window = crop(img, begin[0], begin[1], extent[0], extent[1])
    return resize(window, size, size, antialias)


def decode_random_resized_crop(encoded: tf.Tensor, channels: int, size: int, seed: tf.Tensor,
                               area_range: Sequence[float] = (0.08, 1.0),
                               aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
                               max_attempts: int = 10, antialias: bool = True,
                               uint8: bool = False) -> tf.Tensor:
    """:func:`decode` then :func:`random_resized_crop`, decoding only the window for JPEGs
    (same window, same pixels; much cheaper for ImageNet-sized photos). With ``uint8`` the
    result is uint8 pixels (:func:`to_uint8`), resized straight from the decoded uint8 window."""

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        begin, extent = _sample_window(shape, seed, area_range, aspect_ratio_range, max_attempts)
        window = tf.image.decode_and_crop_jpeg(encoded, tf.stack([begin[0], begin[1], extent[0], extent[1]]),
                                               channels=channels)
        window.set_shape([None, None, channels])
        if uint8:  # resize works in float on the 0–255 values: no [0, 1] conversion pass
            out = resize(window, size, size, antialias)
            return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)
        return resize(tf.image.convert_image_dtype(window, tf.float32), size, size, antialias)

    def other():
        out = random_resized_crop(decode(encoded, channels), size, seed, area_range, aspect_ratio_range,
                                  max_attempts, antialias)
        return to_uint8(out) if uint8 else out

    out = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    out.set_shape([size, size, channels])
    return out


def random_crop(img: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A uniformly placed ``size``×``size`` window."""
    channels = img.shape[-1]
    return tf.image.stateless_random_crop(img, tf.stack([size, size, channels]), seed=seed)


def scale_jitter_crop(img: tf.Tensor, size: int, seed: tf.Tensor, smin: int, smax: int) -> tf.Tensor:
    """VGG scale jittering: shorter side S ~ U{smin..smax} (at least ``size``), random
    ``size``×``size`` crop."""
    s1, s2 = split_seed(seed, 2)
    side = tf.random.stateless_uniform([], s1, minval=smin, maxval=smax + 1, dtype=tf.int32)
    side = tf.maximum(side, size)
    return random_crop(resize_shorter(img, side), size, s2)


def pad_crop(img: tf.Tensor, padding: int, seed: tf.Tensor) -> tf.Tensor:
    """CIFAR augmentation: zero-pad ``padding`` pixels on each side, random crop back."""
    shape = tf.shape(img)
    padded = tf.pad(img, [[padding, padding], [padding, padding], [0, 0]])
    out = tf.image.stateless_random_crop(padded, tf.stack([shape[0], shape[1], shape[2]]), seed=seed)
    out.set_shape(img.shape)
    return out


def random_flip(img: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Horizontal flip with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(img, seed=seed)


def pca_lighting(img: tf.Tensor, sigma: float, seed: tf.Tensor) -> tf.Tensor:
    """AlexNet PCA lighting: add ``V (α ⊙ λ)`` to every RGB pixel, α ~ N(0, σ²) per image."""
    alpha = tf.random.stateless_normal([3], seed, stddev=sigma)
    eigvec = tf.constant(IMAGENET_EIGVEC, tf.float32)
    delta = tf.linalg.matvec(eigvec, alpha * tf.constant(IMAGENET_EIGVAL, tf.float32))
    return img + delta


def color_jitter(img: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """Brightness, contrast and (RGB only) saturation factors ~ U[1−s, 1+s], clipped to [0, 1]."""
    s1, s2, s3 = split_seed(seed, 3)
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
    img = img * tf.random.stateless_uniform([], s1, lo, hi)
    img = tf.image.stateless_random_contrast(tf.clip_by_value(img, 0.0, 1.0), lo, hi, s2)
    if img.shape[-1] == 3:
        img = tf.image.stateless_random_saturation(tf.clip_by_value(img, 0.0, 1.0), lo, hi, s3)
    return tf.clip_by_value(img, 0.0, 1.0)


def auto_augment(img: tf.Tensor, kind: str, seed: tf.Tensor, num_ops: int = 2,
                 magnitude: float = 9.0) -> tf.Tensor:
    """AutoAugment (ImageNet policy) or RandAugment (``num_ops`` ops at ``magnitude`` of 10)
    on a float image in [0, 1]: quantised to uint8 for the ops, back to float in [0, 1]
    (``kind`` "" returns the image untouched). See :mod:`train.data.autoaugment`."""
    if not kind:
        return img
    u8 = tf.image.convert_image_dtype(tf.clip_by_value(img, 0.0, 1.0), tf.uint8, saturate=True)
    out = autoaugment.augment(u8, kind, seed, num_ops, magnitude)
    return tf.image.convert_image_dtype(out, tf.float32)


def convert_channels(img: tf.Tensor, channels: int) -> tf.Tensor:
    """Grey → RGB by tiling, RGB → grey by luminance; unchanged when already ``channels``
    (any rank, channels last). Tiling keeps the dtype; luminance needs a float image."""
    have = img.shape[-1]
    if have == channels:
        return img
    if have == 1 and channels == 3:
        return tf.tile(img, [1] * (img.shape.rank - 1) + [3])
    if have == 3 and channels == 1:
        if not img.dtype.is_floating:
            img = tf.image.convert_image_dtype(img, tf.float32)
        return tf.reduce_sum(img * tf.constant(LUMA, img.dtype), axis=-1, keepdims=True)
    raise ValueError(f"cannot convert {have} channels to {channels}")


def channel_stats(values, channels: int) -> tf.Tensor:
    """Per-channel mean/std for ``channels``: scalars broadcast; RGB stats → grey by luma."""
    v = tf.reshape(tf.constant(values, tf.float32), [-1])
    n = v.shape[0]
    if n in (1, channels):
        return v
    if n == 3 and channels == 1:
        return tf.reduce_sum(v * tf.constant(LUMA, tf.float32), keepdims=True)
    raise ValueError(f"{n} mean/std values for {channels} channels")


def normalize(img: tf.Tensor, mean, std) -> tf.Tensor:
    """``(img − mean) / std`` per channel (mean/std of [0, 1] pixels)."""
    channels = img.shape[-1]
    return (img - channel_stats(mean, channels)) / channel_stats(std, channels)


def with_mirrors(crops: tf.Tensor, mirror: bool = True) -> tf.Tensor:
    """``crops`` then the same crops flipped left–right; ``crops`` alone when ``mirror`` is
    False (datasets whose mirrored images are other classes, e.g. digits: the trainer's
    ``random_flip`` is off there, and test-time flips would average in glyphs it never saw)."""
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0) if mirror else crops


def ten_crop(img: tf.Tensor, size: int, mirror: bool = True) -> tf.Tensor:
    """AlexNet 10-crop: the four corner and the central ``size`` crops, then each flipped:
    ``(10, size, size, C)`` in the order TL, TR, BL, BR, centre, then the same flipped
    (``(5, …)``, unflipped, when ``mirror`` is False)."""
    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    crops = [crop(img, 0, 0, size, size), crop(img, 0, w - size, size, size),
             crop(img, h - size, 0, size, size), crop(img, h - size, w - size, size, size),
             center_crop(img, size)]
    return with_mirrors(tf.stack(crops), mirror)


# GoogLeNet's 144-crop test (Szegedy et al. 2015, Sec. 7): shorter side resized to 256, 288,
# 320 and 352 for 224×224 crops. VGG's multi-crop test (Simonyan & Zisserman 2015, Sec. 3.2):
# a 5×5 regular grid of crops with flips at each test scale Q (50 crops per scale).
GOOGLENET_SIDES = (256, 288, 320, 352)
CROP_REFERENCE = 224  # the crop size the papers' sides are given for
VGG_GRID = 5


def scaled_sides(sides: Sequence[int], size: int, reference: int = CROP_REFERENCE) -> tuple[int, ...]:
    """``sides`` (shorter-side lengths given for ``reference``-pixel crops) for ``size``-pixel
    crops: ``round(side · size / reference)``, at least ``size``. For 224 they are unchanged;
    a 112-pixel model tests GoogLeNet's 144 crops at 128, 144, 160 and 176."""
    return tuple(max(int(size), int(round(s * size / reference))) for s in sides)


def square_crops(img: tf.Tensor, size: int, mirror: bool = True) -> tf.Tensor:
    """GoogLeNet's 36 crops of one resized image: its left, centre and right squares (top, centre
    and bottom for a portrait image; side = the shorter side); from each square the four corner
    and the central ``size`` crops and the whole square resized to ``size``, then those six
    mirrored. ``(36, size, size, C)`` ordered by square, then TL, TR, BL, BR, centre, whole,
    then the same six flipped left–right (not when ``mirror`` is False: ``(18, …)``). The centre
    square and crop start at ``(L − l) // 2``."""
    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    side = tf.minimum(h, w)
    extra = tf.maximum(h, w) - side
    portrait = h > w
    far = side - size
    out = []
    for offset in (0, extra // 2, extra):
        square = crop(img, tf.where(portrait, offset, 0), tf.where(portrait, 0, offset), side, side)
        six = [crop(square, 0, 0, size, size), crop(square, 0, far, size, size),
               crop(square, far, 0, size, size), crop(square, far, far, size, size),
               crop(square, far // 2, far // 2, size, size), resize(square, size, size)]
        out.append(with_mirrors(tf.stack(six), mirror))
    return tf.concat(out, axis=0)


def grid_crops(img: tf.Tensor, size: int, grid: int = VGG_GRID, mirror: bool = True) -> tf.Tensor:
    """VGG's multi-crop at one scale: a ``grid``×``grid`` regular grid of ``size`` crops spanning
    the image, then each flipped: ``(2·grid², size, size, C)``, row-major, the flipped ones last
    (``(grid², …)`` when ``mirror`` is False).
    Crop ``i`` along an axis of length ``L`` starts at ``i·(L − size)/(grid − 1)`` rounded to
    the nearest pixel (halves up)."""
    shape = tf.shape(img)
    h, w = shape[0], shape[1]

    def starts(length):
        return [(2 * i * (length - size) + grid - 1) // (2 * (grid - 1)) for i in range(grid)]

    crops = tf.stack([crop(img, top, left, size, size) for top in starts(h) for left in starts(w)])
    return with_mirrors(crops, mirror)


# name: (crops of one resized image, how many with their mirrors)
MULTI_SCALE_CROPS = {"144crop": (square_crops, 36), "multicrop150": (grid_crops, 2 * VGG_GRID ** 2)}


def multi_scale_crops(img: tf.Tensor, size: int, sides: Sequence[int], mode: str,
                      mirror: bool = True) -> tf.Tensor:
    """All crops of ``mode`` ("144crop" or "multicrop150") of ``img``: for each shorter side in
    ``sides`` (each ≥ ``size``) the image is resized (:func:`resize_shorter`) and cropped;
    ``(len(sides) · per-scale count, size, size, C)``. The eval pipeline streams the same crops
    one scale at a time instead (:func:`train.data.pipeline.eval_crop_stream`)."""
    fn, _ = MULTI_SCALE_CROPS[mode]
    return tf.concat([fn(resize_shorter(img, side), size, mirror=mirror) for side in sides], axis=0)
