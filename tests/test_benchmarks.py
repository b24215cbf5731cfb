"""The accelerator script's table renderer (``benchmarks/device.py --render``): the GPU table in
BENCHMARKS.md is made from saved results by it, so its ratios and MFU must be right."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device():
    spec = importlib.util.spec_from_file_location("device_script", ROOT / "benchmarks" / "device.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flax_row(model: str, train: float, **kw) -> dict:
    return {"model": model, "batch": 8, "size": 224, "eval_img_s": 400.0, "train_img_s": train,
            "train_compile_s": 3.0, "train_xla_mb": 100.0, **kw}


def test_render_ratios_mfu_and_later_files_win(device, tmp_path: pathlib.Path) -> None:
    config = {"device_kind": "NVIDIA H200"}
    first = {"config": config, "headline": _flax_row("resnet50", 100.0),
             "torch": [{"model": "resnet50", "batch": 8, "eval_img_s": 200.0, "train_img_s": 50.0,
                        "train_peak_mb": 90.0},
                       {"model": "vgg16", "batch": 8, "eval_img_s": 10.0, "train_img_s": 5.0}]}
    second = {"config": config, "densenet": [_flax_row("resnet50", 150.0),
                                             _flax_row("resnet50", 120.0, memory_efficient=True)]}
    paths = []
    for i, res in enumerate((first, second)):
        paths.append(tmp_path / f"d{i}.json")
        paths[-1].write_text(json.dumps(res))
    table = device.render([str(p) for p in paths])
    rows = {line.split(" | ")[0]: line.split(" | ") for line in table.splitlines() if line.startswith("| resnet50")}
    plain, efficient = rows["| resnet50"], rows["| resnet50, `memory_efficient`"]
    assert plain[5] == "150" and plain[7] == "**3.00**" and plain[4] == "**2.00**"  # the second file's row
    gflops = device._forward_gflops()["resnet50"]
    assert plain[11] == f"{100 * 3 * gflops * 1e9 * 150 / device.peak_flops('NVIDIA H200'):.1f} % |"
    assert efficient[5] == "120" and efficient[7] == "–"  # no torch ratio for the option
    assert "flax rows not yet: vgg16" in table


def test_render_of_a_missing_file_fails_in_one_line(device, tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "none.json")
    with pytest.raises(SystemExit) as exit_:  # sys.exit(message): stderr, status 1
        device.main(["--render", missing])
    assert str(exit_.value) == f"device.py --render: give existing device.json files, got {[missing]}"


@pytest.mark.parametrize("args, message", [
    (["table", "--models", "resnet18,bogus"], "device.py: --models: unknown model(s) ['bogus']"),
    (["table", "--models"], "device.py: --models needs a comma-separated list of registered names"),
    (["table", "--models", ","], "device.py: --models needs a comma-separated list of registered names"),
])
def test_bad_models_fail_in_one_line_before_running(device, args: list, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        device.main(args)
    assert str(exit_.value) == message
    assert "table" not in device.RESULTS  # nothing ran


def test_trainability_rewrite_keeps_history_and_command(tmp_path) -> None:
    """A rewrite after a row keeps the file's hand-written history and every other row, updates the
    counts, and heads it with the registry-wide command whatever the run's flags."""
    spec = importlib.util.spec_from_file_location("trainability_script", ROOT / "benchmarks" / "trainability.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "T.md"
    committed = (ROOT / "TRAINABILITY.md").read_text()
    out.write_text(committed.replace("Produced by `python", "Produced by `python3", 1)
                   .replace(script._INTRO_END, script._INTRO_END + "\nSince abc123 a hand-written rule.", 1))
    rows = script.read_rows(out)
    history = script.read_history(out)
    assert history[0] == "Since abc123 a hand-written rule." and len(history) > 1
    rows["zz_new"] = {**dict.fromkeys(script.COLUMNS, ""), "arch": "`zz_new`", "top1": "12.00"}
    script.write_table(out, rows, 999)
    text = out.read_text()
    assert f"Produced by `{script.COMMAND}`" in text and "Since abc123 a hand-written rule." in text
    assert script.read_history(out) == history and script.read_rows(out) == rows
    assert f"{len(rows)} of 999" in text and text.count("| `") == len(rows)


def test_trainability_row_notes_budget_and_aux_heads(monkeypatch) -> None:
    """A row parsed from a run's output: the start line's shape, the final top-1, and the notes
    that qualify it (budget shrunk or raised, aux heads off) taken from the trainer's real adapted line."""
    import subprocess

    from train.configs import adapt_recipe
    from train.configs.default import get_config
    from train.loop import apply_recipe

    spec = importlib.util.spec_from_file_location("trainability_script", ROOT / "benchmarks" / "trainability.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = get_config()
    cfg.arch = "googlenet_paper"
    _, adapted = adapt_recipe(apply_recipe(cfg), "digits", 1437, 8, 15.0, (), 10)
    adapted = adapted.replace("; schedule shape", " (compute budget: 0.05 GFLOPs/image forward); schedule shape", 1)
    out = "\n".join([adapted, "googlenet_paper (10 classes, 32x32x3, float32) on digits: 330 steps (15 epochs of "
                     "22), batch 64", "final: {'top1': 97.5, 'loss': 0.1}"])
    monkeypatch.setattr(script.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=out, stderr=""))
    row = script.run_one("googlenet_paper", timeout=5)
    assert (row["image"], row["steps"], row["batch"], row["top1"]) == ("32x32x3", "330", "64", "97.50")
    assert row["note"] == ("default budget shrunk, compute budget: 0.05 GFLOPs/image forward; "
                           "aux heads off (they need ≥ 223 px)")
    # A recipe floor above the dataset default (fractalnet20_cifar's 80 against 30) reads as raised.
    from train.configs import budget_epochs

    why = budget_epochs(30.0, 1e6, 1437, "cifar10", 80.0)[1]
    raised = out.replace("(compute budget: 0.05 GFLOPs/image forward)", f"({why})")
    monkeypatch.setattr(script.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=raised, stderr=""))
    assert script.run_one("googlenet_paper", timeout=5)["note"].startswith(f"default budget raised, {why}; aux heads")
