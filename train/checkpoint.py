"""Checkpoints: an orbax ``CheckpointManager`` in ``workdir/checkpoints``.

Each checkpoint holds the train state (params, BatchNorm statistics, optimiser state,
step) and JSON metadata (arch, dataset, config). Saving is asynchronous; every process
calls :meth:`Checkpointer.save`/:meth:`restore` (orbax coordinates multi-host writes).
Restoring falls back to the previous checkpoint, with a warning, when the latest one is
unreadable or its content checksum (BLAKE2b of every saved array, stored in the metadata)
does not match, and refuses a checkpoint written for another arch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

log = logging.getLogger(__name__)


def _quiet_abandoned_reads() -> None:
    """Drop tensorstore's reports of reads that complete after orbax gave up on a restore.

    Orbax runs each restore in a fresh asyncio event loop and closes it as soon as the restore
    raises (a corrupt checkpoint: one array fails). Reads of the other arrays still in flight
    in tensorstore then finish into the closed loop; each one's ``call_soon_threadsafe``
    raises ``RuntimeError: Event loop is closed``, which tensorstore reports through
    ``sys.unraisablehook``, a traceback per read, although nothing is lost (those results
    belong to the abandoned restore; the fallback restore is a new one). This hook drops
    exactly those reports and passes every other one on.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_drops_closed_loop_reads", False):
        return

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        frames = [f.name for f in traceback.extract_tb(unraisable.exc_traceback)]
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed" and "call_soon_threadsafe" in frames:
            return
        previous(unraisable)

    hook._drops_closed_loop_reads = True
    sys.unraisablehook = hook


_NEVER_RETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")


