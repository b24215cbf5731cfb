"""AutoAugment / RandAugment ops on a real (downsized) photo: dtype and shape, what each op
does, the ImageNet policy table, tf.function / tf.data use and the config path through the
training transform."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from train.configs.default import get_config  # noqa: E402
from train.data import autoaugment as aa  # noqa: E402
from train.data.builders import DatasetInfo  # noqa: E402
from train.data.pipeline import train_example_fn  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """sklearn's china.jpg downsized to 54×80×3 uint8."""
    from sklearn.datasets import load_sample_images

    img = load_sample_images().images[0]
    return tf.cast(tf.round(tf.image.resize(img, (54, 80), antialias=True)), tf.uint8).numpy()


@pytest.fixture(scope="module")
def dull(photo) -> np.ndarray:
    """A low-contrast version: values squeezed into [100, 131]."""
    return (photo // 8 + 100).astype(np.uint8)


def _seed(i: int) -> tf.Tensor:
    return tf.constant([i, 11], tf.int64)


@pytest.mark.parametrize("name", aa.OPS)
def test_every_op_keeps_uint8_shape(photo, name):
    grey = photo[..., :1]
    for img in (photo, grey):
        for m in (0, 4, 10):
            out = aa.apply_op(tf.constant(img), name, m, _seed(m))
            assert out.dtype == tf.uint8 and tuple(out.shape) == img.shape, (name, m)
    # Spatial size unknown at trace time (as after a centre crop in the pipeline).
    fn = tf.function(lambda x: aa.apply_op(x, name, 7, _seed(0)),
                     input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    assert fn(tf.constant(photo)).shape == photo.shape


# (op, magnitude at which it is the identity, magnitudes at which it is not): AutoAugment
# Table 1 ranges mapped linearly onto 0–10, signed ops with a random sign.
_IDENTITY_AT = [(name, 0, (5, 10)) for name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY",
                                                  "Cutout", "SolarizeAdd")]
_IDENTITY_AT += [(name, 5, (0, 10)) for name in ("Color", "Contrast", "Brightness", "Sharpness")]  # factor 1
_IDENTITY_AT += [("Solarize", 10, (0, 5)), ("Posterize", 10, (0, 5))]  # threshold 256, 8 bits


@pytest.mark.parametrize(("name", "identity_at", "others"), _IDENTITY_AT)
def test_magnitude_where_op_is_identity(photo, name, identity_at, others):
    for seed in range(2):
        out = aa.apply_op(tf.constant(photo), name, identity_at, _seed(seed)).numpy()
        np.testing.assert_array_equal(out, photo)
        for m in others:
            assert not np.array_equal(aa.apply_op(tf.constant(photo), name, m, _seed(seed)).numpy(), photo), m


@pytest.mark.parametrize("name", ["Color", "Contrast", "Brightness", "Sharpness"])
def test_enhance_magnitude_is_factor_in_paper_range(photo, name):
    """Factor 0.1 + 1.8·m/10 over Table 1's [0.1, 1.9], no random sign (reference code)."""
    x = tf.constant(photo)
    op = {"Color": aa.color, "Contrast": aa.contrast, "Brightness": aa.brightness, "Sharpness": aa.sharpness}[name]
    for m in (0, 3, 10):
        expected = op(x, 0.1 + 1.8 * m / 10).numpy().astype(int)
        for seed in range(3):  # the same for every seed: no sign
            out = aa.apply_op(x, name, m, _seed(seed)).numpy().astype(int)
            assert np.abs(out - expected).max() <= 1, (m, seed)  # float32 vs float64 factor rounding


def test_color_magnitude_zero_is_nearly_grey(photo):
    """Table 9's ("Color", 0.4, 0) desaturates to factor 0.1: the spread between the channels
    of every pixel shrinks to a tenth (± rounding)."""
    spread = np.ptp(photo.astype(int), axis=-1)
    assert spread.mean() > 20  # a colourful photo, so the check means something
    out = aa.apply_op(tf.constant(photo), "Color", 0, _seed(0)).numpy()
    assert np.abs(np.ptp(out.astype(int), axis=-1) - 0.1 * spread).max() <= 1.0
    saturated = aa.apply_op(tf.constant(photo), "Color", 10, _seed(0)).numpy()  # factor 1.9
    assert np.ptp(saturated.astype(int), axis=-1).mean() > 1.5 * spread.mean()


def test_solarize_and_posterize_magnitudes(photo):
    """Solarize threshold ⌊256·m/10⌋ (0 inverts all, 10 none); Posterize 4 + ⌊4·m/10⌋ bits."""
    x = tf.constant(photo)

    def solarized(t):
        return np.where(photo < t, photo, 255 - photo)

    for m, threshold in ((0, 0), (3, 76), (5, 128), (9, 230), (10, 256)):
        np.testing.assert_array_equal(aa.apply_op(x, "Solarize", m, _seed(m)).numpy(), solarized(threshold), m)
    np.testing.assert_array_equal(aa.apply_op(x, "Solarize", 0, _seed(0)).numpy(), 255 - photo)
    for m, bits in ((0, 4), (2, 4), (3, 5), (5, 6), (8, 7), (10, 8)):
        out = aa.apply_op(x, "Posterize", m, _seed(m)).numpy()
        mask = (0xFF << (8 - bits)) & 0xFF
        np.testing.assert_array_equal(out, photo & mask, m)
    assert not (aa.apply_op(x, "Posterize", 0, _seed(0)).numpy() & 0x0F).any()  # low 4 bits zero
    assert (photo & 0x0F).any()


@pytest.mark.parametrize(("name", "fn", "max_value"), [
    ("Rotate", aa.rotate, 30.0), ("ShearX", aa.shear_x, 0.3), ("ShearY", aa.shear_y, 0.3)])
def test_signed_op_magnitude_with_random_sign(photo, name, fn, max_value):
    """|value| = max·m/10 with a random sign: every output is the op at +value or −value,
    and both signs occur."""
    x = tf.constant(photo)
    for m in (5, 10):
        value = max_value * m / 10
        plus, minus = fn(x, value).numpy(), fn(x, -value).numpy()
        assert not np.array_equal(plus, minus)
        outs = [aa.apply_op(x, name, m, _seed(i)).numpy() for i in range(8)]
        is_plus = [np.array_equal(o, plus) for o in outs]
        is_minus = [np.array_equal(o, minus) for o in outs]
        assert all(a or b for a, b in zip(is_plus, is_minus, strict=True)), m
        assert any(is_plus) and any(is_minus), m


def test_cutout_magnitude(photo):
    """Side round(60/331·m/10·min(H, W)): 10 px on the 54×80 photo at m = 10, 5 px at m = 5."""
    for m, side in ((10, 10), (5, 5)):
        assert side == round(60 / 331 * m / 10 * 54)
        sizes = []
        for i in range(6):
            out = aa.apply_op(tf.constant(photo), "Cutout", m, _seed(i)).numpy()
            changed = (out != photo).any(-1)
            rows, cols = np.nonzero(changed)
            assert (out[changed] == aa.FILL).all()
            sizes.append((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
        assert all(h <= side and w <= side for h, w in sizes), (m, sizes)
        assert (side, side) in sizes, (m, sizes)  # not clipped by the border at least once


def test_invert_and_solarize(photo):
    x = tf.constant(photo)
    np.testing.assert_array_equal(aa.invert(x).numpy(), 255 - photo)
    np.testing.assert_array_equal(aa.solarize(x, 0).numpy(), 255 - photo)  # threshold 0: every pixel
    np.testing.assert_array_equal(aa.solarize(x, 256).numpy(), photo)
    np.testing.assert_array_equal(aa.solarize(x, 128).numpy(), np.where(photo < 128, photo, 255 - photo))
    np.testing.assert_array_equal(aa.solarize_add(x, 50).numpy(),
                                  np.where(photo < 128, np.minimum(photo.astype(int) + 50, 255), photo))


def test_posterize(photo):
    x = tf.constant(photo)
    out = aa.posterize(x, 4).numpy()
    assert out.dtype == np.uint8 and not (out & 0x0F).any()
    np.testing.assert_array_equal(out, photo & 0xF0)
    np.testing.assert_array_equal(aa.posterize(x, 8).numpy(), photo)


def test_rotate(photo):
    np.testing.assert_array_equal(aa.rotate(tf.constant(photo), 0.0).numpy(), photo)
    sq = photo[:40, 10:50]
    np.testing.assert_array_equal(aa.rotate(tf.constant(sq), 90.0).numpy(), np.rot90(sq))  # counter-clockwise
    np.testing.assert_array_equal(aa.rotate(tf.constant(sq), -90.0).numpy(), np.rot90(sq, -1))
    np.testing.assert_array_equal(aa.rotate(tf.constant(sq), 180.0).numpy(), sq[::-1, ::-1])
    # 45°: the corners come from outside the image and are grey.
    out = aa.rotate(tf.constant(sq), 45.0).numpy()
    assert (out[0, 0] == aa.FILL).all() and (out[-1, -1] == aa.FILL).all()


def test_translate_moves_content(photo):
    x = tf.constant(photo)
    right = aa.translate_x(x, 5).numpy()
    np.testing.assert_array_equal(right[:, 5:], photo[:, :-5])
    assert (right[:, :5] == aa.FILL).all()
    up = aa.translate_y(x, -3).numpy()
    np.testing.assert_array_equal(up[:-3], photo[3:])
    assert (up[-3:] == aa.FILL).all()
    # Magnitude 10 is 150/331 of the width, with a random sign.
    shift = round(10 / 10 * 150 / 331 * 80)
    outs = [aa.apply_op(x, "TranslateX", 10, _seed(i)).numpy() for i in range(8)]
    lefts = [np.array_equal(o[:, :-shift], photo[:, shift:]) for o in outs]
    rights = [np.array_equal(o[:, shift:], photo[:, :-shift]) for o in outs]
    assert all(a or b for a, b in zip(lefts, rights, strict=True)) and any(lefts) and any(rights)


def test_shear_about_centre(photo):
    img = photo[:21]  # centre row 10
    out = aa.shear_x(tf.constant(img), 0.5).numpy()
    np.testing.assert_array_equal(out[10], img[10])
    np.testing.assert_array_equal(out[14, :-2], img[14, 2:])  # 4 rows below: content 2 px to the left
    np.testing.assert_array_equal(out[6, 2:], img[6, :-2])
    out = aa.shear_y(tf.constant(photo[:, :21]), 0.5).numpy()
    np.testing.assert_array_equal(out[:, 10], photo[:, 10])
    np.testing.assert_array_equal(out[:-2, 14], photo[2:, 14])


def test_equalize_flattens_histogram(dull):
    out = aa.equalize(tf.constant(dull)).numpy()
    assert out.dtype == np.uint8 and out.shape == dull.shape
    for c in range(3):
        before, after = dull[..., c].ravel(), out[..., c].ravel()
        assert np.ptp(before) <= 31 and after.min() == 0 and after.max() >= 230
        # The order of pixels is kept (a monotone map of grey levels) ...
        order = np.argsort(before, kind="stable")
        assert (np.diff(after[order].astype(int)) >= 0).all()
        # ... and the cumulative histogram is close to the uniform one: within 0.06, or the
        # mass of the most frequent input level (a level cannot be split) plus 0.05.
        levels = np.arange(256)
        cdf = np.searchsorted(np.sort(after), levels, side="right") / after.size
        top = np.unique(before, return_counts=True)[1].max() / before.size
        assert np.abs(cdf - (levels + 1) / 256).max() < max(0.06, top + 0.05), c
    # Matches PIL's ImageOps.equalize.
    from PIL import Image, ImageOps

    np.testing.assert_array_equal(out, np.asarray(ImageOps.equalize(Image.fromarray(dull))))
    flat = np.full((8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(aa.equalize(tf.constant(flat)).numpy(), flat)


def test_auto_contrast(dull):
    out = aa.auto_contrast(tf.constant(dull)).numpy()
    for c in range(3):
        assert out[..., c].min() == 0 and out[..., c].max() == 255
        lo, hi = dull[..., c].min(), dull[..., c].max()
        np.testing.assert_allclose(out[..., c], (dull[..., c] - lo) * 255.0 / (hi - lo), atol=0.5)


def test_colour_ops(photo):
    x = tf.constant(photo)
    for op in (aa.color, aa.contrast, aa.brightness, aa.sharpness):
        np.testing.assert_array_equal(op(x, 1.0).numpy(), photo)
    grey = aa.color(x, 0.0).numpy().astype(int)
    assert (np.ptp(grey, axis=-1) == 0).all()  # R = G = B
    luma = photo @ np.array([0.2989, 0.5870, 0.1140])
    assert np.abs(grey[..., 0] - luma).max() <= 1.0
    np.testing.assert_array_equal(aa.brightness(x, 0.0).numpy(), np.zeros_like(photo))
    np.testing.assert_array_equal(aa.brightness(x, 0.5).numpy(), np.round(photo * 0.5).astype(np.uint8))
    flat = aa.contrast(x, 0.0).numpy()
    assert np.ptp(flat) == 0 and abs(int(flat[0, 0, 0]) - luma.mean()) <= 1.0
    assert aa.contrast(x, 1.9).numpy().std() > photo.std()
    # Sharpness 0: the 3×3 smoothing (centre 5, others 1, /13) inside, border pixels kept.
    smooth = aa.sharpness(x, 0.0).numpy()
    f = photo.astype(np.float64)
    ref = (f[:-2, :-2] + f[:-2, 1:-1] + f[:-2, 2:] + f[1:-1, :-2] + 5 * f[1:-1, 1:-1] + f[1:-1, 2:]
           + f[2:, :-2] + f[2:, 1:-1] + f[2:, 2:]) / 13
    np.testing.assert_allclose(smooth[1:-1, 1:-1], ref, atol=1.0)
    np.testing.assert_array_equal(smooth[0], photo[0])
    np.testing.assert_array_equal(smooth[:, -1], photo[:, -1])


def test_cutout(photo):
    for i in range(4):
        out = aa.cutout(tf.constant(photo), 10, _seed(i)).numpy()
        changed = (out != photo).any(-1)
        rows, cols = np.nonzero((out == aa.FILL).all(-1) & changed)
        assert changed.sum() <= 100 and changed.any()
        patch = out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (patch == aa.FILL).all() and patch.shape[0] <= 10 and patch.shape[1] <= 10
        np.testing.assert_array_equal(out[~changed], photo[~changed])


def test_policy_tables():
    for policy in (aa.IMAGENET_POLICY, aa.SVHN_POLICY):
        assert len(policy) == 25  # five searched policies of five sub-policies, concatenated (repeats kept)
        for sub in policy:
            assert len(sub) == 2
            for name, prob, magnitude in sub:
                assert name in aa.OPS and 0.0 <= prob <= 1.0
                assert (magnitude is None) == (name in ("AutoContrast", "Equalize", "Invert"))
                assert magnitude is None or 0 <= magnitude <= 9
    assert aa.IMAGENET_POLICY[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    assert aa.SVHN_POLICY[0] == (("ShearX", 0.9, 4), ("Invert", 0.2, None))
    # The SVHN policy is geometric and histogram ops only: no colour op changes a digit's class cue.
    assert {n for sub in aa.SVHN_POLICY for n, _, _ in sub} == {
        "ShearX", "ShearY", "Invert", "Equalize", "Solarize", "Rotate", "AutoContrast", "Contrast",
        "TranslateX", "TranslateY"}
    assert aa.POLICIES == {"autoaugment": aa.IMAGENET_POLICY, "autoaugment_svhn": aa.SVHN_POLICY}
    assert len(aa.RANDAUGMENT_OPS) == 14 and set(aa.RANDAUGMENT_OPS) <= set(aa.OPS)


def test_policies_in_tf_data_map(photo):
    """Every policy runs as a tf.function graph inside a tf.data map, deterministically per seed."""
    ds = tf.data.Dataset.from_tensors(tf.constant(photo)).repeat(12).enumerate()

    for kind in ("autoaugment", "autoaugment_svhn", "randaugment"):
        mapped = ds.map(lambda i, x: aa.augment(x, kind, tf.stack([i, tf.constant(3, tf.int64)]), 2, 9),
                        num_parallel_calls=2, deterministic=True)
        outs = list(mapped.as_numpy_iterator())
        assert all(o.dtype == np.uint8 and o.shape == photo.shape for o in outs)
        assert sum(not np.array_equal(o, photo) for o in outs) >= 6, kind
        assert len({o.tobytes() for o in outs}) >= 6, kind
        for a, b in zip(outs, mapped.as_numpy_iterator(), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(aa.augment(tf.constant(photo), "", _seed(0)).numpy(), photo)
    with pytest.raises(ValueError, match="autoaugment"):
        aa.augment(tf.constant(photo), "trivialaugment", _seed(0))


def test_rand_augment_applies_n_ops(photo):
    x = tf.constant(photo)
    one = aa.rand_augment(x, _seed(0), num_ops=1, ops=("Invert",))
    np.testing.assert_array_equal(one.numpy(), 255 - photo)
    np.testing.assert_array_equal(aa.rand_augment(x, _seed(0), num_ops=2, ops=("Invert",)).numpy(), photo)
    np.testing.assert_array_equal(aa.rand_augment(x, _seed(0), num_ops=0).numpy(), photo)
    with pytest.raises(ValueError, match="magnitude"):
        aa.rand_augment(x, _seed(0), magnitude=11)


@pytest.mark.parametrize("kind", ["autoaugment", "randaugment"])
def test_config_path_through_train_transform(photo, kind):
    """config.auto_augment reaches the training transform: right shape, other pixels than
    without it, normalisation still applied."""
    info = DatasetInfo("folder", 5, "train", "val", 10, 10, 64, 3, 10.0)
    encoded = tf.io.encode_png(tf.constant(photo))
    ex = {"image": encoded, "label": tf.constant(2, tf.int64)}
    kw = dict(image_size=32, channels=3, mean=(0.5,), std=(0.25,), seed=0)

    def images(config, n=6):
        fn = train_example_fn(config, info, **kw)
        ds = tf.data.Dataset.range(n).map(lambda i: fn(tf.constant(0, tf.int64), i, ex))
        return [e["image"] for e in ds.as_numpy_iterator()]

    c = get_config()
    c.train_crop, c.random_flip = "center", False
    plain = images(c)
    c.auto_augment, c.randaugment_num_ops, c.randaugment_magnitude = kind, 2, 9.0
    augmented = images(c)
    assert all(a.shape == (32, 32, 3) and a.dtype == np.float32 for a in augmented)
    assert all(a.min() >= -2.0 - 1e-6 and a.max() <= 2.0 + 1e-6 for a in augmented)  # (x − 0.5) / 0.25
    assert sum(not np.allclose(a, plain[0], atol=1.5 / 255 / 0.25) for a in augmented) >= 3
    c.auto_augment = "autoaugment_v0"
    with pytest.raises(ValueError, match="auto_augment"):
        train_example_fn(c, info, **kw)


def test_auto_augment_draws_sub_policies_and_probabilities(photo):
    """Sub-policies are drawn uniformly and each step fires with its probability."""
    img = tf.constant(photo[:4, :4])
    policy = ((("Invert", 0.3, None), ("Posterize", 1.0, 0)),
              (("Identity", 1.0, None), ("Identity", 1.0, None)))
    ds = tf.data.Dataset.range(400).map(lambda i: aa.auto_augment(img, tf.stack([i, i + 1]), policy))
    outs = np.stack(list(ds.as_numpy_iterator()))
    x = photo[:4, :4]
    inverted = (outs == ((255 - x) & 0xF0)).all(axis=(1, 2, 3))  # Posterize magnitude 0: 4 bits
    posterized = (outs == (x & 0xF0)).all(axis=(1, 2, 3))
    untouched = (outs == x).all(axis=(1, 2, 3))
    assert (inverted | posterized | untouched).all()
    assert 0.4 < untouched.mean() < 0.6  # the identity sub-policy half of the time
    assert 0.2 < inverted.sum() / (inverted.sum() + posterized.sum()) < 0.4  # Invert at p = 0.3


def test_efficientnet_recipe_uses_autoaugment():
    from train.configs.recipes import recipe_for
    from train.loop import apply_recipe

    assert recipe_for("efficientnet_b0")["auto_augment"] == "autoaugment"
    c = get_config()
    c.arch = "efficientnet_b3"
    assert apply_recipe(c).auto_augment == "autoaugment"
    assert get_config().auto_augment == ""  # off unless a recipe or the command line asks
