"""jit-over-mesh and pmap steps on 8 CPU devices equal a 1-device run (loss and params)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


def _run(mode: str, ndev: int, out: pathlib.Path) -> dict:
    # Keep the root conftest's compile-time flags (opt level 0): they change no op semantics.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={ndev}".strip()
    env = dict(os.environ, XLA_FLAGS=flags,
               JAX_PLATFORMS="cpu", PYTHONPATH=str(HERE.parent))
    proc = subprocess.run([sys.executable, str(HERE / "_parallel_worker.py"), mode, str(ndev), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.slow
def test_jit_and_pmap_match_single_device(tmp_path: pathlib.Path) -> None:
    ref = _run("jit", 1, tmp_path / "one.npz")
    assert np.all(np.isfinite(ref["losses"])) and ref["losses"][0] != ref["losses"][-1]
    for mode in ("jit", "pmap"):
        got = _run(mode, 8, tmp_path / f"{mode}.npz")
        assert set(got) == set(ref)
        np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5, atol=1e-5, err_msg=mode)
        for k in ref:
            # BatchNorm running statistics included: pmap must use cross-device statistics.
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{mode}: {k}")
