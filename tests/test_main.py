"""Command line: recipe/override precedence, dataset-derived sizes, one-line errors, and a
tiny end-to-end run with every evaluation mode (unsupported ones skipped with a message)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from train import loop
from train.configs.default import get_config

ROOT = pathlib.Path(__file__).parent.parent


def _main(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("JAX_PLATFORMS", None)
    return subprocess.run([sys.executable, "-m", "train.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_recipe_applies_under_explicit_overrides() -> None:
    cfg = get_config()
    cfg.arch, cfg.learning_rate, cfg.schedule = "resnet20", 0.01, "cosine"
    out = loop.apply_recipe(cfg)
    assert out.schedule == "step" and out.learning_rate == 0.1 and out.train_crop == "pad_crop"
    kept = loop.apply_recipe(cfg, explicit={"learning_rate"})
    assert kept.learning_rate == 0.01 and kept.schedule == "step"
    cfg.recipe = False
    assert loop.apply_recipe(cfg).schedule == "cosine"
    # --config.model_overrides.NAME=VALUE wins for that name; the recipe's other overrides stay.
    cfg = get_config()
    cfg.arch, cfg.model_overrides = "efficientnet_b0", {"drop_path_rate": 0.0}
    out = loop.apply_recipe(cfg, explicit={"model_overrides.drop_path_rate"})
    assert dict(out.model_overrides) == {"drop_path_rate": 0.0, "bn_momentum": 0.01, "bn_eps": 1e-3}


def test_every_recipe_fits_its_models() -> None:
    """A recipe's model_overrides name fields the model has; a wrong name fails at load time."""
    import flaxnets
    from train.configs.recipes import recipe_for

    for name in flaxnets.list_models():
        cfg = get_config()
        cfg.arch = name
        loop.apply_recipe(cfg)  # raises TrainingError on a field the model lacks
    cfg = get_config()
    cfg.arch, cfg.recipe = "resnet20", False
    cfg.model_overrides = {"dropout": 0.5}
    with pytest.raises(loop.TrainingError, match="dropout"):
        loop.apply_recipe(cfg)
    assert recipe_for("senet154")["model_overrides"] == {"drop_rate": 0.2}
    # Zero-γ init for the ImageNet ResNets' recipe (Goyal et al. 2017), not the paper's CIFAR nets.
    assert recipe_for("resnet50")["model_overrides"] == {"zero_init_last": True}
    assert recipe_for("resnext50_32x4d")["model_overrides"] == {"zero_init_last": True}
    assert recipe_for("resnet20")["model_overrides"] == {}


def test_image_size_from_dataset_and_model() -> None:
    from train.data import DatasetInfo

    small = DatasetInfo("digits", 10, "train", "test", 1437, 360, 8, 1, 30.0)
    big = DatasetInfo("imagenet2012", 1000, "train", "validation", 10, 10, 224, 3, 90.0)
    cfg = get_config()
    assert loop.resolve_image_size(cfg, "resnet20", small) == 8  # the data's own size: min_size allows it
    assert loop.resolve_image_size(cfg, "resnet50", small) == 32  # raised to the model's min_size
    assert loop.resolve_image_size(cfg, "bn_inception", small) == 32  # min_size 7, but an ImageNet net: ≥ 32
    assert loop.resolve_image_size(cfg, "inception_v4", small) == 75  # min_size above 32
    assert loop.resolve_image_size(cfg, "inception_v3", small) == 299  # its aux head needs 299
    cfg.model_overrides = {"aux_logits": False}  # what adapt_recipe sets on small data
    assert loop.resolve_image_size(cfg, "inception_v3", small) == 75  # then min_size_no_aux
    assert loop.resolve_image_size(cfg, "googlenet_paper", small) == 32  # 15 without aux, but ≥ 32
    assert loop.resolve_image_size(cfg, "inception_v3", big) == 299
    cfg.model_overrides = {}
    cifar = DatasetInfo("cifar10", 10, "train", "test", 50000, 10000, 32, 3, 30.0)
    assert loop.resolve_image_size(cfg, "resnet20", cifar) == 32
    assert loop.resolve_image_size(cfg, "resnet50", big) == 224
    cfg.small_data_image_size = 48  # a recipe's small-data side (SqueezeNet's: its conv10 sees 2×2)
    assert loop.resolve_image_size(cfg, "resnet50", small) == 48
    assert loop.resolve_image_size(cfg, "inception_v4", small) == 75  # never below min_size
    assert loop.resolve_image_size(cfg, "resnet50", big) == 224  # small data only
    cfg.image_size = 40
    assert loop.resolve_image_size(cfg, "resnet50", small) == 40  # an explicit size wins
    assert loop.resolve_image_size(cfg, "resnet50", big) == 40


@pytest.mark.parametrize("args, expect", [
    (["--arch=resnet21"], "did you mean"),
    (["--platform=quantum"], "quantum"),
    (["--platform=tpu"], "'tpu' is not available"),
    (["--arch=lenet5", "--dataset=cifar11"], "cifar10"),
    (["--arch=lenet5", "--dataset=cifar10", "--config.data_dir=/nonexistent/tfds"], "not prepared"),
    (["--config.batch_sise=3"], "unknown config field 'batch_sise'; did you mean batch_size"),
    (["--arch=lenet5", "--config.model_overrides.dropout=0.5"], "do not fit 'lenet5'"),
    (["--config.model_overrides.drop_rate"], "NAME=VALUE"),
])
def test_bad_inputs_fail_in_one_line(args: list[str], expect: str, tmp_path: pathlib.Path) -> None:
    line = _one_error_line(_main(f"--workdir={tmp_path}", *args))
    assert expect in line