class _OrphanedReadErrors(logging.Filter):
    """Drops asyncio's "Task (or Future) exception was never retrieved" records that name a
    checkpoint whose restore already failed (and was reported): the failed read's other in-flight
    reads end as orphaned tasks or futures, logged when they are garbage-collected, after the
    restore returned (which of the two depends on where each read was)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(_NEVER_RETRIEVED)
                    and any(path in message for path in self.paths))


_ORPHANED_READS = _OrphanedReadErrors()
logging.getLogger("asyncio").addFilter(_ORPHANED_READS)


@contextmanager
def _logs_held_unless_it_fails(path: str) -> Iterator[None]:
    """Hold the log records emitted inside the block; pass them on if it succeeds, drop them
    if it raises. A failed restore is reported once by :meth:`Checkpointer.restore` (one
    warning line with the error's first line); orbax's and tensorstore's own records of the
    same failure (a spec dump per unreadable array, their number depending on which reads
    were in flight) would only repeat it, as would the orphaned reads of ``path`` that
    asyncio reports later (:class:`_OrphanedReadErrors`)."""
    held: list[tuple[logging.Handler, logging.LogRecord]] = []
    holds = {}
    for handler in logging.getLogger().handlers:
        holds[handler] = lambda record, handler=handler: held.append((handler, record))  # falsy: held
        handler.addFilter(holds[handler])
    try:
        yield
    except BaseException:
        _ORPHANED_READS.paths.add(path)
        raise
    finally:
        for handler, hold in holds.items():
            handler.removeFilter(hold)
    for handler, record in held:
        handler.handle(record)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used (other arch, or every copy unreadable)."""


class Checkpointer:
    """Save/restore the training state under ``workdir/checkpoints``."""

    def __init__(self, workdir: str, keep: int = 3, asynchronous: bool = True, keep_best: bool = False):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        if keep_best:
            # The last ``keep`` checkpoints plus the best one by eval top-1 (saves that carry
            # ``metrics``), through orbax's own preservation policies.
            policy = ocp.checkpoint_managers.AnyPreservationPolicy([
                ocp.checkpoint_managers.LatestN(n=max(int(keep), 1)),
                ocp.checkpoint_managers.BestN(get_metric_fn=best_metric, n=1,
                                              keep_checkpoints_without_metrics=False)])
            options = ocp.CheckpointManagerOptions(best_fn=best_metric, best_mode="max",
                                                   keep_checkpoints_without_metrics=False,
                                                   preservation_policy=policy,
                                                   enable_async_checkpointing=asynchronous, create=True)
            logging.getLogger("absl").addFilter(_NO_METRICS_WARNING)
        else:
            options = ocp.CheckpointManagerOptions(max_to_keep=max(int(keep), 1),
                                                   enable_async_checkpointing=asynchronous,
                                                   create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "meta"))
        _quiet_abandoned_reads()

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, host_state: Any, meta: dict, force: bool = False,
             metrics: dict | None = None) -> bool:
        """Start saving ``host_state`` (a TrainState) at ``step``; returns whether it saved.

        ``metrics`` (``{"top1": ...}``) rank the checkpoint for ``keep_best``."""
        tree = serialization.to_state_dict(host_state)
        meta = {**dict(meta), "digest": tree_digest(tree)}  # verified on restore
        return self.manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)), force=force,
            metrics=dict(metrics) if metrics else None)

    def _restore_state(self, step: int, target: Any) -> Any:
        """The state at ``step`` in ``target``'s structure. A checkpoint written before the state
        gained empty entries (e.g. ``ema_params`` of a run without EMA) restores with them added."""
        try:
            with _logs_held_unless_it_fails(os.path.join(self.directory, str(step), "")):
                return self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target)))["state"]
        except ValueError as e:
            if "tree structures do not match" not in str(e):
                raise
            on_disk = set(self.manager.item_metadata(step)["state"].keys())
            empty = {k: v for k, v in _empty_entries(target).items() if k not in on_disk}
            if not empty:
                raise
            slim = {k: v for k, v in target.items() if k not in empty}
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(slim)))
            return {**restored["state"], **empty}

    def best_step(self) -> int | None:
        """The kept step with the best eval top-1 (``keep_best``), else None."""
        if self.manager._options.best_fn is None:  # noqa: SLF001 - orbax keeps its options there
            return None
        step = self.manager.best_step()
        return step if step is not None and self.manager.metrics(step) else None

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()

    def read_meta(self, step: int) -> dict:
        """The JSON metadata stored with checkpoint ``step``."""
        out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(self, host_state: Any, arch: str) -> tuple[Any, dict] | None:
        """Latest readable checkpoint restored into ``host_state``'s structure, or None.

        Raises :class:`CheckpointError` if the checkpoint was written for another arch or
        if no saved checkpoint can be read.
        """
        saved = self.steps()
        if not saved:
            return None
        target = jax.tree_util.tree_map(np.asarray, serialization.to_state_dict(host_state))
        errors = []
        for step in reversed(saved):
            try:
                meta = self.read_meta(step)
            except Exception as e:  # noqa: BLE001 - any unreadable metadata → try older
                errors.append(f"step {step}: {type(e).__name__}: {e}")
                log.warning("checkpoint at step %d unreadable (%s); trying the previous one", step, e)
                continue
            if meta.get("arch") != arch:
                raise CheckpointError(
                    f"workdir {os.path.dirname(self.directory)} holds a checkpoint of arch "
                    f"{meta.get('arch')!r}, not {arch!r}; use another --workdir")
            try:
                restored = self._restore_state(step, target)
                _check_finite_structure(target, restored)
                if "digest" in meta and tree_digest(restored) != meta["digest"]:
                    raise ValueError("content checksum mismatch (the data files changed after the save)")
            except Exception as e:  # noqa: BLE001 - corrupt data → fall back to an older one
                errors.append(f"step {step}: {type(e).__name__}: {str(e)[:200]}")
                log.warning("checkpoint at step %d is corrupt (%s); falling back to the previous one",
                            step, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
                continue
            for bad in saved[saved.index(step) + 1:]:  # drop unreadable newer ones so saving resumes
                self.manager.delete(bad)
            return serialization.from_state_dict(host_state, restored), meta
        raise CheckpointError(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))


def _empty_entries(tree: Any) -> dict:
    """Top-level entries of a state dict that hold no arrays (e.g. ``ema_params`` of a run
    without EMA)."""
    return {k: v for k, v in tree.items() if not jax.tree_util.tree_leaves(v)}


def best_metric(metrics: Any) -> float:
    """What ``keep_best`` ranks checkpoints by: the eval top-1 saved with them."""
    return float(metrics["top1"])


class _NoMetricsWarning(logging.Filter):
    """Drops orbax's warning for checkpoints saved without metrics (only evals carry them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


_NO_METRICS_WARNING = _NoMetricsWarning()


def tree_digest(tree: Any) -> str:
    """BLAKE2b of every leaf's dtype, shape and bytes, in tree order: a checkpoint's content checksum."""
    h = hashlib.blake2b(digest_size=20)
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.integer):  # the step restores as the target's int width
            a = a.astype(np.int64)
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_finite_structure(target: Any, restored: Any) -> None:
    """Raise if the restored tree differs in structure/shapes from the target."""
    t_leaves, t_def = jax.tree_util.tree_flatten(target)
    r_leaves, r_def = jax.tree_util.tree_flatten(restored)
    if t_def != r_def:
        raise ValueError("checkpoint structure differs from the model's state")
    for a, b in zip(t_leaves, r_leaves, strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"checkpoint shape {np.shape(b)} != expected {np.shape(a)}")
