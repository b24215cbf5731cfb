"""AutoAugment and RandAugment as TensorFlow ops on uint8 HWC images (1 or 3 channels).

* AutoAugment (Cubuk et al. 2019, "AutoAugment: Learning Augmentation Policies from Data"):
  :data:`IMAGENET_POLICY` is the ImageNet policy of the appendix (Table 9): 25 sub-policies
  of two ``(op, probability, magnitude)`` steps. Per image one sub-policy is drawn
  uniformly and each of its steps is applied with its probability. :data:`SVHN_POLICY` is the
  policy the paper searched on reduced SVHN (its appendix's SVHN table), the policy for digits:
  mostly shears, inversions and histogram ops, no flips ("horizontal flipping ... is an
  effective data augmentation method on CIFAR10, but not on MNIST", Sec. 1).
* RandAugment (Cubuk et al. 2020, "RandAugment", Sec. 3): ``num_ops`` operations drawn
  uniformly with replacement from the paper's 14 (:data:`RANDAUGMENT_OPS`, identity
  included), each applied with the same magnitude.

Magnitudes are on the 0–10 scale of both papers (:data:`MAX_LEVEL`; AutoAugment "discretize[s]
the range of magnitudes into 10 values (uniform spacing)", its policies use 0–9; RandAugment
Sec. 3: "an integer scale from 0 to 10"). A magnitude ``m`` is a position in the op's range in
AutoAugment's Table 1, ``value = lo + (hi − lo)·m/10``, which is also what the authors'
reference TF code does (tensorflow/tpu, ``models/official/efficientnet/autoaugment.py``, the
code the ImageNet policy was searched with: ``level / _MAX_LEVEL`` scaling, enhance factor
``(level / 10)·1.8 + 0.1``, solarize threshold ``(level / 10)·256``):

==========================================  ==============  =======================================
op                                          Table 1 range   argument at magnitude ``m``
==========================================  ==============  =======================================
Color, Contrast, Brightness, Sharpness      [0.1, 1.9]      factor ``0.1 + 1.8·m/10`` (m = 5: identity)
Solarize                                    [0, 256]        threshold ``⌊256·m/10⌋`` (m = 10: identity)
Posterize                                   [4, 8] bits     bits ``4 + ⌊4·m/10⌋`` (m = 10: identity)
Rotate                                      [−30, 30]°      ``±30·m/10`` degrees
ShearX, ShearY                              [−0.3, 0.3]     ``±0.3·m/10``
TranslateX, TranslateY                      [−150, 150] px  ``±150/331·m/10`` of the width / height
Cutout                                      [0, 60] px      side ``round(60/331·m/10·min(H, W))``
SolarizeAdd (reference code, not Table 1)   [0, 110]        add ``⌊110·m/10⌋`` to pixels < 128
==========================================  ==============  =======================================

So a magnitude is not a strength: Table 9's ``("Color", 0.4, 0)`` desaturates to factor 0.1
(nearly grey), ``("Solarize", 0.6, 0)`` would invert every pixel, and magnitude 10 leaves
Solarize and Posterize images unchanged. Signed ops (rotate, shear, translate) take
``|value| = max·m/10`` with a random sign (reference code; the paper's symmetric ranges), so
their magnitude 0 is the identity; the enhance ops have no random sign (reference code).
Integer arguments are rounded down like the reference code's ``int()``; the cutout side is
rounded to the nearest pixel. RandAugment uses the same mapping (its paper reuses AutoAugment's
operations and ranges; its reference ``distort_image_with_randaugment`` calls the same
``level_to_arg``), so e.g. its magnitude 9 means colour factors 1.72, 7-bit posterize and
solarize threshold 230.

Where the reference code departs from Table 1 we follow the paper: Posterize there keeps
``int(4·m/10)`` ∈ [0, 4] bits (magnitude 0 gives a black image), contradicting the paper's
[4, 8]; translate and cutout there use fixed pixel constants, here the paper's pixels of a
331-px image scaled to the image size.

Randomness is stateless: every random choice is derived from a ``seed`` of shape ``(2,)``,
as in :mod:`train.data.preprocess`. Geometric ops use nearest-neighbour sampling and fill
uncovered pixels with grey (128).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import tensorflow as tf

FILL = 128  # grey, for pixels that geometric ops and cutout leave uncovered
MAX_LEVEL = 10.0

# (op, probability, magnitude): AutoAugment appendix Table 9, ImageNet, sub-policies 0–24.
# Magnitude None: the op has none.
IMAGENET_POLICY: tuple[tuple[tuple[str, float, int | None], ...], ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

# AutoAugment appendix, the policy found on reduced SVHN (25 sub-policies, same magnitude scale).
# Transcribed from the paper's table as torchvision (transforms/autoaugment.py,
# AutoAugmentPolicy.SVHN) lists it; not re-read from the PDF here.
SVHN_POLICY: tuple[tuple[tuple[str, float, int | None], ...], ...] = (
    (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
    (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
    (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
    (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
    (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
    (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
    (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
    (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
    (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
    (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
    (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
    (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
    (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
    (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
    (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
    (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
    (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
    (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
    (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
)

# RandAugment Sec. 3: the 14 transformations it samples from.
RANDAUGMENT_OPS = ("Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Posterize",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY")


# ------------------------------------------------------------------------------ helpers


def _to_float(img: tf.Tensor) -> tf.Tensor:
    return tf.cast(img, tf.float32)


def _to_uint8(x: tf.Tensor) -> tf.Tensor:
    """Round and saturate float pixel values to uint8."""
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def _blend(degenerate: tf.Tensor, img: tf.Tensor, factor) -> tf.Tensor:
    """``degenerate + factor·(img − degenerate)`` on uint8 images (PIL ImageEnhance's rule):
    factor 0 gives ``degenerate``, 1 the image, > 1 extrapolates."""
    d = _to_float(degenerate)
    return _to_uint8(d + tf.cast(factor, tf.float32) * (_to_float(img) - d))


def _grey(img: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma of an RGB image as float, shape ``(H, W, 1)``; a 1-channel image itself."""
    if img.shape[-1] == 1:
        return _to_float(img)
    return tf.image.rgb_to_grayscale(_to_float(img))


def _transform(img: tf.Tensor, matrix) -> tf.Tensor:
    """Projective transform: output pixel ``(x, y)`` samples input ``(a0·x + a1·y + a2,
    b0·x + b1·y + b2)`` (pixel indices, x = column), nearest neighbour, grey outside."""
    m = tf.reshape(tf.cast(tf.stack(matrix), tf.float32), [1, 6])
    m = tf.concat([m, tf.zeros([1, 2], tf.float32)], axis=1)
    shape = tf.shape(img)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=_to_float(img)[None], transforms=m, output_shape=shape[:2],
        fill_value=tf.constant(float(FILL)), interpolation="NEAREST", fill_mode="CONSTANT")[0]
    out = _to_uint8(out)
    out.set_shape(img.shape)
    return out