@pytest.mark.parametrize("args, expect", [
    (["--config.batch_size=-5"], "batch_size=-5"),
    (["--config.eval_modes=('bogus',)"], "eval_modes ['bogus'] unknown"),
    (["--config.freeze=('C1','conv*')"], "freeze pattern 'conv*' matches no parameter of lenet5"),
])
def test_bad_config_leaves_an_existing_run_untouched(args: list[str], expect: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.json").write_text('{"arch": "lenet5"}')
    before = sorted(p.name for p in tmp_path.iterdir())
    line = _one_error_line(_main(f"--workdir={tmp_path}", "--arch=lenet5", "--platform=cpu", *args))
    assert expect in line
    assert (tmp_path / "config.json").read_text() == '{"arch": "lenet5"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# Every line a normal run prints comes from the trainer (no TensorFlow/absl/TFDS/JAX notices).
TRAINER_LINES = re.compile("|".join([
    r"dataset: \S+ \(", r"preparing the embedded digits in ", r"\w+ \(\d+ classes, \d+x\d+x\d+, ",
    r"train step( \(BatchNorm frozen\))?: ", r"step \d+/\d+ \| epoch ", r"eval step \d+ \(epoch ",
    r"eval mode '\w+' skipped: ", r"final: \{", r"test accuracy \(top-1\): ", r"curves written to ",
    r"weights written to ", r"\w+'s recipe is written for \S+; on \S+: "]))


def _foreign_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() and not TRAINER_LINES.match(ln)]


@pytest.mark.slow
def test_tiny_run_all_eval_modes(tmp_path: pathlib.Path) -> None:
    """A short run from the first TFDS preparation on: its output is the trainer's lines only
    (no --platform: JAX's backend probe stays quiet too), metrics, TensorBoard and curves are
    written; a checkpoint damaged afterwards gives one warning line on the rerun."""
    args = (f"--workdir={tmp_path}", "--arch=lenet5", "--config.recipe=False", f"--config.data_dir={tmp_path}/tfds",
            "--config.batch_size=32", "--config.log_every_steps=3", "--config.learning_rate=0.01",
            "--config.lr_batch_denom=0", "--config.checkpoint_every_steps=3",
            "--config.eval_modes=('center','10crop','multiscale')")
    proc = _main(*args, "--config.max_steps=6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\x1b" not in proc.stdout + proc.stderr  # no escape codes into a pipe
    assert _foreign_lines(proc) == [], proc.stdout + proc.stderr
    assert "preparing the embedded digits" in proc.stdout
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert "test accuracy (top-1)" in proc.stdout and "sgd lr 0.01 cosine" in proc.stdout
    assert "'multiscale' skipped" in proc.stderr  # lenet5 takes only 32x32: known after tracing
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    splits = {r["split"] for r in rows}
    assert {"train", "final_center", "final_10crop"} <= splits
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [3, 6]
    assert all(k in train_rows[0] for k in ("loss", "accuracy", "lr", "img_s", "epoch"))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "config.json").read_text())["arch"] == "lenet5"
    # A genuine warning still reaches the user, once, on one line.
    latest = max((p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    for f in latest.glob("state/**/d/*"):
        with open(f, "r+b") as fh:
            fh.truncate(7)
    again = _main(*args, "--config.max_steps=7")
    assert again.returncode == 0, again.stderr[-3000:]
    foreign = _foreign_lines(again)
    assert len(foreign) == 1 and foreign[0].startswith(f"warning: checkpoint at step {latest.name} "), \
        "\n".join(foreign)


@pytest.mark.slow
def test_evaluate_reports_the_training_runs_final_eval(tmp_path: pathlib.Path) -> None:
    """train.evaluate on the workdir and on the exported weights file reproduces the final eval."""
    run = tmp_path / "run"
    proc = _main(f"--workdir={run}", "--arch=lenet5", "--platform=cpu", "--config.recipe=False",
                 "--config.batch_size=32", "--config.max_steps=8", "--config.learning_rate=0.01",
                 "--config.lr_batch_denom=0", "--config.export_weights=auto",
                 "--config.eval_modes=('center','10crop')")
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = {r["split"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def evaluate(*args: str) -> list[dict]:
        out = tmp_path / "eval.json"
        p = subprocess.run([sys.executable, "-m", "train.evaluate", f"--output={out}", "--platform=cpu", *args],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        assert (tmp_path / "eval.csv").read_text().startswith("source,arch,dataset,mode,top1")
        return json.loads(out.read_text())

    for rows in (evaluate(f"--workdir={run}"),
                 evaluate("--arch=lenet5", "--dataset=digits", f"--weights={run / 'lenet5.safetensors'}",
                          "--config.eval_modes=('center','10crop')", "--config.batch_size=32")):
        assert [r["mode"] for r in rows] == ["center", "10crop"]
        for r in rows:
            assert r["top1"] == pytest.approx(final[f"final_{r['mode']}"]["top1"], abs=1e-6)
    bad = subprocess.run([sys.executable, "-m", "train.evaluate", "--arch=lenet5", "--weights=/nonexistent.pth"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error:")
