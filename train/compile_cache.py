"""JAX's persistent compilation cache for training runs, and whether a compile hit it.

On by default (``config.compilation_cache="auto"``): compiled executables are kept under the
user cache dir (``$XDG_CACHE_HOME/flaxnets/jax``, else ``~/.cache/flaxnets/jax``), so a
resumed or repeated run of a deep net loads its train step instead of recompiling it. JAX
writes an entry only for compiles longer than ``jax_persistent_cache_min_compile_time_secs``
(1 s by default; the environment variable ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``
changes it). ``config.compilation_cache=""`` turns the cache off; any other value is a path.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Iterator

import jax

_EVENTS: collections.Counter[str] = collections.Counter()
_HITS = "/jax/compilation_cache/cache_hits"
_REQUESTS = "/jax/compilation_cache/compile_requests_use_cache"
_listening = False


def default_dir() -> str:
    """``$FLAXNETS_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/flaxnets/jax`` or
    ``~/.cache/flaxnets/jax``. (The test suite points the variable at a temporary directory.)"""
    if os.environ.get("FLAXNETS_COMPILATION_CACHE_DIR"):
        return os.environ["FLAXNETS_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flaxnets", "jax")


def _listen(event: str, **_: object) -> None:
    if event in (_HITS, _REQUESTS):
        _EVENTS[event] += 1


def enable(setting: str) -> str | None:
    """Point JAX's persistent cache at ``setting`` (``"auto"``, a path, or ``""`` for off);
    returns the directory in use, or None when off. Safe to call again with another dir."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    global _listening
    if not _listening:
        jax.monitoring.register_event_listener(_listen)
        _listening = True
    path = None
    if setting:
        path = default_dir() if setting == "auto" else os.path.abspath(os.path.expanduser(setting))
    if path == jax.config.jax_compilation_cache_dir and jax.config.jax_enable_compilation_cache == bool(path):
        return path
    if path:
        os.makedirs(path, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", bool(path))
    cc.set_cache_dir(path)
    quiet = logging.getLogger("jax._src.compilation_cache")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # reset_cache logs at INFO
    try:
        cc.reset_cache()  # the cache initialises once per process: make it read the new setting
    finally:
        quiet.setLevel(level)
    return path


@contextlib.contextmanager
def watch() -> Iterator[dict]:
    """``{"hits": n, "lookups": n}`` of the persistent cache during the block."""
    before = dict(_EVENTS)
    out: dict = {}
    try:
        yield out
    finally:
        out["hits"] = _EVENTS[_HITS] - before.get(_HITS, 0)
        out["lookups"] = _EVENTS[_REQUESTS] - before.get(_REQUESTS, 0)


def describe(counts: dict, what: str, directory: str | None) -> str:
    """One line: did compiling ``what`` hit the persistent cache?"""
    if not directory:
        return f"{what}: compiled (persistent compilation cache off)"
    if counts.get("hits"):
        return f"{what}: loaded from the compilation cache ({directory}), not recompiled"
    if counts.get("lookups"):
        return f"{what}: compiled (cache miss; kept in {directory} for the next run if it took ≥ " \
               f"{jax.config.jax_persistent_cache_min_compile_time_secs:g} s)"
    return f"{what}: already compiled in this process"
