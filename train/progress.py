"""Progress display and metric logs.

:class:`Progress` shows step, epoch, loss, accuracy, learning rate and img/s: a rich
progress bar on a terminal, plain log lines otherwise; :func:`track` does the same for the
batches of a long evaluation. :class:`MetricWriter` appends every
logged dict to ``workdir/metrics.jsonl`` and writes TensorBoard scalars (``tf.summary``).
Only process 0 displays and writes.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def is_main_process() -> bool:
    """True on the process that prints and writes logs."""
    return jax.process_index() == 0


class MetricWriter:
    """JSON-lines file plus optional TensorBoard event files in ``workdir``."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        self.enabled = is_main_process()
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)
            if tensorboard:
                try:
                    import tensorflow as tf

                    tf.config.set_visible_devices([], "GPU")
                    self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
                except Exception as e:  # noqa: BLE001 - TensorBoard is optional
                    print(f"TensorBoard logging disabled: {e}", file=sys.stderr)

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` (numbers) of ``split`` ("train", "eval", ...) at ``step``."""
        if not self.enabled:
            return
        row = {"step": int(step), "split": split, "time": time.time()}
        row.update({k: (float(v) if isinstance(v, int | float) or hasattr(v, "__float__") else v)
                    for k, v in metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            # tf.summary.write with the "scalars" plugin tag: what tf.summary.scalar writes,
            # without needing the tensorboard package installed.
            meta = summary_pb2.SummaryMetadata()
            meta.plugin_data.plugin_name = "scalars"
            with self._tb.as_default(step=int(step)):
                for k, v in metrics.items():
                    if isinstance(v, int | float) and math.isfinite(float(v)):
                        tf.summary.write(f"{split}/{k}", tf.constant(float(v), tf.float32), metadata=meta)
            self._tb.flush()

    def close(self) -> None:
        """Flush TensorBoard files."""
        if self._tb is not None:
            self._tb.close()


def _fmt(metrics: dict[str, Any]) -> str:
    parts = []
    for k, v in metrics.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}" if k not in ("img_s",) else f"{k} {v:.0f}")
        else:
            parts.append(f"{k} {v}")
    return " | ".join(parts)


class Progress:
    """Training progress: rich bar on a TTY, plain lines (``print``) otherwise."""

    def __init__(self, total_steps: int, start_step: int = 0, use_rich: bool | None = None):
        self.enabled = is_main_process()
        self.total = total_steps
        if use_rich is None:
            use_rich = sys.stdout.isatty()
        self._bar = None
        if self.enabled and use_rich:
            try:
                from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
                from rich.progress import Progress as RichProgress

                self._bar = RichProgress(TextColumn("[bold]train"), BarColumn(),
                                         TextColumn("{task.completed}/{task.total}"),
                                         TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
                self._task = self._bar.add_task("train", total=total_steps, completed=start_step, info="")
                self._bar.start()
            except ImportError:
                self._bar = None

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        """Show the metrics of ``step`` (called every ``log_every_steps``)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=_fmt(metrics))
        else:
            print(f"step {step}/{self.total} | {_fmt(metrics)}", flush=True)

    def message(self, text: str) -> None:
        """A line of text above the bar (or on its own line)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


EVAL_PROGRESS_EVERY_S = 30.0  # plain-text progress: at most one line per this many seconds


def track(items: Iterable[T], total: int | None, label: str, *, every_s: float | None = None,
          use_rich: bool | None = None) -> Iterator[T]:
    """Yield ``items`` (e.g. the batches of a long evaluation) while showing how far it got.

    On a terminal: a rich bar that disappears when done. Otherwise (logs, pipes): no escape
    codes, a plain ``label: i/total batches (t s)`` line at most every ``every_s`` seconds
    (:data:`EVAL_PROGRESS_EVERY_S`), so a short pass prints nothing and a long one a line now
    and then, plus a last line when it printed any. Only process 0 shows anything.
    """
    if not is_main_process():
        yield from items
        return
    if use_rich is None:
        use_rich = sys.stdout.isatty()
    if use_rich:
        try:
            from rich.markup import escape
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
        except ImportError:
            use_rich = False
    if use_rich:
        with RichProgress(TextColumn(f"[bold]{escape(label)}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(label, total=total)
            for item in items:
                yield item
                bar.advance(task)
        return
    every = EVAL_PROGRESS_EVERY_S if every_s is None else every_s
    start = last = time.time()
    done, shown = 0, False
    for item in items:
        yield item
        done += 1
        now = time.time()
        if now - last >= every:
            print(f"{label}: {done}/{total or '?'} batches ({now - start:.0f} s)", flush=True)
            last, shown = now, True
    if shown and now != last:
        print(f"{label}: {done}/{total or '?'} batches ({time.time() - start:.0f} s)", flush=True)


# ------------------------------------------------------------------------------ quiet console
# The trainer's console holds its own lines. Libraries' INFO chatter (JAX's backend probe,
# orbax, TFDS) is dropped; their warnings and errors still show, one line each
# ("warning: ..."); TensorFlow's load-time C++ notices (oneDNN, CPU features) are dropped,
# its load-time warnings/errors passed on.

_TF_LOAD_NOTICES = ("WARNING: All log messages before absl::InitializeLog",  # absl's note before its init
                    "To enable the following instructions")  # 2nd line of the CPU-feature notice


class _OneLineFormatter(logging.Formatter):
    """``warning: message`` on one line (exception text folded in)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += f" ({self.formatException(record.exc_info).strip().splitlines()[-1]})"
        return f"{record.levelname.lower()}: {' '.join(text.split())}"


def _not_a_library_notice(record: logging.LogRecord) -> bool:
    """TFDS's notes below ERROR (e.g. "Variant folder … has no dataset_info.json" while it scans
    its data dir) concern TFDS's cache, not the user: dropped."""
    return record.levelno >= logging.ERROR or "tensorflow_datasets" not in record.pathname


def quiet_console() -> None:
    """Configure the process's logging for a command-line run of the trainer (see above)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # INFO off, for TensorFlow builds that honour it
    formatter = _OneLineFormatter()
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        # absl's handler formats with the Python handler it wraps
        getattr(handler, "python_handler", handler).setFormatter(formatter)
        handler.addFilter(_not_a_library_notice)
    for name in ("absl", "jax", "orbax", "tensorflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("absl").addFilter(_not_a_library_notice)
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"warning: {' '.join(str(message).split())} ({category.__name__})\n")


def _is_load_notice(line: str) -> bool:
    return line.startswith(_TF_LOAD_NOTICES) or bool(re.match(r"I\d{4} ", line))  # absl C++ INFO lines


def import_quietly(module: str) -> Any:
    """``importlib.import_module(module)`` with the C++ INFO notices TensorFlow writes to the
    process's stderr while it loads dropped; anything else it writes there is passed on."""
    if module in sys.modules:
        return sys.modules[module]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return importlib.import_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not _is_load_notice(line):
                    print(line, file=sys.stderr)
            if "tensorflow_datasets" in sys.modules:  # tqdm bars: escape codes in logs, noise on a terminal
                sys.modules["tensorflow_datasets"].disable_progress_bar()
