"""Input pipeline: the embedded digits builder, augmentations, eval modes, sharding, resume.

Real data: the digits TFDS builder (prepared offline into a temporary data dir) and a small
JPEG image folder cut from scikit-learn's sample photos. TFDS datasets that need a
download (cifar10, mnist, imagenet2012) run under ``tfds.testing.mock_data``.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from train import data  # noqa: E402
from train.configs.default import get_config  # noqa: E402
from train.data import builders  # noqa: E402
from train.data import preprocess as pp  # noqa: E402

NO_NORM = dict(mean=(0.0,), std=(1.0,))


def _config(**overrides):
    c = get_config()
    c.shuffle_buffer = 512
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> str:
    d = str(tmp_path_factory.mktemp("tfds"))
    data.dataset_info("digits", d)  # prepares it
    return d


@pytest.fixture(scope="module")
def digits(digits_dir) -> data.DatasetInfo:
    return data.dataset_info("digits", digits_dir)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    """root/{train,val}/{c0,c1,c2}/*.jpg: distinct crops of sklearn's sample photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two 427×640 RGB photos
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 4), ("val", 3)):
        for c in range(3):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(per_class):
                photo = photos[(c + i) % 2]
                h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                y, x = int(rng.integers(0, 427 - h)), int(rng.integers(0, 640 - w))
                Image.fromarray(photo[y:y + h, x:x + w]).save(root / split / f"c{c}" / f"{i}.jpg", quality=95)
    return str(root)


def _take(it, n):
    return [next(it) for _ in range(n)]


def _examples(batches) -> collections.Counter:
    """Multiset of (label, image bytes) of the unmasked examples of eval batches."""
    out = collections.Counter()
    for b in batches:
        for img, label, m in zip(b["image"], b["label"], b["mask"], strict=True):
            if m:
                out[(int(label), img.tobytes())] += 1
    return out


# ----------------------------------------------------------------------------- datasets


def test_digits_split_sizes_and_content(digits, digits_dir):
    assert (digits.num_train, digits.num_eval, digits.num_classes) == (1437, 360, 10)
    assert (digits.image_size, digits.channels, digits.train_split, digits.eval_split) == (8, 1, "train", "test")
    train_idx, test_idx = data.digits_split_indices()
    again = data.digits_split_indices()
    assert np.array_equal(train_idx, again[0]) and np.array_equal(test_idx, again[1])
    assert len(set(train_idx) | set(test_idx)) == 1797 and not set(train_idx) & set(test_idx)
    images, labels = builders._digits_arrays()
    assert np.bincount(labels[test_idx], minlength=10).min() >= 35  # stratified: ~36 per class
    # The prepared TFDS test split holds exactly those real digits (scaled 0–16 → 0–255).
    ds = builders.get_builder("digits", digits_dir).as_dataset(split="test")
    got = collections.Counter((int(e["label"]), e["image"].tobytes()) for e in tfds.as_numpy(ds))
    want = collections.Counter((int(labels[i]), images[i].tobytes()) for i in test_idx)
    assert got == want
    assert images.max() == 255 and images.dtype == np.uint8


def test_unknown_dataset_error(digits_dir):
    with pytest.raises(ValueError, match="supported: digits.*cifar10"):
        data.resolve_dataset("cifar11", digits_dir)
    with pytest.raises(ValueError, match="Did you mean cifar10"):
        data.dataset_info("cifar11", digits_dir)
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.dataset_info("folder:", digits_dir)


def test_resolve_default(tmp_path, capsys):
    assert data.resolve_dataset("", str(tmp_path)) == "digits"
    assert "imagenet2012 is not prepared" in capsys.readouterr().out
    assert data.resolve_dataset("mnist", str(tmp_path)) == "mnist"


def test_missing_data_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build cifar10"):
        data.dataset_info("cifar10", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar.*manual"):
        data.dataset_info("imagenet2012", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no train/ split"):
        data.dataset_info(f"folder:{tmp_path}/none")
    assert not (tmp_path / "downloads").exists() or not any((tmp_path / "downloads").iterdir())


# ----------------------------------------------------------------------- augmentations


def _ramp_image(h=40, w=60):
    """Float RGB image whose red channel is x/100, green y/100, blue constant."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([x / 100, y / 100, np.full_like(x, 0.5)], -1)


def _seed(i):
    return tf.constant([i, 7], tf.int64)


def test_random_flip_flips():
    img = _ramp_image()
    outs = [pp.random_flip(tf.constant(img), _seed(i)).numpy() for i in range(16)]
    flipped = [np.array_equal(o, img[:, ::-1]) for o in outs]
    same = [np.array_equal(o, img) for o in outs]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)


def test_pad_crop_keeps_size_and_shifts():
    img = _ramp_image(32, 32)
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
    shifts = set()
    for i in range(12):
        out = pp.pad_crop(tf.constant(img), 4, _seed(i)).numpy()
        assert out.shape == img.shape
        match = [(dy, dx) for dy in range(9) for dx in range(9)
                 if np.array_equal(out, padded[dy:dy + 32, dx:dx + 32])]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 3


def test_random_resized_crop_varies():
    img = _ramp_image(64, 96)
    outs = [pp.random_resized_crop(tf.constant(img), 24, _seed(i), (0.08, 1.0), (0.75, 4 / 3)).numpy()
            for i in range(8)]
    for o in outs:
        assert o.shape == (24, 24, 3)
        assert o.min() >= -1e-5 and o.max() <= img.max() + 1e-5
    # Different windows: the (x, y) ramps span different ranges.
    spans = {(round(float(o[..., 0].max() - o[..., 0].min()), 3), round(float(o[..., 1].min()), 3))
             for o in outs}
    assert len(spans) == len(outs)
    # The area fraction is within range: the x-span times the y-span over the whole image.
    for o in outs:
        area = (np.ptp(o[..., 0]) * 100 + 1) * (np.ptp(o[..., 1]) * 100 + 1) / (64 * 96)
        assert 0.08 * 0.7 <= area <= 1.0 + 1e-6


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_decode_random_resized_crop_matches_full_decode(fmt):
    """The JPEG path decodes only the window: same window and (up to JPEG chroma upsampling at
    the border) pixels as decode-then-crop."""
    img = (np.random.default_rng(1).random((45, 70, 3)) * 255).astype(np.uint8)
    encoded = (tf.io.encode_jpeg(img, quality=90) if fmt == "jpeg" else tf.io.encode_png(img))
    for i in range(4):
        fast = pp.decode_random_resized_crop(encoded, 3, 16, _seed(i), (0.1, 0.6)).numpy()
        slow = pp.random_resized_crop(pp.decode(encoded, 3), 16, _seed(i), (0.1, 0.6)).numpy()
        assert fast.shape == (16, 16, 3)
        if fmt == "png":
            np.testing.assert_allclose(fast, slow, atol=1e-6)
        else:  # libjpeg's chroma upsampling differs slightly at the window's border
            assert np.abs(fast - slow).mean() < 0.005 and np.abs(fast - slow).max() < 0.15
    a = pp.decode_random_resized_crop(encoded, 3, 16, _seed(0), (0.1, 0.6)).numpy()
    assert not np.allclose(a, pp.decode_random_resized_crop(encoded, 3, 16, _seed(1), (0.1, 0.6)).numpy())


def test_scale_jitter_shorter_side_within_range():
    img = _ramp_image(40, 60)  # shorter side 40 (height)
    sides = []
    for i in range(24):
        out = pp.scale_jitter_crop(tf.constant(img), 32, _seed(i), 48, 96).numpy()
        assert out.shape == (32, 32, 3)
        # x-ramp slope per output pixel is 1 / (100 f) with f = S / 40.
        slope = np.median(np.diff(out[16, 4:28, 0]))
        sides.append(40.0 / (100 * slope))
    sides = np.array(sides)
    assert sides.min() >= 48 - 1.5 and sides.max() <= 96 + 1.5
    assert sides.max() - sides.min() > 20  # it does jitter


def test_pca_lighting_scale():
    sigma = 0.1
    img = np.full((4, 5, 3), 0.5, np.float32)
    eigvec = np.array(pp.IMAGENET_EIGVEC)
    coeffs = []
    for i in range(400):
        out = pp.pca_lighting(tf.constant(img), sigma, _seed(i)).numpy()
        delta = out - img
        assert np.allclose(delta, delta[0, 0])  # same colour shift for every pixel
        coeffs.append(np.linalg.solve(eigvec, delta[0, 0]) / np.array(pp.IMAGENET_EIGVAL))
    std = np.std(coeffs, axis=0)  # α = coefficient / eigenvalue ~ N(0, σ²)
    assert np.allclose(std, sigma, rtol=0.2), std
    assert np.abs(np.mean(coeffs, axis=0)).max() < 0.03


def test_color_jitter_changes_and_clips():
    img = _ramp_image(16, 16)
    outs = [pp.color_jitter(tf.constant(img), 0.4, _seed(i)).numpy() for i in range(6)]
    for o in outs:
        assert o.shape == img.shape and o.min() >= 0.0 and o.max() <= 1.0
        assert not np.allclose(o, img)
    assert not np.allclose(outs[0], outs[1])
    np.testing.assert_array_equal(pp.color_jitter(tf.constant(img), 0.4, _seed(3)).numpy(), outs[3])


def test_channel_conversion_and_normalize():
    rgb = _ramp_image(4, 4)
    grey = pp.convert_channels(tf.constant(rgb), 1).numpy()
    np.testing.assert_allclose(grey[..., 0], rgb @ np.array(pp.LUMA), rtol=1e-6)
    tiled = pp.convert_channels(tf.constant(grey), 3).numpy()
    assert np.array_equal(tiled[..., 0], tiled[..., 2]) and np.array_equal(tiled[..., 1], grey[..., 0])
    out = pp.normalize(tf.constant(rgb), (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)).numpy()
    np.testing.assert_allclose(out, (rgb - [0.1, 0.2, 0.3]) / [0.5, 0.25, 2.0], rtol=1e-6)


def test_ten_crop_corners_and_flips():
    img = np.random.default_rng(0).random((11, 13, 2)).astype(np.float32)
    crops = pp.ten_crop(tf.constant(img), 6).numpy()
    assert crops.shape == (10, 6, 6, 2)
    np.testing.assert_array_equal(crops[0], img[:6, :6])
    np.testing.assert_array_equal(crops[1], img[:6, -6:])
    np.testing.assert_array_equal(crops[2], img[-6:, :6])
    np.testing.assert_array_equal(crops[3], img[-6:, -6:])
    np.testing.assert_array_equal(crops[4], img[2:8, 3:9])
    for k in range(5):
        np.testing.assert_array_equal(crops[5 + k], crops[k][:, ::-1])
    np.testing.assert_array_equal(pp.ten_crop(tf.constant(img), 6, mirror=False).numpy(), crops[:5])


# --------------------------------------------------------------------------- iterators


def test_train_iterator_shapes_and_normalisation(digits):
    kw = dict(image_size=12, channels=3, global_batch_size=16, seed=3, process_index=0, process_count=1)
    c = _config(train_crop="center", random_flip=False)
    raw = next(data.train_iterator(c, digits, **NO_NORM, **kw))
    assert raw["image"].shape == (16, 12, 12, 3) and raw["image"].dtype == np.float32
    assert raw["label"].dtype == np.int32 and raw["label"].min() >= 0 and raw["label"].max() < 10
    assert raw["image"].min() >= 0.0 and raw["image"].max() <= 1.0 and raw["image"].max() > 0.9
    norm = next(data.train_iterator(c, digits, mean=(0.5,), std=(0.25,), **kw))
    np.testing.assert_allclose(norm["image"], (raw["image"] - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
    assert np.array_equal(norm["label"], raw["label"])
    grey = next(data.train_iterator(c, digits, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2),
                                    **{**kw, "channels": 1}))
    assert grey["image"].shape == (16, 12, 12, 1)


@pytest.mark.parametrize("crop", ["random_resized", "scale_jitter", "pad_crop", "center"])
def test_train_iterator_crops(digits, crop):
    c = _config(train_crop=crop, color_jitter=0.3, pca_lighting=0.1)
    b = next(data.train_iterator(c, digits, image_size=10, channels=3, **NO_NORM, global_batch_size=8,
                                 seed=0, process_index=0, process_count=1))
    assert b["image"].shape == (8, 10, 10, 3) and np.isfinite(b["image"]).all()


def test_resume_determinism(digits):
    c = _config(train_crop="random_resized", color_jitter=0.2, pca_lighting=0.1)
    kw = dict(image_size=8, channels=3, mean=(0.5,), std=(0.25,), global_batch_size=64, seed=5,
              process_index=0, process_count=1)
    full = _take(data.train_iterator(c, digits, **kw), 26)  # 22.4 steps per epoch: crosses one
    for k in (3, 21, 23):
        resumed = _take(data.train_iterator(c, digits, start_step=k, **kw), 26 - k)
        for a, b in zip(full[k:], resumed, strict=True):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["label"], b["label"])
    other = next(data.train_iterator(c, digits, **{**kw, "seed": 6}))
    assert not np.array_equal(other["label"], full[0]["label"])
    # Epochs are reshuffled and re-augmented.
    assert not np.array_equal(full[0]["label"], full[23]["label"])


def test_eval_padding_mask(digits):
    kw = dict(image_size=8, channels=1, **NO_NORM, global_batch_size=64)
    batches = list(data.eval_iterator(_config(), digits, process_index=0, process_count=1, **kw))
    assert len(batches) == 6  # ceil(360 / 64)
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.dtype == np.float32 and masks.sum() == 360 and masks[:360].all()
    assert not batches[-1]["image"][40:].any() and batches[-1]["image"][:40].any()
    # Small images are not cropped by default: the centre image is the whole digit.
    assert np.isclose(batches[0]["image"].max(), 1.0)
    # The next pass (every epoch's eval) reuses the pipeline, decoded once, with the same batches.
    from train.data import pipeline

    kept = len(pipeline._EVAL_DATASETS)
    again = list(data.eval_iterator(_config(), digits, process_index=0, process_count=1, **kw))
    assert len(pipeline._EVAL_DATASETS) == kept and kept >= 1
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(batches, again, strict=True) for k in a)


def test_steps_per_eval_limits_eval_passes(digits):
    """config.steps_per_eval cuts every eval pass to its first batches (None: the whole split),
    without reading past them; the loop's evaluate() then averages over those examples only."""
    from train import loop

    class _Host:  # evaluate()'s use of train.parallel.Parallel, on host arrays
        put_batch = staticmethod(lambda b: b)
        scalars = staticmethod(lambda t: {k: float(v) for k, v in t.items()})

    def step(state, batch):  # "top-1" = label is even, so the metric depends on which examples are seen
        m = batch["mask"]
        return {"count": m.sum(), "top1": (m * (batch["label"] % 2 == 0)).sum(), "top5": m.sum(),
                "loss": (m * batch["label"]).sum()}

    kw = dict(image_size=8, channels=1, **NO_NORM, global_batch_size=64, process_index=0, process_count=1)
    every = list(data.eval_iterator(_config(), digits, **kw))
    assert len(loop.limit_eval_batches(every, _config())) == 6 == len(every)
    c = _config(steps_per_eval=2)
    pulled = []

    def tracked():
        for b in data.eval_iterator(c, digits, **kw):
            pulled.append(b)
            yield b

    limited = list(loop.limit_eval_batches(tracked(), c))
    assert len(limited) == 2 and len(pulled) == 2
    for a, b in zip(limited, every[:2], strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
    ev = loop.evaluate(_Host(), step, None, loop.limit_eval_batches(iter(every), c))
    labels = np.concatenate([b["label"] for b in every[:2]])
    assert ev["count"] == 128 and ev["top1"] == pytest.approx(100.0 * np.mean(labels % 2 == 0))
    assert ev["loss"] == pytest.approx(labels.mean())
    full = loop.evaluate(_Host(), step, None, loop.limit_eval_batches(iter(every), _config()))
    assert full["count"] == 360
    # More steps than batches: the whole split.
    assert len(list(loop.limit_eval_batches(iter(every), _config(steps_per_eval=50)))) == 6


def test_eval_modes_shapes(digits):
    kw = dict(channels=3, **NO_NORM, global_batch_size=32, process_index=0, process_count=1)
    ten = next(data.eval_iterator(_config(), digits, image_size=8, mode="10crop", crop_ratio=0.8, **kw))
    assert ten["image"].shape == (32, 10, 8, 8, 3)
    np.testing.assert_array_equal(ten["image"][:, 5:], ten["image"][:, :5, :, ::-1])
    full = next(data.eval_iterator(_config(), digits, image_size=8, mode="full", size=14, **kw))
    assert full["image"].shape == (32, 14, 14, 3)
    centre = next(data.eval_iterator(_config(), digits, image_size=8, mode="center", crop_ratio=0.8, **kw))
    # The centre view of 10-crop is the "center" mode's image.
    np.testing.assert_allclose(ten["image"][:, 4], centre["image"], atol=1e-6)
    # No test-time mirrors where training has no flips (digits: mirrored glyphs are other digits).
    five = next(data.eval_iterator(_config(random_flip=False), digits, image_size=8, mode="10crop",
                                   crop_ratio=0.8, **kw))
    np.testing.assert_array_equal(five["image"], ten["image"][:, :5])


def test_process_sharding_eval(digits):
    kw = dict(image_size=8, channels=1, **NO_NORM, global_batch_size=48)
    whole = _examples(data.eval_iterator(_config(), digits, process_index=0, process_count=1, **kw))
    assert sum(whole.values()) == 360
    parts = [list(data.eval_iterator(_config(), digits, process_index=i, process_count=3, **kw))
             for i in range(3)]
    assert {len(p) for p in parts} == {8}  # ceil(120 / 16): same count on every process
    assert all(b["image"].shape[0] == 16 for p in parts for b in p)
    assert sum((_examples(p) for p in parts), collections.Counter()) == whole


def test_process_sharding_train(digits):
    c = _config(train_crop="center", random_flip=False)
    kw = dict(image_size=8, channels=1, **NO_NORM, global_batch_size=2, seed=0)
    seen = collections.Counter()
    for i, n in ((0, 719), (1, 718)):  # 1437 = 719 + 718: one epoch of each shard
        for b in _take(data.train_iterator(c, digits, process_index=i, process_count=2, **kw), n):
            assert b["image"].shape == (1, 8, 8, 1)
            seen[(int(b["label"][0]), b["image"][0].tobytes())] += 1
    whole_info = dataclasses.replace(digits, eval_split="train")
    whole = _examples(data.eval_iterator(c, whole_info, image_size=8, channels=1, **NO_NORM,
                                         global_batch_size=64, process_index=0, process_count=1))
    assert seen == whole


def test_image_folder(folder):
    info = data.dataset_info(f"folder:{folder}")
    assert (info.num_classes, info.num_train, info.num_eval, info.eval_split) == (3, 12, 9, "val")
    assert info.channels == 3
    c = _config(train_crop="random_resized")
    it = data.train_iterator(c, info, image_size=32, channels=3, **NO_NORM, global_batch_size=4, seed=0,
                             process_index=0, process_count=1)
    a, b = _take(it, 2)
    assert a["image"].shape == (4, 32, 32, 3) and not np.allclose(a["image"], b["image"])
    kw = dict(image_size=24, channels=3, **NO_NORM, global_batch_size=4)
    whole = _examples(data.eval_iterator(c, info, process_index=0, process_count=1, **kw))
    assert sum(whole.values()) == 9 and len(whole) == 9
    parts = [_examples(data.eval_iterator(c, info, process_index=i, process_count=2, **kw)) for i in range(2)]
    assert parts[0] + parts[1] == whole and not set(parts[0]) & set(parts[1])
    ten = next(data.eval_iterator(c, info, mode="10crop", process_index=0, process_count=1, **kw))
    assert ten["image"].shape == (4, 10, 24, 24, 3)


# ------------------------------------------------------------------- mocked TFDS datasets


@pytest.fixture
def mocked(monkeypatch):
    monkeypatch.setattr(builders, "is_prepared_builder", lambda builder: True)
    with tfds.testing.mock_data(num_examples=12):
        yield


@pytest.mark.parametrize("name,classes,size,channels", [("cifar10", 10, 32, 3), ("mnist", 10, 28, 1),
                                                        ("imagenet2012", 1000, 224, 3)])
def test_mocked_tfds_datasets(mocked, tmp_path, name, classes, size, channels):
    info = data.dataset_info(name, str(tmp_path))
    assert (info.num_classes, info.image_size, info.channels) == (classes, size, channels)
    assert info.num_train > info.num_eval > 0
    mean, std = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
    common = dict(channels=3, mean=mean, std=std, global_batch_size=4)
    for crop in ("random_resized", "scale_jitter", "pad_crop"):
        c = _config(train_crop=crop, pca_lighting=0.1 if name == "imagenet2012" else 0.0)
        b = next(data.train_iterator(c, info, image_size=20, seed=0, process_index=0, process_count=1,
                                     **common))
        assert b["image"].shape == (4, 20, 20, 3) and b["label"].dtype == np.int32
        assert ((0 <= b["label"]) & (b["label"] < classes)).all()
    # Normalisation: undoing mean/std of the centre crop gives pixels in [0, 1].
    ev = list(data.eval_iterator(_config(), info, image_size=20, process_index=0, process_count=1, **common))
    assert len(ev) == 3 and all(e["mask"].all() for e in ev)
    pixels = ev[0]["image"] * np.array(std) + np.array(mean)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and pixels.std() > 0.05
    ten = next(data.eval_iterator(_config(), info, image_size=16, mode="10crop", process_index=0,
                                  process_count=1, **common))
    assert ten["image"].shape == (4, 10, 16, 16, 3)


# (the colab notebooks are executed by tests/test_notebooks.py)


def test_image_folder_bad_files_fail_at_start_naming_them(folder, tmp_path):
    """Empty class folders and an undecodable JPEG are refused before training, in one line."""
    import shutil

    empty = tmp_path / "empty"
    for split in ("train", "val"):
        (empty / split / "c0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="train/ holds no .jpg"):
        data.dataset_info(f"folder:{empty}")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    good = broken / "train" / "c1" / "0.jpg"
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 3:len(raw) // 3 + 512] = np.random.default_rng(0).integers(0, 256, 512, np.uint8).tobytes()
    (broken / "train" / "c1" / "bad.jpg").write_bytes(bytes(raw[: len(raw) // 2]))  # corrupt and truncated
    with pytest.raises(ValueError, match=r"bad\.jpg cannot be decoded") as err:
        data.dataset_info(f"folder:{broken}")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------- device normalisation


def test_uint8_batches_normalise_on_device_as_on_host(digits):
    """uint8 batches (what the trainer copies to the device) normalised by the steps equal the
    batches the pipeline normalises on the host (to float32 rounding: XLA may fuse the
    multiply-add), train and eval, RGB stats on grey models included; the compiled steps
    built by ``Parallel(pixel_stats=...)`` see the same inputs and give the same outputs."""
    import jax
    import optax

    from train import parallel, steps

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    c = _config(train_crop="random_resized")
    kw = dict(image_size=12, channels=3, mean=mean, std=std, global_batch_size=16, seed=0, process_index=0,
              process_count=1)
    u8 = next(data.train_iterator(c, digits, normalize=False, **kw))
    host = next(data.train_iterator(c, digits, **kw))
    assert u8["image"].dtype == np.uint8 and host["image"].dtype == np.float32
    assert np.array_equal(u8["label"], host["label"]) and u8["image"].max() > 200
    norm = jax.jit(steps.device_images, static_argnums=(1, 2))
    np.testing.assert_allclose(np.asarray(norm(u8["image"], mean, std)), host["image"], rtol=0, atol=1e-6)
    ekw = dict(image_size=8, channels=1, mean=mean, std=std, global_batch_size=64, process_index=0, process_count=1)
    e8 = next(data.eval_iterator(c, digits, normalize=False, **ekw))  # grey model, RGB stats (luma)
    eh = next(data.eval_iterator(c, digits, **ekw))
    assert e8["image"].dtype == np.uint8 and e8["image"].shape[-1] == 1
    np.testing.assert_allclose(np.asarray(norm(e8["image"], mean, std)), eh["image"], rtol=0, atol=1e-6)
    # Float batches are taken as normalised; uint8 without stats is refused.
    assert steps.device_images(host["image"], mean, std) is host["image"]
    with pytest.raises(ValueError, match="mean and std"):
        steps.device_images(u8["image"])
    # The compiled steps: a linear "model" on the flattened pixels.
    w = np.random.default_rng(0).normal(size=(12 * 12 * 3, 10)).astype(np.float32) / 20

    def apply(variables, x, train=False, mutable=None, rngs=None):
        out = x.reshape(x.shape[0], -1) @ variables["params"]["w"]
        return (out, {}) if mutable else out

    state = steps.TrainState.create(apply_fn=apply, params={"w": w}, tx=optax.sgd(0.1), batch_stats={})
    par = parallel.Parallel("jit", pixel_stats=(mean, std))
    probs, train = par.probs_step(), par.train_step(num_classes=10)
    p8 = np.asarray(probs(state, par.put_batch({"image": u8["image"]})))
    pf = np.asarray(probs(state, par.put_batch({"image": host["image"]})))
    np.testing.assert_allclose(p8, pf, rtol=1e-5, atol=1e-7)
    m8 = par.scalars(train(par.put_state(state), par.put_batch(u8), jax.random.PRNGKey(0))[1])
    mf = par.scalars(train(par.put_state(state), par.put_batch(host), jax.random.PRNGKey(0))[1])
    assert m8["loss"] == pytest.approx(mf["loss"], rel=1e-5)


def test_prefetch_to_device_keeps_order_and_runs_ahead():
    """prefetch_to_device: same batches in the same order, at most ``size`` placed ahead."""
    from train import steps

    placed = []

    def put(b):
        placed.append(b)
        return b * 10

    out = []
    for i, b in enumerate(steps.prefetch_to_device(iter(range(7)), put, size=2)):
        out.append(b)
        assert len(placed) == min(i + 2, 7)  # the next batch is already placed while this one runs
    assert out == [10 * i for i in range(7)]
    assert list(steps.prefetch_to_device(iter([]), put)) == []
