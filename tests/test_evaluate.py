"""Test-time evaluation: GoogLeNet's 144 crops and VGG's 150 crops against an independent
numpy/PIL reference on real photos, the streamed crop pipeline, averaging over test-time modes,
ensembles of two trained runs (CLI, JSON/CSV rows) and the progress display."""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from train import evaluate, loop, progress, validate
from train.configs.default import get_config
from train.configs.recipes import recipe_for
from train.data import preprocess as pp

ROOT = pathlib.Path(__file__).parent.parent


# --- Reference crops (numpy slicing + PIL resizing; no code shared with train.data) -------------
def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Antialiased bilinear resize of a float HWC image, channel by channel in PIL's float mode."""
    return np.stack([np.asarray(Image.fromarray(img[..., c], mode="F").resize((w, h), Image.BILINEAR))
                     for c in range(img.shape[-1])], axis=-1)


def _shorter_to(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    return _resize(img, max(side, round(h * side / min(h, w))), max(side, round(w * side / min(h, w))))


def _reference_144(img: np.ndarray, size: int, sides: tuple[int, ...]) -> np.ndarray:
    """GoogLeNet Sec. 7 written out: per side, per square (left/centre/right or top/centre/bottom),
    TL, TR, BL, BR, centre, whole square resized, then the six mirrored."""
    out = []
    for side in sides:
        r = _shorter_to(img, side)
        h, w = r.shape[:2]
        short, extra = min(h, w), max(h, w) - min(h, w)
        for off in (0, extra // 2, extra):
            sq = r[off:off + short] if h > w else r[:, off:off + short]
            far, mid = short - size, (short - size) // 2
            six = [sq[:size, :size], sq[:size, far:], sq[far:, :size], sq[far:, far:],
                   sq[mid:mid + size, mid:mid + size], _resize(sq, size, size)]
            out += six + [c[:, ::-1] for c in six]
    return np.stack(out)


def _assert_close(got: np.ndarray, want: np.ndarray, atol: float = 2e-4) -> None:
    """Same shape, max |difference| ≤ ``atol`` (np.testing's version is slow on 20M values)."""
    assert got.shape == want.shape
    worst = np.unravel_index(np.argmax(np.abs(got - want)), got.shape)
    assert abs(got[worst] - want[worst]) <= atol, f"crop {worst[0]} differs at {worst[1:]}"


def _grid_starts(length: int, size: int) -> list[int]:
    return [math.floor(i * (length - size) / 4 + 0.5) for i in range(5)]


def _reference_150(img: np.ndarray, size: int, sides: tuple[int, ...]) -> np.ndarray:
    """VGG Sec. 3.2 written out: per scale a 5×5 regular grid of crops, then the 25 mirrored."""
    out = []
    for side in sides:
        r = _shorter_to(img, side)
        grid = [r[y:y + size, x:x + size] for y in _grid_starts(r.shape[0], size)
                for x in _grid_starts(r.shape[1], size)]
        out += grid + [c[:, ::-1] for c in grid]
    return np.stack(out)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Two real photos (427×640) in [0, 1]: landscape, and one turned into a portrait."""
    from sklearn.datasets import load_sample_images

    china, flower = (im.astype(np.float32) / 255.0 for im in load_sample_images().images)
    return {"landscape": china, "portrait": np.ascontiguousarray(flower.transpose(1, 0, 2))}


@pytest.mark.parametrize("orientation, size", [("landscape", 224), ("portrait", 112)])
def test_144_crops_match_reference(photos: dict, orientation: str, size: int) -> None:
    """Exactly 144 crops, each equal to the reference; at 112 the sides scale to 128..176."""
    img = photos[orientation]
    sides = pp.scaled_sides(pp.GOOGLENET_SIDES, size)
    assert sides == ((256, 288, 320, 352) if size == 224 else (128, 144, 160, 176))
    crops = pp.multi_scale_crops(tf.constant(img), size, sides, "144crop").numpy()
    assert crops.shape == (144, size, size, 3)
    _assert_close(crops, _reference_144(img, size, sides))
    # Without mirrors (no-flip datasets): each square's six unflipped crops, 72 in all.
    unflipped = pp.multi_scale_crops(tf.constant(img), size, sides, "144crop", mirror=False).numpy()
    np.testing.assert_array_equal(unflipped, crops.reshape(4, 3, 2, 6, size, size, 3)[:, :, 0].reshape(unflipped.shape))


def test_150_crops_match_reference(photos: dict) -> None:
    """150 crops: a 5×5 grid with flips at 3 scales, positions and pixels as the reference."""
    img, size, sides = photos["landscape"], 112, (128, 192, 256)
    crops = pp.multi_scale_crops(tf.constant(img), size, sides, "multicrop150").numpy()
    assert crops.shape == (150, size, size, 3)
    _assert_close(crops, _reference_150(img, size, sides))
    # Positions without any resize: pixel values are their own coordinates.
    coords = np.stack([*np.meshgrid(np.arange(50.0), np.arange(70.0), indexing="ij"), np.zeros((50, 70))], -1)
    grid = pp.grid_crops(tf.constant(coords, tf.float32), 32).numpy()
    corners = [tuple(c[0, 0, :2]) for c in grid[:25]]
    assert corners == [(y, x) for y in (0, 5, 9, 14, 18) for x in (0, 10, 19, 29, 38)]
    np.testing.assert_array_equal(grid[25:], grid[:25, :, ::-1])
    np.testing.assert_array_equal(pp.grid_crops(tf.constant(coords, tf.float32), 32, mirror=False).numpy(),
                                  grid[:25])


def test_multicrop_scales_follow_vgg() -> None:
    """Q: {S_min, mid, S_max} for jittered training (Table 5: 256, 384, 512), {S − 32, S, S + 32}
    for a fixed S, scaled with the input size; multiscale_sizes overrides."""

    def sides(size=224, **fields):
        cfg = ml_collections.ConfigDict(dict(dict(multiscale_sizes=(), train_crop="scale_jitter",
                                                  scale_jitter_range=(256, 512), eval_crop_ratio=0.875), **fields))
        return evaluate.crop_sides(types.SimpleNamespace(image_size=size, config=cfg), "multicrop150")

    assert sides() == (256, 384, 512)
    assert sides(112) == (128, 192, 256)
    assert sides(scale_jitter_range=(384, 384)) == (352, 384, 416)
    assert sides(train_crop="random_resized") == (224, 256, 288)  # S = 224 / 0.875
    assert sides(multiscale_sizes=(300, 400, 500)) == (300, 400, 500)
    # The recipes: Q derived from their training scales, as Sec. 4.2, and never below the input
    # (a 32-pixel vgg11 on digits was tested at 5 px with an unscaled S − 32: NaN loss).
    for arch, at224, at32 in (("vgg19", (256, 384, 512), (37, 55, 73)), ("vgg11", (224, 256, 288), (32, 37, 42))):
        recipe = recipe_for(arch)
        fields = {k: recipe[k] for k in ("train_crop", "scale_jitter_range")}
        assert sides(**fields) == at224 and sides(32, **fields) == at32, arch
    assert sides(32, train_crop="random_resized") == (32, 37, 42)


def test_crop_stream_is_chunked_and_complete() -> None:
    """The eval pipeline's 144-crop stream: fixed-size chunks, exactly 144 crops per example,
    and an example's crops are :func:`multi_scale_crops` of its image, normalised."""
    from train import data
    from train.data.builders import get_builder, read_split
    from train.data.pipeline import eval_crop_stream

    info = data.dataset_info("digits", None)
    sides = pp.scaled_sides(pp.GOOGLENET_SIDES, 32)
    stream = eval_crop_stream({}, info, mode="144crop", sides=sides, image_size=32, channels=1, mean=(0.5,),
                              std=(0.25,), chunk_size=50, max_examples=3)
    batches = list(stream.batches)
    assert (stream.num_examples, stream.num_chunks, len(batches)) == (3, 9, 9)
    assert {b["image"].shape for b in batches} == {(50, 32, 32, 1)}
    mask = np.concatenate([b["mask"] for b in batches]) > 0
    example = np.concatenate([b["example"] for b in batches])[mask]
    assert np.bincount(example).tolist() == [144, 144, 144]
    shard, _ = read_split(get_builder("digits"), info.eval_split, 0, 1)
    first = next(iter(shard))
    want = (pp.multi_scale_crops(pp.decode(first["image"], 1), 32, sides, "144crop").numpy() - 0.5) / 0.25
    got = np.concatenate([b["image"] for b in batches])[mask][example == 0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    labels = np.concatenate([b["label"] for b in batches])[mask][example == 0]
    assert set(labels.tolist()) == {int(first["label"])}


def test_mode_specs_are_validated() -> None:
    cfg = get_config()
    cfg.arch = "lenet5"
    for good in ("144crop", "multicrop150", "center+144crop", "10crop+multicrop150+center"):
        cfg.eval_modes = (good,)
        assert validate.config_problems(cfg, 32) == [], good
    cfg.eval_modes = ("144crop", "center+center", "center+", "bogus")
    (problem,) = validate.config_problems(cfg, 32)
    assert "eval_modes ['center+center', 'center+', 'bogus'] unknown" in problem and "dense+multicrop150" in problem
    cfg.eval_modes = ("dense+multicrop150",)
    assert validate.config_problems(cfg, 32) == ["eval mode 'dense': lenet5 has no dense evaluation"]


def test_average_of_outputs() -> None:
    a = evaluate.Outputs(np.array([[0.6, 0.4], [0.2, 0.8]], np.float32), np.array([0, 1]))
    b = evaluate.Outputs(np.array([[0.2, 0.8], [0.4, 0.6]], np.float32), np.array([0, 1]))
    mean = evaluate.average([a, b])
    np.testing.assert_allclose(mean.probs, [[0.4, 0.6], [0.3, 0.7]], atol=1e-7)
    m = evaluate.metrics(mean)
    assert m["top1"] == 50.0 and m["count"] == 2 and m["loss"] == pytest.approx(-(np.log(0.4) + np.log(0.7)) / 2)
    with pytest.raises(ValueError, match="different eval examples"):
        evaluate.average([a, evaluate.Outputs(b.probs, np.array([1, 1]))])
    with pytest.raises(ValueError, match="different numbers of classes"):
        evaluate.average([a, evaluate.Outputs(np.ones((2, 3), np.float32) / 3, a.labels)])


def test_ensemble_specs_fail_clearly(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="two or more"):
        evaluate.parse_members("only_one")
    with pytest.raises(ValueError, match="give its arch"):
        evaluate.parse_members("a.pth,b.pth")
    with pytest.raises(ValueError, match="lenet5"):
        evaluate.parse_members("lenet6=a.pth,lenet5=b.pth")
    (tmp_path / "notarun").mkdir()
    with pytest.raises(FileNotFoundError, match="not a training run"):
        evaluate.parse_members(f"{tmp_path / 'notarun'},lenet5=b.pth")
    members = evaluate.parse_members("lenet5=a.pth, b.pth", default_arch="resnet20")
    assert [(m.arch, m.source, m.workdir) for m in members] == [("lenet5", "a.pth", False),
                                                                  ("resnet20", "b.pth", False)]


def test_track_shows_progress_without_escape_codes(capsys: pytest.CaptureFixture) -> None:
    assert list(progress.track(range(3), 3, "eval 144crop", every_s=0, use_rich=False)) == [0, 1, 2]
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("eval 144crop: 3/3 batches") and "\x1b" not in out
    assert list(progress.track(range(3), 3, "eval x", use_rich=False)) == [0, 1, 2]  # short: silent
    assert capsys.readouterr().out == ""


# --- Trained runs -------------------------------------------------------------------------------
def _digits_config(seed: int):
    cfg = get_config()
    cfg.arch, cfg.dataset, cfg.recipe, cfg.seed = "lenet5", "digits", False, seed
    cfg.batch_size, cfg.max_steps, cfg.num_epochs = 32, 50, 50 / 44  # ~90 % top-1: room to gain
    cfg.optimizer, cfg.learning_rate, cfg.lr_batch_denom, cfg.weight_decay = "adamw", 1e-2, 0, 0.0
    cfg.train_crop, cfg.log_every_steps, cfg.eval_every_epochs, cfg.tensorboard = "center", 50, 100, False
    cfg.eval_modes = ("center", "10crop")
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[pathlib.Path, dict]]:
    """Two lenet5 runs on digits with different seeds (the second exports its weights)."""
    out = []
    for seed in (0, 1):
        cfg = _digits_config(seed)
        if seed:
            cfg.export_weights = "auto"
        workdir = tmp_path_factory.mktemp(f"run{seed}")
        out.append((workdir, loop.train_and_evaluate(cfg, str(workdir))))
    return out


@pytest.mark.slow
def test_ensemble_command(runs: list, tmp_path: pathlib.Path) -> None:
    """--ensemble of a workdir and a weights file: a row per member and mode, then the ensemble's,
    at least as accurate as the members' mean; the runs are left unchanged."""
    (run0, final0), (run1, final1) = runs
    config_before = (run0 / "config.json").read_text()
    out = tmp_path / "ens.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", f"--ensemble={run0},{run1 / 'lenet5.safetensors'}",
                           "--dataset=digits", "--platform=cpu", "--config.eval_modes=('center','10crop')",
                           f"--output={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\x1b" not in proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["mode"], r["source"]) for r in rows] == [
        (m, s) for m in ("center", "10crop") for s in (str(run0), str(run1 / "lenet5.safetensors"), "ensemble")]
    assert {r["arch"] for r in rows} == {"lenet5", "lenet5+lenet5"} and {r["count"] for r in rows} == {360}
    with open(out.with_suffix(".csv"), newline="") as f:
        assert [(r["mode"], r["source"]) for r in csv.DictReader(f)] == [(r["mode"], r["source"]) for r in rows]
    for mode in ("center", "10crop"):
        member0, member1, ensemble = (r for r in rows if r["mode"] == mode)
        assert member0["top1"] == pytest.approx(final0[f"{mode}_top1"], abs=1e-6)
        assert member1["top1"] == pytest.approx(final1[f"{mode}_top1"], abs=1e-6)
        assert ensemble["top1"] >= (member0["top1"] + member1["top1"]) / 2
        assert ensemble["loss"] <= (member0["loss"] + member1["loss"]) / 2  # NLL is convex
    assert (run0 / "config.json").read_text() == config_before
    bad = subprocess.run([sys.executable, "-m", "train.evaluate", f"--ensemble={run0}", "--platform=cpu"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
    assert bad.returncode != 0 and len(errors) == 1 and "two or more" in errors[0]


@pytest.mark.slow
def test_modes_average_per_example(runs: list) -> None:
    """"center+10crop" is the per-example mean of the two modes' softmax outputs."""
    (run0, _), _ = runs
    cfg = _digits_config(0)
    # Mirrored crops (off by default on digits, whose 10 crops are then 5 copies of the whole image).
    cfg.steps_per_eval, cfg.eval_batch_size, cfg.random_flip = 2, 32, True
    run, _ = evaluate.open_run(cfg, evaluate.Member(str(run0), workdir=True),
                               {"steps_per_eval", "eval_batch_size", "random_flip"})
    try:
        center, ten = evaluate.mode_outputs(run, "center"), evaluate.mode_outputs(run, "10crop")
        both = evaluate.mode_outputs(run, "center+10crop")
    finally:
        evaluate.close_run(run)
    assert len(both.labels) == 64 and not np.allclose(center.probs, ten.probs, atol=1e-3)
    np.testing.assert_allclose(both.probs, (center.probs + ten.probs) / 2, atol=1e-6)


@pytest.mark.slow
def test_dense_plus_multicrop_in_final_evaluations(tmp_path: pathlib.Path) -> None:
    """VGG Table 5's "multi-crop & dense" on a fully-convolutional NiN (random weights, 16 px,
    4 examples) through the trainer's final evaluations: the mean of the two modes' softmax."""
    import jax
    import jax.numpy as jnp

    import flaxnets

    cfg = get_config()
    cfg.arch, cfg.dataset, cfg.recipe, cfg.image_size = "nin_cifar10", "digits", False, 16
    cfg.eval_batch_size, cfg.steps_per_eval, cfg.eval_modes = 4, 1, ("dense+multicrop150",)
    model = flaxnets.create_model("nin_cifar10", num_classes=10)
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))()
    run = loop.evaluation_run(cfg, variables, str(tmp_path))
    try:
        final = loop.final_evaluations(run, 0)
        dense, crops = evaluate.mode_outputs(run, "dense"), evaluate.mode_outputs(run, "multicrop150")
    finally:
        evaluate.close_run(run)
    assert final["dense+multicrop150_count"] == 4
    losses = [evaluate.metrics(o)["loss"] for o in (dense, crops, evaluate.average([dense, crops]))]
    assert abs(losses[0] - losses[1]) > 1e-3 * losses[0]  # the modes differ: their mean is a real test
    assert final["dense+multicrop150_loss"] == pytest.approx(losses[2], rel=1e-5)
