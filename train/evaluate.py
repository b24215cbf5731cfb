"""Evaluate weights without training, in every test-time mode.

    python -m train.evaluate --workdir=runs/resnet20_digits                  # a training run
    python -m train.evaluate --arch=resnet50 --weights=torchvision --dataset=imagenet2012 \\
        --config.data_dir=... --config.eval_modes='("center","10crop")'
    python -m train.evaluate --arch=resnet20 --weights=r20.safetensors --output=eval.json

``--workdir``: the run's own config (``config.json``) and its latest checkpoint. ``--weights``:
any source :func:`flaxnets.load_weights` takes (a tag or a file). Prints one line per mode and
writes a JSON list and a CSV (same name, ``.csv``) with one row per mode: source, arch,
dataset, mode, top1, top5, loss, count. Default output: ``WORKDIR/eval.json``, or
``./eval_<arch>.json``. Bad input: one ``error:`` line and a non-zero exit.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile

from absl import app, flags

# train.main defines --config, --arch, --dataset, --workdir (here: the run to evaluate), --platform.
from train.main import EXIT_ERROR, FLAGS, config_from_flags, explicit_fields, fail

flags.DEFINE_string("weights", None, "Weights tag (torchvision[:TAG], timm[:TAG]) or file.")
flags.DEFINE_string("output", None, "Results JSON path (a CSV is written beside it).")

FIELDS = ("source", "arch", "dataset", "mode", "top1", "top5", "loss", "count")


def evaluate_source(config, *, workdir: str | None = None, weights: str | None = None,
                    explicit=()) -> list[dict]:
    """One result row per eval mode of ``config.eval_modes`` for a workdir or a weights source."""
    import flaxnets
    from train import loop

    if (workdir is None) == (weights is None):
        raise ValueError("give exactly one of --workdir or --weights")
    if workdir is not None:
        path = os.path.join(workdir, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{workdir} is not a training run directory (no config.json)")
        with open(path) as f:
            saved = json.load(f)
        base = config.copy_and_resolve_references()
        for key, value in saved.items():  # the run's resolved config, then the command line's fields
            if key in base and key not in explicit:
                base[key] = tuple(value) if isinstance(value, list) else value
        base.recipe = False
        run = loop.setup_run(base, workdir, explicit=set(base.keys()))
        if run.start_step == 0:
            raise FileNotFoundError(f"{workdir} has no checkpoint to evaluate")
        source = os.path.abspath(workdir)
    else:
        variables = flaxnets.load_weights(config.arch, weights)
        run = loop.evaluation_run(config, variables, tempfile.mkdtemp(prefix="flaxnets_eval_"), explicit)
        source = weights
    try:
        final = loop.final_evaluations(run, run.start_step)
    finally:
        if run.ckpt is not None:
            run.ckpt.close()
        run.writer.close()
        run.bar.close()
    rows = []
    for mode in run.config.eval_modes:
        if f"{mode}_top1" in final:
            rows.append({"source": source, "arch": run.config.arch, "dataset": run.dataset, "mode": mode,
                         "top1": final[f"{mode}_top1"], "top5": final[f"{mode}_top5"],
                         "loss": final[f"{mode}_loss"], "count": final.get(f"{mode}_count")})
    return rows


def write_rows(rows: list[dict], path: str) -> None:
    """``path`` (JSON) and ``path`` with ``.csv``: one row per result."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    with open(os.path.splitext(path)[0] + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str]) -> None:
    config = config_from_flags(argv, "--weights=FILE")
    import flaxnets
    from train import loop
    from train.checkpoint import CheckpointError

    try:
        rows = evaluate_source(config, workdir=FLAGS.workdir, weights=FLAGS.weights, explicit=explicit_fields())
    except (ValueError, FileNotFoundError, loop.TrainingError, CheckpointError, flaxnets.WeightsError) as e:
        fail(e)
    if not rows:
        fail("no eval mode produced a result", EXIT_ERROR)
    output = FLAGS.output or (os.path.join(FLAGS.workdir, "eval.json") if FLAGS.workdir
                              else f"eval_{config.arch}.json")
    write_rows(rows, output)
    for row in rows:
        print(f"{row['mode']}: top-1 {row['top1']:.2f}% top-5 {row['top5']:.2f}% loss {row['loss']:.4f}")
    print(f"results: {output}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
