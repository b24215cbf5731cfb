"""Loaded by pytest before any test module.

* Imports torch ahead of TensorFlow and JAX: importing torchvision (which loads triton's
  extension) after TensorFlow's shared libraries segfaults the process, and the parity
  tests need torch in the same process as the data tests.
* Runs the longest tests first (``tests/durations.json``; refresh with ``--store-durations``)
  and marks those over ``SLOW_SECONDS`` as ``slow``.
"""

import atexit
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile

import pytest

# The trainer's persistent compilation cache ("auto") goes to a directory of this test process,
# removed at exit: a test run neither fills the user's ~/.cache nor hits what an earlier run
# compiled (so recorded durations are a cold machine's, like CI's).
if not os.environ.get("FLAXNETS_COMPILATION_CACHE_DIR"):
    os.environ["FLAXNETS_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="flaxnets-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["FLAXNETS_COMPILATION_CACHE_DIR"], ignore_errors=True)

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401
    import torchvision  # noqa: F401


# --- Longest tests first -------------------------------------------------------------------
# tests/durations.json holds the call durations of the last full run (``--store-durations``
# rewrites it). Starting the longest compiles first lets pytest-xdist's work stealing fill
# both workers instead of ending on one 2-minute compile; tests not in the file go first.
_DURATIONS = pathlib.Path(__file__).parent / "tests" / "durations.json"


def pytest_addoption(parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help="write this run's test durations to tests/durations.json")


# A test that took longer than this in the recorded run is marked ``slow``: the README's
# quick command (``-m "not slow"``) skips it and CI runs it in a second stage (.ci/run).
SLOW_SECONDS = 20.0


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    try:
        known = json.loads(_DURATIONS.read_text())
    except (OSError, ValueError):
        return
    for item in items:
        if known.get(item.nodeid, 0.0) > SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: -known.get(item.nodeid, float("inf")))  # new tests first: may be heavy


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    if report.when == "call":
        _measured[report.nodeid] = round(report.duration, 2)


def pytest_sessionfinish(session) -> None:
    if session.config.getoption("--store-durations") and not hasattr(session.config, "workerinput") and _measured:
        try:  # merge: a run of one stage (-m slow / not slow) keeps the other stage's entries
            merged = json.loads(_DURATIONS.read_text())
        except (OSError, ValueError):
            merged = {}
        merged.update(_measured)
        _DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")
