"""Checkpoints: fallback from a corrupt latest one, arch check, SIGKILL/SIGTERM resume
that ends with the same parameters as an uninterrupted run, non-finite loss stop."""

from __future__ import annotations

import glob
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import flaxnets
from train import checkpoint, steps

ROOT = pathlib.Path(__file__).parent.parent
# A tiny, fast run: LeNet-5 on the embedded digits, 240 steps, checkpoint every 10, with an EMA.
TINY = ["--arch=lenet5", "--platform=cpu", "--config.recipe=False", "--config.batch_size=16", "--config.ema_decay=0.99",
        "--config.steps_per_epoch=120", "--config.num_epochs=2", "--config.learning_rate=0.05",
        "--config.checkpoint_every_steps=10", "--config.log_every_steps=20", "--config.eval_every_epochs=100",
        "--config.tensorboard=False"]


def _state(arch: str = "lenet5"):
    model = flaxnets.create_model(arch)
    return steps.init_state(model, optax.sgd(0.1, 0.9), flaxnets.model_info(arch).input_size)


def test_corrupt_latest_falls_back_and_other_arch_is_refused(tmp_path: pathlib.Path, caplog) -> None:
    base = _state()
    ck = checkpoint.Checkpointer(str(tmp_path), keep=3)
    for s in (1, 2):
        st = base.replace(step=np.int32(s), params=jax_map(lambda x, s=s: x + s, base.params))
        ck.save(s, st, {"arch": "lenet5"})
    ck.close()
    ck = checkpoint.Checkpointer(str(tmp_path), keep=3)
    restored, meta = ck.restore(base, "lenet5")
    assert int(restored.step) == 2 and meta["arch"] == "lenet5"
    with pytest.raises(checkpoint.CheckpointError, match="arch 'lenet5'"):
        ck.restore(_state("lenet5"), "resnet20")
    ck.close()
    files = glob.glob(str(tmp_path / "checkpoints" / "2" / "state" / "**" / "d" / "*"), recursive=True)
    assert files
    for f in files:
        with open(f, "r+b") as fh:
            fh.truncate(7)
    ck = checkpoint.Checkpointer(str(tmp_path), keep=3)
    restored, _ = ck.restore(base, "lenet5")
    assert int(restored.step) == 1
    for got, want in zip(jax_leaves(restored.params), jax_leaves(base.params), strict=True):
        np.testing.assert_allclose(got, want + 1)
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    ck.close()


def test_a_failed_restores_library_logs_are_dropped_a_good_ones_kept(caplog, tmp_path: pathlib.Path) -> None:
    """The records libraries log inside a restore attempt are held: dropped when it fails (the
    trainer's one warning line reports it), passed on, in order, when it succeeds."""
    lib = logging.getLogger("orbax.fake")
    failed, other = str(tmp_path / "checkpoints" / "6" / ""), str(tmp_path / "checkpoints" / "5" / "")
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError):
        with checkpoint._logs_held_unless_it_fails(failed):
            lib.warning("spec dump of the failing read")
            raise ValueError("unreadable")
    assert caplog.records == []
    # The failed read's orphaned tasks, reported by asyncio after the restore returned: dropped for
    # that checkpoint only.
    orphan = "Task exception was never retrieved\nfuture: <Task finished exception=ValueError('Error reading {}d/x')>"
    future = "Future exception was never retrieved\nfuture: <Future finished exception=ValueError('{}d/y')>"
    with caplog.at_level(logging.WARNING):
        logging.getLogger("asyncio").error(orphan.format(failed))
        logging.getLogger("asyncio").error(future.format(failed))  # seen in test_main's damaged rerun
        assert caplog.records == []
        logging.getLogger("asyncio").error(orphan.format(other))
    assert [r.getMessage() for r in caplog.records] == [orphan.format(other)]
    caplog.clear()
    with caplog.at_level(logging.WARNING), checkpoint._logs_held_unless_it_fails(other):
        lib.warning("first")
        lib.error("second")
        assert caplog.records == []
    assert [r.getMessage() for r in caplog.records] == ["first", "second"]


