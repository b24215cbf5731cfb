"""``python -m flaxnets.export_table``: the per-family support table of EXPORT.md.

Exports the smallest model of every family (random variables) in every format of
:func:`flaxnets.export`, reloads each export, compares its logits with flax's and prints a
Markdown row per model as it goes; each model runs in its own process (memory, crashes, time
limit). A separate module from :mod:`flaxnets.export`, which ``import flaxnets`` loads (``python
-m`` of an already imported module warns).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import unfreeze

from flaxnets.export import FORMATS, _first_line, export, load_stablehlo
from flaxnets.registry import create_model, list_models, model_info
from flaxnets.summary import variable_shapes


def family_models() -> tuple[str, ...]:
    """The smallest registered model (fewest ``ModelInfo.params``, then name) of every family."""
    best: dict[str, tuple[int, str]] = {}
    for name in list_models():
        info = model_info(name)
        best[info.family] = min(best.get(info.family, (info.params, name)), (info.params, name))
    return tuple(name for _, name in best.values())


# Max abs logit difference (float32) an export must keep to count as working, relative where the
# logits exceed 1 in magnitude (a random DarkNet-53 has logits ~400: float32 epsilon × 400 = 5e-5).
TOLERANCE = 1e-4


def random_variables(name: str, seed: int = 0) -> dict[str, Any]:
    """Random float32 variables of ``name`` with ``model.init``'s tree, scaled to give O(1) logits.

    Kernels are He-normal, BatchNorm scales uniform in [0.5, 1) with statistics (0, 1), other
    parameters a small normal (a flax init often gives logits ~1e-5, which any export matches).
    """
    return random_like(variable_shapes(create_model(name), model_info(name).input_size, seed), seed)


def random_like(shapes: Any, seed: int = 0, bn_scale: tuple[float, float] = (0.5, 1.0)) -> dict[str, Any]:
    """Variables with the shapes of ``shapes`` (``jax.eval_shape`` of an init) drawn by numpy.

    Kernels He-normal for their fan-in, BatchNorm scales uniform in ``bn_scale``, statistics (0, 1),
    other params a small normal. Drawn in float32 and scaled in place: VGG-11's 102M-weight FC
    would need 1.6 GB in float64 (and float64 draws take 3.5x the CPU time). The test suite's
    random variables come from here too.
    """
    from flax import traverse_util

    flat = traverse_util.flatten_dict(unfreeze(shapes))
    rng = np.random.default_rng(seed)
    out = {}
    for path, s in flat.items():
        if path[0] == "batch_stats":
            value = np.ones(s.shape, np.float32) if path[-1] == "var" else np.zeros(s.shape, np.float32)
        elif path[-1] == "kernel":
            value = rng.standard_normal(s.shape, dtype=np.float32)
            value *= np.float32(np.sqrt(2.0 / max(int(np.prod(s.shape[:-1])), 1)))
        elif path[-1] == "scale":
            is_bn = ("batch_stats", *path[1:-1], "mean") in flat
            value = rng.uniform(*bn_scale, s.shape).astype(np.float32) if is_bn else np.ones(s.shape, np.float32)
        else:
            value = rng.standard_normal(s.shape, dtype=np.float32)
            value *= np.float32(0.05)
        out[path] = np.asarray(value, dtype=s.dtype)
    return traverse_util.unflatten_dict(out)


def _run_export(fmt: str, path: str, x: np.ndarray) -> np.ndarray:
    """Logits of the export in ``path`` for ``x`` (a TFLite model of fixed batch runs per sample)."""
    if fmt == "stablehlo":
        return np.asarray(load_stablehlo(path).call(jnp.asarray(x)))
    import tensorflow as tf

    if fmt == "saved_model":
        return tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(x))["logits"].numpy()
    interpreter = tf.lite.Interpreter(model_path=path)
    inp = interpreter.get_input_details()[0]
    batch = x.shape[0] if inp["shape_signature"][0] == -1 else int(inp["shape"][0])
    outs = []
    for i in range(0, x.shape[0], batch):
        interpreter.resize_tensor_input(inp["index"], x[i:i + batch].shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x[i:i + batch])
        interpreter.invoke()
        outs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return np.concatenate(outs)


def _batch_of(fmt: str, path: str) -> str:
    """``"b"`` when the export in ``path`` takes any batch, else its fixed batch."""
    if fmt == "stablehlo":
        dim = load_stablehlo(path).exported.in_avals[-1].shape[0]
        return "b" if not isinstance(dim, int) else str(dim)
    if fmt == "tflite":
        import tensorflow as tf

        shape = tf.lite.Interpreter(model_path=path).get_input_details()[0]["shape_signature"]
        return "b" if shape[0] == -1 else str(shape[0])
    return "b"  # the SavedModel signature is exported with a None batch


def _size(name: str, size: str) -> tuple[int, int, int]:
    """(H, W, C) of ``name``'s input: ``"default"`` is ``input_size``, ``"min"`` is ``min_size`` square."""
    h, w, c = model_info(name).input_size
    if size == "min":
        return (model_info(name).min_size, model_info(name).min_size, c)
    return (h, w, c)


