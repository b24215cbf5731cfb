"""Two processes on 127.0.0.1 (gloo CPU collectives) train, checkpoint and restore on every
host, and end with the same losses and parameters as a single-process run."""

from __future__ import annotations

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


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: pathlib.Path) -> None:
    worker = str(HERE / "_multihost_worker.py")
    single = subprocess.run([sys.executable, worker, str(tmp_path / "one.npz"), str(tmp_path / "w1")],
                            env=_env(), capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    addr = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, worker, str(tmp_path / "two.npz"), str(tmp_path / "w2"),
                               addr, "2", str(i)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    one, two = dict(np.load(tmp_path / "one.npz")), dict(np.load(tmp_path / "two.npz"))
    assert set(one) == set(two) and len(one) > 10
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    assert one["losses"][0] != one["losses"][-1]
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)
