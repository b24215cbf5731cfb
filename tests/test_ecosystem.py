"""Packaging and plots: the models import without the trainer's stack, README's commands are
the ones CI runs, the GFLOPs data covers the registry, and the charts are drawn (or the
missing extra is named)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import flaxnets
from flaxnets import plot

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "tensorflow_datasets", "tensorboard", "sklearn", "torch", "orbax", "optax", "matplotlib")


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_models_load_without_the_trainers_stack() -> None:
    """``import flaxnets`` + ``create_model`` + a forward shape load none of the heavy packages."""
    proc = _python("import sys, jax, jax.numpy as jnp, flaxnets\n"
                   "m = flaxnets.create_model('resnet18', num_classes=10)\n"
                   "v = jax.eval_shape(lambda x: m.init(jax.random.PRNGKey(0), x), jnp.zeros((1, 32, 32, 3)))\n"
                   "flaxnets.model_info('vgg16'); import flaxnets.plot; flaxnets.plot.zoo_rows()\n"
                   f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_dependencies_and_readme_commands() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert all(p not in core for p in ("tensorflow", "tensorboard", "scikit", "orbax", "torch", "matplotlib"))
    extras = project["optional-dependencies"]
    assert any(d.startswith("tensorflow-cpu") for d in extras["train"]) and "flaxnets[train-base]" in extras["train"]
    assert not any("tensorflow>" in d or d.startswith("tensorflow-cpu") for d in extras["train-base"])
    assert any(d.startswith("matplotlib") for d in extras["plot"])
    assert any(d.startswith("nbclient") for d in extras["test"])
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(ln for ln in ci.splitlines() if "pip install" in ln)
    assert test_command in readme.splitlines()  # CI runs README's command verbatim
    assert "'.[train,test,parity]'" in test_command
    assert "pip install -e '.[train]' && .venv/bin/python -m train.main" in readme


def test_flops_data_covers_the_registry_and_matches_summary() -> None:
    data = json.loads((ROOT / "flaxnets" / "data" / plot.FLOPS_FILE).read_text())
    assert data["command"] == plot.REFRESH_COMMAND
    assert sorted(data["gflops"]) == flaxnets.list_models(), f"refresh with {plot.REFRESH_COMMAND} NAME..."
    assert all(g > 0 for g in data["gflops"].values())
    assert plot.load_flops()["lenet5"] == pytest.approx(flaxnets.summary("lenet5").flops / 1e9, rel=1e-3)


def test_zoo_chart_table_and_timeline(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib")
    rows = plot.zoo_rows()
    assert len(rows) == len(flaxnets.list_models()) and all(r["gflops"] for r in rows)
    table = plot.format_table(rows)
    assert len(table.splitlines()) == len(rows) + 1 and "1 crop 224" in table
    for path in (plot.plot_zoo(str(tmp_path / "zoo.png")), plot.plot_history(str(tmp_path / "history.png"))):
        assert pathlib.Path(path).read_bytes().startswith(b"\x89PNG")


def test_plot_commands_and_missing_matplotlib(tmp_path: pathlib.Path, monkeypatch, capsys) -> None:
    """``python -m flaxnets --plot`` without matplotlib names the extra; ``python -m train.plot``
    overlays runs and refuses a directory that is not a run."""
    from flaxnets.__main__ import main

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "matplotlib", None)  # as if not installed
        m.setitem(sys.modules, "matplotlib.pyplot", None)
        assert main(["resnet*", "--plot", str(tmp_path / "z.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: plots need matplotlib: pip install 'flaxnets[plot]' (or pip install matplotlib)")
    assert not (tmp_path / "z.png").exists()
    pytest.importorskip("matplotlib")
    from train import plot as train_plot

    runs = []
    for i, lr in enumerate((0.1, 0.05)):
        run = tmp_path / f"run{i}"
        run.mkdir()
        rows = [{"step": s, "split": "train", "loss": 2.3 / s, "lr": lr, "accuracy": 10.0 * s} for s in (1, 2, 3, 4)]
        rows += [{"step": 2, "split": "eval", "top1": 30.0 + i}, {"step": 4, "split": "final_center", "top1": 50.0}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run / "config.json").write_text(json.dumps({"arch": "resnet20", "dataset": "digits"}))
        runs.append(str(run))
    assert train_plot.main([*runs, "--output", str(tmp_path / "runs.png")]) == 0
    assert (tmp_path / "runs.png").read_bytes().startswith(b"\x89PNG")
    assert train_plot.main([str(tmp_path)]) == 2