def check(name: str, formats: Sequence[str] = FORMATS, workdir: str | None = None,
          on_cell: Callable[[str, str], None] | None = None, size: str = "default") -> dict[str, str]:
    """Export ``name`` (random variables) in each format, reload it, compare with flax: a cell per format.

    ``size``: ``"default"`` (the model's ``input_size``) or ``"min"`` (its ``min_size``, quicker).

    ``on_cell(format, cell)`` is called as each cell is done (the table's subprocess prints it).
    """
    import shutil
    import tempfile
    import time

    variables = random_variables(name)
    model = create_model(name)
    h, w, c = _size(name, size)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, h, w, c)).astype(np.float32) for n in (2, 3)]
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    refs = [np.asarray(apply(variables, x)) for x in xs]
    cells = {}
    root = tempfile.mkdtemp(prefix=f"export-{name}-", dir=workdir)
    try:
        for fmt in formats:
            path = os.path.join(root, f"{name}.{fmt}")
            start = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    export(name, variables, path, fmt, input_size=(h, w, c))
                fallback = [str(w.message) for w in caught if "symbolic batch" in str(w.message)]
                diff = max(float(np.abs(_run_export(fmt, path, x) - r).max()) / max(1.0, float(np.abs(r).max()))
                           for x, r in zip(xs, refs, strict=True))
                seconds = time.perf_counter() - start
                verdict = "works" if diff <= TOLERANCE else f"**wrong logits** (max rel. diff {diff:.1e})"
                cells[fmt] = f"{verdict}, batch {_batch_of(fmt, path)}, {seconds:.0f} s"
                if fallback:  # "name: TFLite cannot take a symbolic batch (why); exporting batch 1"
                    why = fallback[0].split("(", 1)[-1].rsplit(")", 1)[0]
                    cells[fmt] += f" (symbolic batch: `{why}`)"
            except Exception as e:  # noqa: BLE001 - the table records any failure as its first line
                cells[fmt] = f"`{type(e).__name__}: {_first_line(e)[:160]}`"
            finally:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.exists(path):
                    os.remove(path)
            if on_cell is not None:
                on_cell(fmt, cells[fmt])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return cells


def _row_in_subprocess(name: str, formats: Sequence[str], timeout: float, size: str) -> list[str]:
    """:func:`check` of one model in a fresh process (memory, crashes, time limit): a cell per format."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from flaxnets.export_table import main; main()",
           "--row", name, ",".join(formats), "--size", size]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"`timed out after {timeout:.0f} s`"] * len(formats)
    cells = dict(line[len("CELL "):].split(" ", 1) for line in result.stdout.splitlines() if line.startswith("CELL "))
    if result.returncode != 0:
        how = "killed (out of memory?)" if result.returncode in (-9, 137) else f"exit {result.returncode}"
        tail = (result.stderr.strip().splitlines() or [""])[-1][:160]
        failed = f"`process {how}: {tail}`" if tail else f"`process {how}`"
        return [cells.get(f, failed) for f in formats]
    return [cells[f] for f in formats]


def table(models: Sequence[str] | None = None, formats: Sequence[str] = FORMATS, timeout: float = 1800,
          size: str = "default") -> str:
    """Markdown table family × format of :func:`check`, one process per model, printed as it goes."""
    titles = {"saved_model": "SavedModel", "stablehlo": "StableHLO", "tflite": "TFLite"}
    lines = ["| family | model | " + " | ".join(titles[f] for f in formats) + " |",
             "|---|---|" + "---|" * len(formats)]
    print("\n".join(lines), flush=True)
    for name in models or family_models():
        cells = _row_in_subprocess(name, formats, timeout, size)
        lines.append(f"| {model_info(name).family} | `{name}` | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m flaxnets.export_table [--models a,b] [--formats f,g] [--timeout s]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flaxnets.export_table", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated model names (default: the smallest "
                        "model of every family)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per table row")
    parser.add_argument("--size", choices=("default", "min"), default="default",
                        help="input size: the model's input_size or its min_size (quicker)")
    parser.add_argument("--row", nargs=2, metavar=("MODEL", "FORMATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        parser.error(f"unknown formats {bad}; valid formats: {', '.join(FORMATS)}")
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        parser.error(f"unknown models {unknown} (python -m flaxnets lists them)")
    if args.row:
        name, fmts = args.row
        check(name, fmts.split(","), on_cell=lambda fmt, cell: print(f"CELL {fmt} {cell}", flush=True),
              size=args.size)
        return
    table(models or None, formats, args.timeout, args.size)


if __name__ == "__main__":
    main()
