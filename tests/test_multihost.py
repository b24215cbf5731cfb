"""The training data stream does not depend on how many processes read it; multi-host runs
(127.0.0.1, gloo CPU collectives) match one process, resume on another process count, and
the coordinator listens only where it was told."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(HERE.parent))
    env.pop("XLA_FLAGS", None)
    return env


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> str:
    from train import data

    d = str(tmp_path_factory.mktemp("tfds"))
    data.dataset_info("digits", d)  # prepares it
    return d


@pytest.mark.parametrize("path", ["random_access", "streamed"])
def test_global_batches_do_not_depend_on_process_count(digits_dir, monkeypatch, path) -> None:
    """Concatenating every process's slice gives the one-process global batch, for 2 and 3
    processes, from step 0 and resumed across an epoch boundary (1437 / 48 = 29.9 steps)."""
    from train import data
    from train.configs.default import get_config
    from train.data import pipeline

    if path == "streamed":  # what splits too large to hold in memory (imagenet2012) take
        monkeypatch.setattr(pipeline, "IN_MEMORY_BYTES", 0)
    cfg = get_config()
    cfg.train_crop, cfg.random_flip, cfg.color_jitter, cfg.shuffle_buffer = "random_resized", False, 0.2, 300
    info = data.dataset_info("digits", digits_dir)
    kw = dict(image_size=8, channels=1, mean=(0.5,), std=(0.25,), global_batch_size=48, seed=3)

    def global_batches(count: int, start: int, n: int) -> list[np.ndarray]:
        its = [data.train_iterator(cfg, info, process_index=i, process_count=count, start_step=start, **kw)
               for i in range(count)]
        out = []
        for _ in range(n):
            parts = [next(it) for it in its]
            assert all(p["image"].shape[0] == 48 // count for p in parts)
            out.append((np.concatenate([p["image"] for p in parts]), np.concatenate([p["label"] for p in parts])))
        return out

    one = global_batches(1, 0, 32)
    for count, start, n in ((2, 28, 3), (3, 0, 2)):
        for (img, lab), (ref_img, ref_lab) in zip(global_batches(count, start, n), one[start:start + n],
                                                  strict=True):
            np.testing.assert_array_equal(lab, ref_lab, err_msg=f"{count} processes from step {start}")
            np.testing.assert_array_equal(img, ref_img, err_msg=f"{count} processes from step {start}")
    # Epoch 0 (steps 0..28) is 1392 of the 1437 examples without repeats: no label comes more
    # often than in the split; the next epoch comes in another order.
    from train.data import builders

    train_labels = builders._digits_arrays()[1][builders.digits_split_indices()[0]]
    seen = np.concatenate([lab for _, lab in one[:29]])
    assert np.all(np.bincount(seen, minlength=10) <= np.bincount(train_labels, minlength=10))
    assert not np.array_equal(one[0][1], one[30][1])


def test_coordinator_binds_where_told(monkeypatch) -> None:
    """``initialize_distributed`` binds the coordinator to the address given (flag or env);
    the real socket is checked in the multi-process test below."""
    import jax

    from train import parallel

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(jax.config, "update", lambda *a: None)
    assert parallel.initialize_distributed("127.0.0.1:4321", 2, 0, platform="cpu")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.5:99")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert parallel.initialize_distributed()
    assert [c["coordinator_bind_address"] for c in calls] == ["127.0.0.1:4321", "10.0.0.5:99"]
    assert [(c["num_processes"], c["process_id"]) for c in calls] == [(2, 0), (4, 3)]


def _losses(workdir: pathlib.Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def _final_state(workdir: pathlib.Path) -> list[np.ndarray]:
    import jax
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(str(workdir / "checkpoints"), item_names=("state", "meta")) as mgr:
        step = mgr.latest_step()
        tree = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    assert step == 12
    return [np.asarray(x) for x in jax.tree_util.tree_leaves({"params": tree["params"], "opt": tree["opt_state"]})]


@pytest.mark.slow
def test_two_processes_equal_one_and_resume_on_one(tmp_path: pathlib.Path, digits_dir: str) -> None:
    """LeNet-5 on digits, 12 steps: 2 processes run steps 1–4, stop (checkpoint), resume on 2
    processes for steps 5–8 and stop; 1 process resumes that run for steps 9–12. Every loss and
    the final state equal a 1-process run's, and the coordinator listened on 127.0.0.1 only."""
    worker, split, ref = str(HERE / "_multihost_worker.py"), tmp_path / "split", tmp_path / "ref"
    addr = f"127.0.0.1:{_free_port()}"
    plan = json.dumps([[str(split), 4], [str(split), 8]])
    procs = [subprocess.Popen([sys.executable, worker, digits_dir, plan, addr, "2", str(i)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    listen = json.loads((pathlib.Path(digits_dir) / "listen.json").read_text())
    # 127.0.0.1, or its IPv4-mapped IPv6 form; never the wildcard (all zeros).
    assert listen and all(a in ("0100007F", "0000000000000000FFFF00000100007F") for a in listen), listen
    single = subprocess.run([sys.executable, worker, digits_dir, json.dumps([[str(split), 12], [str(ref), 12]])],
                            env=_env(), capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    got, want = _losses(split), _losses(ref)
    assert sorted(got) == sorted(want) == list(range(1, 13))
    np.testing.assert_allclose([got[s] for s in range(1, 13)], [want[s] for s in range(1, 13)], rtol=2e-5)
    assert want[1] != want[12]
    for a, b in zip(_final_state(split), _final_state(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