def test_overwritten_bytes_fail_the_checksum_and_fall_back(tmp_path: pathlib.Path, caplog) -> None:
    """4 KiB of random bytes inside the largest data file (same size, readable by orbax) are caught."""
    base = _state()
    ck = checkpoint.Checkpointer(str(tmp_path), keep=3)
    for s in (1, 2):
        ck.save(s, base.replace(step=np.int32(s), params=jax_map(lambda x, s=s: x + s, base.params)),
                {"arch": "lenet5"})
    ck.close()
    files = [f for f in glob.glob(str(tmp_path / "checkpoints" / "2" / "state" / "**" / "d" / "*"), recursive=True)
             if os.path.isfile(f)]
    largest = max(files, key=os.path.getsize)
    size = os.path.getsize(largest)
    with open(largest, "r+b") as fh:
        fh.seek(max(size // 2 - 2048, 0))
        fh.write(np.random.default_rng(0).integers(0, 256, min(4096, size), np.uint8).tobytes())
    assert os.path.getsize(largest) == size
    ck = checkpoint.Checkpointer(str(tmp_path), keep=3)
    restored, _ = ck.restore(base, "lenet5")
    assert int(restored.step) == 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    ck.close()


def test_keep_best_beside_the_last_k(tmp_path: pathlib.Path) -> None:
    """orbax keeps the last 2 plus the best-by-top-1 eval checkpoint; init_from=WORKDIR reads it."""
    from train import warmstart

    base = _state()
    ck = checkpoint.Checkpointer(str(tmp_path), keep=2, keep_best=True)
    for s, top1 in ((1, None), (2, 90.0), (3, None), (4, 50.0), (5, None), (6, None)):
        ck.save(s, base.replace(step=np.int32(s), params=jax_map(lambda x, s=s: x * 0 + s, base.params)),
                {"arch": "lenet5", "num_classes": 10}, metrics=None if top1 is None else {"top1": top1})
        ck.wait()
    assert ck.steps() == [2, 5, 6] and ck.best_step() == 2
    ck.close()
    best = warmstart.read_run(str(tmp_path), "best")
    assert "step 2" in best.description
    assert all(np.all(x == 2) for x in jax_leaves(best.variables["params"]))
    assert "step 6" in warmstart.read_run(str(tmp_path), "latest").description


def test_fallback_restores_leave_no_tracebacks(tmp_path: pathlib.Path, monkeypatch, capfd) -> None:
    """Restores that fall back from a damaged latest checkpoint (truncated data, deleted OCDBT
    manifests), repeated since the reports came in about half of the runs: no unraisable
    "Event loop is closed" reports of abandoned reads and no traceback on stderr."""
    import time

    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)  # what pytest's own hook would hide
    base = _state()
    for rep in range(4):
        d = tmp_path / str(rep)
        ck = checkpoint.Checkpointer(str(d), keep=3)
        for s in (1, 2):
            ck.save(s, base.replace(step=np.int32(s)), {"arch": "lenet5"})
        ck.close()
        damaged = glob.glob(str(d / "checkpoints" / "2" / "state" / "**" / ("d/*" if rep % 2 else "manifest.ocdbt")),
                            recursive=True)
        assert damaged
        for f in damaged:
            if rep % 2:
                with open(f, "r+b") as fh:
                    fh.truncate(7)
            else:
                os.remove(f)
        ck = checkpoint.Checkpointer(str(d), keep=3)
        assert int(ck.restore(base, "lenet5")[0].step) == 1
        ck.close()
    time.sleep(0.5)  # the abandoned reads finish after the restore has returned
    assert not reports, [f"{type(r.exc_value).__name__}: {r.exc_value}" for r in reports[:3]]
    assert "Traceback" not in capfd.readouterr().err


def test_checkpoint_from_before_the_ema_entries_restores(tmp_path: pathlib.Path) -> None:
    """A state saved without ``ema_params``/``ema_batch_stats`` (older runs) still resumes."""
    base = _state()
    tree = serialization.to_state_dict(base)
    del tree["ema_params"], tree["ema_batch_stats"]
    ck = checkpoint.Checkpointer(str(tmp_path), keep=2)
    ck.manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(
        {"arch": "lenet5", "digest": checkpoint.tree_digest(tree)})))
    ck.close()
    ck = checkpoint.Checkpointer(str(tmp_path), keep=2)
    restored, _ = ck.restore(base, "lenet5")
    assert int(restored.step) == 0 and restored.ema_params == {}
    ck.close()