def _centre(img: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.cast(tf.shape(img), tf.float32)
    return (shape[1] - 1.0) / 2.0, (shape[0] - 1.0) / 2.0


# ---------------------------------------------------------------------------------- ops


def identity(img: tf.Tensor) -> tf.Tensor:
    """The image unchanged."""
    return tf.identity(img)


def invert(img: tf.Tensor) -> tf.Tensor:
    """``255 − x``."""
    return tf.cast(255, img.dtype) - img


def auto_contrast(img: tf.Tensor) -> tf.Tensor:
    """Per channel, stretch ``[min, max]`` linearly to ``[0, 255]`` (constant channels kept)."""
    x = _to_float(img)
    lo = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
    offset = tf.where(hi > lo, lo, 0.0)
    return _to_uint8((x - offset) * scale)


def _equalize_channel(ch: tf.Tensor) -> tf.Tensor:
    values = tf.cast(tf.reshape(ch, [-1]), tf.int32)
    hist = tf.math.bincount(values, minlength=256, maxlength=256, dtype=tf.int32)
    # The most frequent grey level's own count never moves a pixel up: spread the rest of the
    # pixels over 255 steps, as PIL's ImageOps.equalize does.
    last = tf.gather(hist, tf.reduce_max(tf.where(hist > 0)))
    step = (tf.reduce_sum(hist) - last) // 255
    cdf_below = tf.cumsum(hist, exclusive=True)  # pixels strictly darker than each level
    lut = tf.minimum((cdf_below + step // 2) // tf.maximum(step, 1), 255)
    out = tf.cast(tf.gather(lut, tf.cast(ch, tf.int32)), tf.uint8)
    return tf.cond(step > 0, lambda: out, lambda: tf.cast(ch, tf.uint8))


def equalize(img: tf.Tensor) -> tf.Tensor:
    """Per-channel histogram equalisation: each grey level maps to 255 × the fraction of
    pixels darker than it (the brightest level's own count excluded; flat images kept)."""
    out = tf.stack([_equalize_channel(img[..., c]) for c in range(img.shape[-1])], axis=-1)
    out.set_shape(img.shape)
    return out


def posterize(img: tf.Tensor, bits) -> tf.Tensor:
    """Keep the ``bits`` most significant bits of every pixel (``bits`` in 0–8)."""
    shift = tf.cast(8 - tf.cast(bits, tf.int32), tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(img, shift), shift)


def solarize(img: tf.Tensor, threshold) -> tf.Tensor:
    """Invert the pixels ``≥ threshold`` (0 inverts everything, 256 nothing)."""
    x = tf.cast(img, tf.int32)
    return tf.cast(tf.where(x < tf.cast(threshold, tf.int32), x, 255 - x), tf.uint8)


def solarize_add(img: tf.Tensor, addition, threshold=128) -> tf.Tensor:
    """Add ``addition`` (saturating) to the pixels ``< threshold``."""
    x = tf.cast(img, tf.int32)
    added = tf.clip_by_value(x + tf.cast(addition, tf.int32), 0, 255)
    return tf.cast(tf.where(x < tf.cast(threshold, tf.int32), added, x), tf.uint8)


def color(img: tf.Tensor, factor) -> tf.Tensor:
    """Saturation: blend with the image's grey version (0 → grey, 1 → unchanged)."""
    grey = tf.broadcast_to(_grey(img), tf.shape(img))
    return _blend(grey, img, factor)


def contrast(img: tf.Tensor, factor) -> tf.Tensor:
    """Blend with a flat image at the mean luma (0 → flat grey, 1 → unchanged)."""
    mean = tf.reduce_mean(_grey(img))
    return _blend(tf.fill(tf.shape(img), mean), img, factor)


def brightness(img: tf.Tensor, factor) -> tf.Tensor:
    """Blend with black: ``factor·x`` (0 → black, 1 → unchanged)."""
    return _blend(tf.zeros_like(img), img, factor)


def sharpness(img: tf.Tensor, factor) -> tf.Tensor:
    """Blend with a smoothed image (3×3 kernel with centre 5, others 1, / 13; the border
    pixels stay) — 0 → smoothed, 1 → unchanged, > 1 sharpened."""
    x = _to_float(img)
    channels = img.shape[-1]
    k = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    k = tf.tile(k[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(x[None], k, strides=[1, 1, 1, 1], padding="VALID")[0]
    smooth = tf.round(smooth)
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    shape = tf.shape(img)
    interior = tf.pad(tf.ones(shape[:2] - 2, tf.bool), [[1, 1], [1, 1]])[..., None]
    degenerate = tf.where(interior, smooth, x)
    return _blend(degenerate, img, factor)


def rotate(img: tf.Tensor, degrees) -> tf.Tensor:
    """Rotate counter-clockwise by ``degrees`` about the image centre."""
    theta = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    c, s = tf.cos(theta), tf.sin(theta)
    cx, cy = _centre(img)
    # Output pixel q samples input p = c + R(q − c) with R = [[cos, −sin], [sin, cos]]
    # (image y points down, so this turns the content counter-clockwise on screen).
    return _transform(img, [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy])


def shear_x(img: tf.Tensor, shear) -> tf.Tensor:
    """Horizontal shear about the centre row: row ``y`` shifts by ``−shear·(y − cy)`` px."""
    shear = tf.cast(shear, tf.float32)
    _, cy = _centre(img)
    return _transform(img, [1.0, shear, -shear * cy, 0.0, 1.0, 0.0])


def shear_y(img: tf.Tensor, shear) -> tf.Tensor:
    """Vertical shear about the centre column: column ``x`` shifts by ``−shear·(x − cx)`` px."""
    shear = tf.cast(shear, tf.float32)
    cx, _ = _centre(img)
    return _transform(img, [1.0, 0.0, 0.0, shear, 1.0, -shear * cx])


def translate_x(img: tf.Tensor, pixels) -> tf.Tensor:
    """Move the content ``pixels`` to the right (negative: left)."""
    return _transform(img, [1.0, 0.0, -tf.cast(pixels, tf.float32), 0.0, 1.0, 0.0])


def translate_y(img: tf.Tensor, pixels) -> tf.Tensor:
    """Move the content ``pixels`` down (negative: up)."""
    return _transform(img, [1.0, 0.0, 0.0, 0.0, 1.0, -tf.cast(pixels, tf.float32)])


def cutout(img: tf.Tensor, size, seed: tf.Tensor) -> tf.Tensor:
    """Grey out a ``size``×``size`` square centred on a uniformly drawn pixel (clipped to
    the image; DeVries & Taylor 2017)."""
    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    cy = tf.random.stateless_uniform([], seed, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 1), 0, w,
                                     dtype=tf.int32)
    size = tf.cast(size, tf.int32)
    top, left = tf.maximum(cy - size // 2, 0), tf.maximum(cx - size // 2, 0)
    bottom, right = tf.minimum(cy - size // 2 + size, h), tf.minimum(cx - size // 2 + size, w)
    rows = tf.range(h)[:, None]
    cols = tf.range(w)[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return tf.where(inside[..., None], tf.cast(FILL, img.dtype), img)


# ------------------------------------------------------------- magnitudes → arguments

# Op name → fn(img, frac, sign, seed) with frac = magnitude / 10 ∈ [0, 1] and sign ∈ {−1, 1}
# (used by the signed ops only). Ranges: AutoAugment Table 1 (see the module docstring).
_OpFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]

ENHANCE_RANGE = (0.1, 1.9)  # Color, Contrast, Brightness, Sharpness factors
POSTERIZE_RANGE = (4, 8)  # bits kept
SOLARIZE_RANGE = (0, 256)  # threshold
ROTATE_MAX = 30.0  # degrees
SHEAR_MAX = 0.3
TRANSLATE_MAX = 150.0 / 331.0  # of the image side
CUTOUT_MAX = 60.0 / 331.0  # of the shorter image side
SOLARIZE_ADD_MAX = 110  # reference code only


def _lerp(lo: float, hi: float, frac: tf.Tensor) -> tf.Tensor:
    """``lo + (hi − lo)·frac``: magnitude 0 → ``lo``, 10 → ``hi``."""
    return lo + (hi - lo) * frac


def _lerp_floor(lo: int, hi: int, frac: tf.Tensor) -> tf.Tensor:
    """:func:`_lerp` rounded down to an int32 (the reference code's ``int()``)."""
    return tf.cast(tf.floor(_lerp(float(lo), float(hi), frac)), tf.int32)


def _side(img: tf.Tensor, axis: int) -> tf.Tensor:
    return tf.cast(tf.shape(img)[axis], tf.float32)


def _cutout_side(img: tf.Tensor, frac: tf.Tensor) -> tf.Tensor:
    short = tf.minimum(_side(img, 0), _side(img, 1))
    return tf.cast(tf.round(frac * CUTOUT_MAX * short), tf.int32)


_OPS: dict[str, _OpFn] = {
    "Identity": lambda img, f, s, seed: identity(img),
    "AutoContrast": lambda img, f, s, seed: auto_contrast(img),
    "Equalize": lambda img, f, s, seed: equalize(img),
    "Invert": lambda img, f, s, seed: invert(img),
    "Rotate": lambda img, f, s, seed: rotate(img, s * ROTATE_MAX * f),
    "Posterize": lambda img, f, s, seed: posterize(img, _lerp_floor(*POSTERIZE_RANGE, f)),
    "Solarize": lambda img, f, s, seed: solarize(img, _lerp_floor(*SOLARIZE_RANGE, f)),
    "SolarizeAdd": lambda img, f, s, seed: solarize_add(img, _lerp_floor(0, SOLARIZE_ADD_MAX, f)),
    "Color": lambda img, f, s, seed: color(img, _lerp(*ENHANCE_RANGE, f)),
    "Contrast": lambda img, f, s, seed: contrast(img, _lerp(*ENHANCE_RANGE, f)),
    "Brightness": lambda img, f, s, seed: brightness(img, _lerp(*ENHANCE_RANGE, f)),
    "Sharpness": lambda img, f, s, seed: sharpness(img, _lerp(*ENHANCE_RANGE, f)),
    "ShearX": lambda img, f, s, seed: shear_x(img, s * SHEAR_MAX * f),
    "ShearY": lambda img, f, s, seed: shear_y(img, s * SHEAR_MAX * f),
    "TranslateX": lambda img, f, s, seed: translate_x(img, s * f * TRANSLATE_MAX * _side(img, 1)),
    "TranslateY": lambda img, f, s, seed: translate_y(img, s * f * TRANSLATE_MAX * _side(img, 0)),
    "Cutout": lambda img, f, s, seed: cutout(img, _cutout_side(img, f), seed),
}
OPS = tuple(_OPS)


def apply_op(img: tf.Tensor, name: str, magnitude, seed: tf.Tensor) -> tf.Tensor:
    """Apply op ``name`` at ``magnitude`` (0–10 scale, mapped linearly onto the op's range in
    AutoAugment's Table 1; see the module docstring) to a uint8 HWC image; the signed ops
    (rotate, shear, translate) draw their sign, cutout its position, from ``seed``."""
    if name not in _OPS:
        raise ValueError(f"unknown augmentation op {name!r}; known: {', '.join(OPS)}")
    frac = tf.cast(magnitude, tf.float32) / MAX_LEVEL
    s_sign, s_op = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    sign = tf.where(tf.random.stateless_uniform([], s_sign) < 0.5, -1.0, 1.0)
    out = _OPS[name](img, frac, sign, s_op)
    out.set_shape(img.shape)
    return out


def _check(img: tf.Tensor) -> None:
    if img.dtype != tf.uint8 or img.shape.rank != 3:
        raise ValueError(f"expected a uint8 HWC image, got {img.dtype.name} of shape {img.shape}")


def _apply_one_of(img: tf.Tensor, names: Sequence[str], index, magnitude, seed: tf.Tensor) -> tf.Tensor:
    """``apply_op(img, names[index], magnitude, seed)`` with a tensor ``index``."""
    if len(names) == 1:
        return apply_op(img, names[0], magnitude, seed)
    out = tf.switch_case(index, [lambda n=n: apply_op(img, n, magnitude, seed) for n in names])
    out.set_shape(img.shape)
    return out


def auto_augment(img: tf.Tensor, seed: tf.Tensor,
                 policy: Sequence[Sequence[tuple[str, float, int | None]]] = IMAGENET_POLICY) -> tf.Tensor:
    """AutoAugment: one sub-policy of ``policy`` drawn uniformly, each of its steps applied
    with its probability at its magnitude (all sub-policies need the same number of steps)."""
    _check(img)
    steps = {len(sub) for sub in policy}
    if len(steps) != 1:
        raise ValueError(f"sub-policies of different lengths {sorted(steps)}")
    names = sorted({name for sub in policy for name, _, _ in sub})
    # (sub-policy, step) tables, so that the graph holds each op once per step, not once per
    # sub-policy (much faster to trace).
    op_index = tf.constant([[names.index(name) for name, _, _ in sub] for sub in policy], tf.int32)
    prob = tf.constant([[p for _, p, _ in sub] for sub in policy], tf.float32)
    magnitude = tf.constant([[m or 0 for _, _, m in sub] for sub in policy], tf.float32)
    s_pick, s_steps = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pick = tf.random.stateless_uniform([], s_pick, 0, len(policy), dtype=tf.int32)
    out = img
    for k in range(steps.pop()):
        s_apply, s_op = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(s_steps, k), 2))
        apply = tf.random.stateless_uniform([], s_apply) < prob[pick, k]
        out = tf.cond(apply, lambda o=out, k=k, s=s_op: _apply_one_of(o, names, op_index[pick, k],
                                                                      magnitude[pick, k], s),
                      lambda o=out: o)
        out.set_shape(img.shape)
    return out


def rand_augment(img: tf.Tensor, seed: tf.Tensor, num_ops: int = 2, magnitude: float = 9.0,
                 ops: Sequence[str] = RANDAUGMENT_OPS) -> tf.Tensor:
    """RandAugment: ``num_ops`` ops drawn uniformly with replacement from ``ops``, each at
    ``magnitude`` (0–10)."""
    _check(img)
    if not 0 <= magnitude <= MAX_LEVEL:
        raise ValueError(f"RandAugment magnitude {magnitude} not in [0, {MAX_LEVEL:g}]")
    out = img
    for i in range(int(num_ops)):
        s_pick, s_op = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(seed, i), 2))
        pick = tf.random.stateless_uniform([], s_pick, 0, len(ops), dtype=tf.int32)
        out = _apply_one_of(out, ops, pick, magnitude, s_op)
    return out


AUGMENTATIONS = ("", "autoaugment", "autoaugment_svhn", "randaugment")
POLICIES = {"autoaugment": IMAGENET_POLICY, "autoaugment_svhn": SVHN_POLICY}


def augment(img: tf.Tensor, kind: str, seed: tf.Tensor, num_ops: int = 2, magnitude: float = 9.0) -> tf.Tensor:
    """``kind`` ``"autoaugment"`` (ImageNet policy), ``"autoaugment_svhn"`` (SVHN policy),
    ``"randaugment"`` or ``""`` (unchanged)."""
    if kind in POLICIES:
        return auto_augment(img, seed, POLICIES[kind])
    if kind == "randaugment":
        return rand_augment(img, seed, num_ops, magnitude)
    if kind == "":
        return img
    raise ValueError(f"auto_augment {kind!r} not in {AUGMENTATIONS}")
