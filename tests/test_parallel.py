"""jit-over-mesh and pmap steps on 8 CPU devices equal a 1-device run (loss and params)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


def _run(out: pathlib.Path, ndev: int, *runs: str) -> dict:
    """Each ``MODE:NDEV`` run in one subprocess whose host platform has ``ndev`` devices."""
    # Keep the root conftest's compile-time flags (opt level 0): they change no op semantics.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={ndev}".strip()
    env = dict(os.environ, XLA_FLAGS=flags,
               JAX_PLATFORMS="cpu", PYTHONPATH=str(HERE.parent))
    proc = subprocess.run([sys.executable, str(HERE / "_parallel_worker.py"), str(out), *runs],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {run: dict(np.load(out / f"{run.replace(':', '-')}.npz")) for run in runs}


@pytest.mark.slow
def test_jit_and_pmap_match_single_device(tmp_path: pathlib.Path) -> None:
    """A 1-device jit run (one device of the 8), then jit over 8 devices and pmap over 8."""
    runs = _run(tmp_path, 8, "jit:1", "jit:8", "pmap:8")
    ref = runs["jit:1"]
    assert np.all(np.isfinite(ref["losses"])) and ref["losses"][0] != ref["losses"][-1]
    for mode in ("jit", "pmap"):
        got = runs[f"{mode}:8"]
        assert set(got) == set(ref)
        np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5, atol=1e-5, err_msg=mode)
        for k in ref:
            # BatchNorm running statistics and PreciseBN moments included: pmap must use
            # cross-device statistics.
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{mode}: {k}")