def jax_map(fn, tree):
    import jax

    return jax.tree_util.tree_map(fn, tree)


def jax_leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def _cmd(workdir: pathlib.Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "train.main", f"--workdir={workdir}", *TINY, *extra]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")


def _run(workdir: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(workdir, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=900)


def _saved(workdir: pathlib.Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def _final_params(workdir: pathlib.Path) -> dict:
    step = max(_saved(workdir))
    with ocp.CheckpointManager(str(workdir / "checkpoints"), item_names=("state", "meta")) as mgr:
        tree = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    return {"step": step, "params": tree["params"], "batch_stats": tree.get("batch_stats"), "ema": tree["ema_params"]}


def _start_and_signal(workdir: pathlib.Path, sig: int, after_new_than: int) -> subprocess.CompletedProcess:
    """Start a run and send ``sig`` once a checkpoint newer than ``after_new_than`` exists."""
    out_path, err_path = workdir.parent / f"{workdir.name}.{sig}.out", workdir.parent / f"{workdir.name}.{sig}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(_cmd(workdir), cwd=ROOT, env=_env(), stdout=out, stderr=err, text=True)
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if any(s > after_new_than for s in _saved(workdir)):
                proc.send_signal(sig)
                break
            time.sleep(0.02)
        proc.wait(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out_path.read_text(), err_path.read_text())


@pytest.mark.slow
def test_kill_resume_preempt_equals_uninterrupted(tmp_path: pathlib.Path) -> None:
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = _run(ref_dir)
    assert ref.returncode == 0, ref.stderr[-2000:]

    killed = _start_and_signal(run_dir, signal.SIGKILL, after_new_than=0)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    first = max(_saved(run_dir))
    assert first < 240

    preempted = _start_and_signal(run_dir, signal.SIGTERM, after_new_than=first)
    assert preempted.returncode == 143, preempted.stderr[-2000:]
    assert "SIGTERM at step" in preempted.stderr and f"resumed at step {first}" in preempted.stdout
    second = max(_saved(run_dir))
    assert first < second < 240

    done = _run(run_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed at step {second}" in done.stdout and "test accuracy" in done.stdout
    a, b = _final_params(ref_dir), _final_params(run_dir)
    assert a["step"] == b["step"] == 240
    for x, y in zip(jax_leaves([a["params"], a["ema"]]), jax_leaves([b["params"], b["ema"]]), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)  # the EMA resumes exactly too
    assert not np.allclose(jax_leaves(a["ema"])[0], jax_leaves(a["params"])[0])

    # Resuming this workdir with another arch is refused in one line.
    other = _run(run_dir, "--arch=resnet20")
    assert other.returncode == 1
    err = [ln for ln in other.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "'lenet5'" in err[0] and "'resnet20'" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch, lr", [("lenet5", "1e30"), ("resnet20", "1e6")])
def test_non_finite_loss_stops_and_keeps_good_checkpoint(tmp_path: pathlib.Path, arch: str, lr: str) -> None:
    """Every leaf of every kept checkpoint is finite: params, BatchNorm statistics, optimiser state."""
    out = _run(tmp_path, f"--arch={arch}", f"--config.learning_rate={lr}", "--config.checkpoint_every_steps=1",
               "--config.optimizer=sgd", "--config.momentum=0.9")
    assert out.returncode == 1
    err = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "non-finite" in err[0], out.stderr[-2000:]
    for step in _saved(tmp_path):
        with ocp.CheckpointManager(str(tmp_path / "checkpoints"), item_names=("state", "meta")) as mgr:
            tree = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
        leaves = [np.asarray(x) for x in jax_leaves(tree)]
        assert all(np.all(np.isfinite(x)) for x in leaves if np.issubdtype(x.dtype, np.inexact)), step
