"""Evaluate weights without training, in every test-time mode, one model or an ensemble.

    python -m train.evaluate --workdir=runs/resnet20_digits                  # a training run
    python -m train.evaluate --arch=resnet50 --weights=torchvision --dataset=imagenet2012 \\
        --config.data_dir=... --config.eval_modes='("center","10crop","144crop")'
    python -m train.evaluate --arch=resnet20 --weights=r20.safetensors --output=eval.json
    python -m train.evaluate --ensemble=runs/a,runs/b,vgg16=torchvision --dataset=imagenet2012 \\
        --config.eval_modes='("dense+multicrop150",)'

``--workdir``: the run's own config (``config.json``) and its latest checkpoint. ``--weights``:
any source :func:`flaxnets.load_weights` takes (a tag or a file). ``--ensemble``: two or more
comma-separated members, each a run's workdir or ``[ARCH=]WEIGHTS`` (the arch of a weights
member comes from ``ARCH=``, else a flaxnets ``.safetensors`` file's own metadata, else
``--arch``); archs may differ. The members' softmax outputs are averaged per example, as in
VGG Sec. 4.4 ("combine the outputs of several models by averaging their soft-max class
posteriors") and GoogLeNet Sec. 7 (softmax averaged "over multiple crops and over all the
individual classifiers"). Every member is evaluated with the command line's ``eval_modes``,
``eval_batch_size`` (default: ``batch_size``) and ``steps_per_eval``, so all see the same
examples (checked: their labels must agree). A run trained with an EMA of its weights takes
part with the EMA (its result).

Test-time modes (``config.eval_modes``): ``center``, ``10crop``, ``multiscale`` and ``dense``
(:mod:`train.loop`), and

* ``144crop`` — GoogLeNet (Szegedy et al. 2015, Sec. 7): the shorter side resized to 256, 288,
  320 and 352; the left, centre and right squares (top, centre, bottom for portrait images);
  from each the four corner and the centre 224 crops and the whole square resized to 224,
  each also mirrored: 4 × 3 × 6 × 2 = 144 crops. For a model whose input size ``s`` is not
  224 the sides scale proportionally, ``round(side · s / 224)`` (at least ``s``), and the
  crops are ``s``×``s`` (:func:`train.data.preprocess.scaled_sides`).
* ``multicrop150`` — VGG (Simonyan & Zisserman 2015, Sec. 3.2): "50 crops per scale (5 × 5
  regular grid with 2 flips), for a total of 150 crops over 3 scales". The scales Q follow
  Sec. 4.2: {S_min, ½(S_min + S_max), S_max} for a model trained with scale jittering
  S ∈ [S_min, S_max] (Table 5: S ∈ [256, 512], Q = {256, 384, 512}), {S − 32, S, S + 32} for a
  model trained at a fixed S (``scale_jitter_range`` with S_min = S_max; otherwise S is the
  eval resize side ``image_size / eval_crop_ratio``). S, its range and the ±32 scale with
  ``image_size / 224`` like the training crops; ``config.multiscale_sizes``, when set, gives
  Q directly (as for ``multiscale``).
* ``a+b`` — the softmax outputs of modes ``a`` and ``b`` averaged per example, e.g. VGG
  Table 5's "multi-crop & dense" is ``dense+multicrop150``.

The multi-crop modes stream crops in chunks of ``eval_batch_size`` crops (never all crops of a
batch of images at once). Long passes show progress (:func:`train.progress.track`).

Writes a JSON list and a CSV (same name, ``.csv``) with one row per mode (and, for an
ensemble, per member plus one ``source: "ensemble"`` row per mode whose arch is the members'
joined by "+"): source, arch, dataset, mode, top1, top5, loss, count. Default output:
``WORKDIR/eval.json``, ``./eval_<arch>.json`` or ``./eval_ensemble.json``. Bad input: one
``error:`` line and a non-zero exit.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

import flaxnets
from train import loop, parallel, progress, steps, validate

FIELDS = ("source", "arch", "dataset", "mode", "top1", "top5", "loss", "count")
ENSEMBLE_FIELDS = ("eval_modes", "eval_batch_size", "steps_per_eval")  # the same for every member
CROP_MODES = ("144crop", "multicrop150")


@dataclasses.dataclass
class Outputs:
    """Softmax outputs of this process's eval examples, in eval order (padding removed)."""

    probs: np.ndarray  # (n, num_classes)
    labels: np.ndarray  # (n,)


def metrics(out: Outputs) -> dict[str, float]:
    """Top-1/top-5 (%), mean NLL and count of ``out`` over all processes."""
    probs, labels = out.probs, out.labels
    order = np.argsort(-probs, axis=-1, kind="stable")
    top1 = (order[:, 0] == labels).sum()
    top5 = (order[:, :5] == labels[:, None]).any(-1).sum()
    nll = -np.log(probs[np.arange(len(labels)), labels] + 1e-12).sum()
    s = parallel.all_sum({"count": np.float64(len(labels)), "top1": np.float64(top1), "top5": np.float64(top5),
                          "loss": np.float64(nll)})
    n = max(float(s["count"]), 1.0)
    return {"top1": 100.0 * float(s["top1"]) / n, "top5": 100.0 * float(s["top5"]) / n,
            "loss": float(s["loss"]) / n, "count": float(s["count"])}


def check_same_examples(a: Outputs, b: Outputs, what: str = "outputs") -> None:
    """``ValueError`` unless ``a`` and ``b`` are outputs for the same examples and classes."""
    if b.labels.shape != a.labels.shape or not np.array_equal(b.labels, a.labels):
        raise ValueError(f"the {what} to average see different eval examples ({len(a.labels)} vs {len(b.labels)} "
                         "examples, or other labels): the same dataset and eval settings are needed")
    if b.probs.shape != a.probs.shape:
        raise ValueError(f"the {what} to average have different numbers of classes "
                         f"({a.probs.shape[-1]} vs {b.probs.shape[-1]})")


def average(outputs: Sequence[Outputs], what: str = "outputs") -> Outputs:
    """The mean softmax of ``outputs`` of the same examples (ensemble members or test-time
    modes); ``ValueError`` if their examples (labels) or classes differ."""
    total = outputs[0].probs.astype(np.float64)
    for other in outputs[1:]:
        check_same_examples(outputs[0], other, what)
        total += other.probs
    return Outputs((total / len(outputs)).astype(np.float32), outputs[0].labels)


def _pass_outputs(run: loop.Run, fn: Any, batches: Iterable[dict], label: str) -> Outputs:
    """Softmax outputs of one pass over ``batches`` ({"image", "label", "mask"})."""
    probs, labels = [], []
    for batch in progress.track(batches, loop.eval_pass_length(run), label):
        out = run.par.local_output(fn(run.state, run.par.put_batch({"image": batch["image"]})))
        keep = np.asarray(batch["mask"]) > 0  # padding comes last: order is kept
        probs.append(out[keep])
        labels.append(np.asarray(batch["label"])[keep])
    return Outputs(np.concatenate(probs).astype(np.float32), np.concatenate(labels).astype(np.int64))


def crop_sides(run: loop.Run, mode: str) -> tuple[int, ...]:
    """Shorter sides the ``mode`` ("144crop", "multicrop150") crops are taken at (module docstring)."""
    from train.data import preprocess as pp

    if mode == "144crop":
        return pp.scaled_sides(pp.GOOGLENET_SIDES, run.image_size)
    return tuple(loop.multiscale_sizes(run))


def _crop_outputs(run: loop.Run, mode: str, label: str) -> Outputs:
    """Softmax of every crop of ``mode`` averaged per example, streamed in chunks of crops."""
    from train.data import pipeline

    config = run.config
    local = int(config.get("eval_batch_size") or config.batch_size) // jax.process_count()
    limit = config.get("steps_per_eval")
    stream = pipeline.eval_crop_stream(
        config, run.data_info, mode=mode, sides=crop_sides(run, mode), image_size=run.image_size,
        channels=run.channels, mean=run.model_info.mean, std=run.model_info.std, chunk_size=local,
        max_examples=int(limit) * local if limit else None, data_dir=config.data_dir)
    fn = run.par.probs_step()
    total = np.zeros((stream.num_examples, run.num_classes), np.float64)
    seen = np.zeros(stream.num_examples, np.int64)
    labels = np.zeros(stream.num_examples, np.int64)
    for batch in progress.track(stream.batches, stream.num_chunks, label):
        out = run.par.local_output(fn(run.state, run.par.put_batch({"image": batch["image"]})))
        keep = batch["mask"] > 0
        example = batch["example"][keep]
        np.add.at(total, example, out[keep])
        np.add.at(seen, example, 1)
        labels[example] = batch["label"][keep]
    if not np.all(seen == stream.crops_per_example):
        raise RuntimeError(f"{mode}: examples got {sorted(set(seen.tolist()))} crops, "
                           f"expected {stream.crops_per_example}")
    return Outputs((total / stream.crops_per_example).astype(np.float32), labels)


def _abstract_variables(run: loop.Run) -> Any:
    state = run.state
    variables = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
    if run.par.mode == "pmap":
        variables = jax.tree_util.tree_map(lambda x: x[0], variables)
    return jax.eval_shape(lambda: variables)


def _one_mode_outputs(run: loop.Run, mode: str, label: str) -> Outputs | str:
    par, config = run.par, run.config
    if mode in ("center", "10crop"):
        return _pass_outputs(run, par.probs_step(), run.eval_batches(mode), label)
    if mode in CROP_MODES:
        return _crop_outputs(run, mode, label)
    abstract = _abstract_variables(run)
    if mode == "multiscale":
        sizes = loop.multiscale_sizes(run)
        for s in sizes:
            why = loop._eval_supported(run.model, abstract, s, run.channels)
            if why:
                return f"{config.arch} does not accept {s}x{s} inputs ({why})"
        return average([_pass_outputs(run, par.probs_step(), run.eval_batches("full", s), f"{label} {s}")
                        for s in sizes], "scales")
    if mode == "dense":
        dense, scale = loop.dense_model(run), loop.eval_scale(run)
        if dense is None:
            return f"{config.arch} has no dense (fully-convolutional) evaluation"
        why = loop._eval_supported(dense, abstract, scale, run.channels)
        if why:
            return f"dense {config.arch} does not run at {scale}x{scale} ({why})"
        return _pass_outputs(run, par.probs_step(apply_fn=dense.apply), run.eval_batches("full", scale), label)
    raise ValueError(f"unknown eval mode {mode!r} (use {', '.join(validate.EVAL_MODES)})")


def mode_outputs(run: loop.Run, mode: str, label: str | None = None) -> Outputs | str:
    """Per-example softmax outputs of ``run``'s model in test-time ``mode`` ("a+b": the modes'
    outputs averaged), or the reason the mode cannot run."""
    if not validate.is_eval_mode(mode):
        raise ValueError(f"unknown eval mode {mode!r} (use {', '.join(validate.EVAL_MODES)}, or several "
                         f"joined by {validate.COMBINE!r})")
    label = label or f"eval {mode}"
    parts = mode.split(validate.COMBINE)
    outs = []
    for part in parts:
        out = _one_mode_outputs(run, part, label if len(parts) == 1 else f"{label}: {part}")
        if isinstance(out, str):
            return out
        outs.append(out)
    return outs[0] if len(outs) == 1 else average(outs, "test-time modes")


def mode_metrics(run: loop.Run, mode: str) -> dict | str:
    """:func:`metrics` of :func:`mode_outputs` (what :func:`train.loop.final_evaluations` reports)."""
    out = mode_outputs(run, mode)
    return out if isinstance(out, str) else metrics(out)


# --- Runs to evaluate ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Member:
    """One model to evaluate: a run's workdir, or a weights source with its arch."""

    source: str
    arch: str | None = None
    workdir: bool = False


def _file_arch(source: str) -> str | None:
    """The arch a flaxnets ``.safetensors`` file records (None for other sources)."""
    if not (source.endswith(".safetensors") and os.path.isfile(source)):
        return None
    from safetensors import safe_open

    try:
        with safe_open(source, framework="numpy") as f:
            return (f.metadata() or {}).get("arch")
    except Exception:  # noqa: BLE001 - unreadable: load_weights reports it properly
        return None


def parse_members(spec: str, default_arch: str | None = None) -> list[Member]:
    """``--ensemble`` → members: comma-separated workdirs and ``[ARCH=]WEIGHTS`` sources."""
    items = [s.strip() for s in str(spec).split(",")]
    if len(items) < 2 or not all(items):
        raise ValueError(f"--ensemble={spec!r}: give two or more comma-separated members, each a run's workdir "
                         "or [ARCH=]WEIGHTS (a tag or file)")
    members = []
    for item in items:
        arch, source = None, item
        if "=" in item and not os.path.exists(item):
            arch, source = (s.strip() for s in item.split("=", 1))
            flaxnets.model_info(arch)  # unknown arch → ValueError naming close ones
        if os.path.isdir(source):
            if not os.path.isfile(os.path.join(source, "config.json")):
                raise FileNotFoundError(f"ensemble member {source} is a directory but not a training run "
                                        "(no config.json)")
            members.append(Member(source, arch, workdir=True))
            continue
        arch = arch or _file_arch(source) or default_arch
        if arch is None:
            raise ValueError(f"ensemble member {source!r}: give its arch (ARCH={source} or --arch)")
        members.append(Member(source, arch))
    return members


def open_run(config: ml_collections.ConfigDict, member: Member, explicit: Iterable[str] = ()) -> tuple[loop.Run, str]:
    """A :class:`train.loop.Run` holding ``member``'s weights, and its source for the results.

    A workdir's own ``config.json`` is used, except for the ``explicit`` (command-line) fields;
    the file is left as it was."""
    explicit = set(explicit)
    if member.workdir:
        path = os.path.join(member.source, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{member.source} is not a training run directory (no config.json)")
        with open(path) as f:
            text = f.read()
        saved = json.loads(text)
        base = config.copy_and_resolve_references()
        for key, value in saved.items():  # the run's resolved config, then the command line's fields
            if key in base and key not in explicit:
                base[key] = tuple(value) if isinstance(value, list) else value
        base.recipe = False
        try:
            run = loop.setup_run(base, member.source, explicit=set(base.keys()))
        finally:
            if progress.is_main_process():
                with open(path, "w") as f:  # setup_run rewrites it: evaluating must not change a run
                    f.write(text)
        run.bar.close()
        if run.start_step == 0:
            close_run(run)
            raise FileNotFoundError(f"{member.source} has no checkpoint to evaluate")
        return run, os.path.abspath(member.source)
    config = ml_collections.ConfigDict(config.to_dict())
    if member.arch:
        config.arch = member.arch
        explicit.add("arch")
    variables = flaxnets.load_weights(config.arch, member.source)
    run = loop.evaluation_run(config, variables, tempfile.mkdtemp(prefix="flaxnets_eval_"), explicit)
    run.bar.close()
    return run, member.source


def close_run(run: loop.Run) -> None:
    """Close what :func:`open_run` opened (checkpointer, logs, progress bar)."""
    if run.ckpt is not None:
        run.ckpt.close()
    run.writer.close()
    run.bar.close()


def _row(source: str, arch: str, dataset: str, mode: str, m: dict) -> dict:
    return {"source": source, "arch": arch, "dataset": dataset, "mode": mode, "top1": m["top1"],
            "top5": m["top5"], "loss": m["loss"], "count": m.get("count")}


def evaluate_source(config: ml_collections.ConfigDict, *, workdir: str | None = None, weights: str | None = None,
                    explicit: Iterable[str] = ()) -> list[dict]:
    """One result row per eval mode of ``config.eval_modes`` for a workdir or a weights source."""
    if (workdir is None) == (weights is None):
        raise ValueError("give exactly one of --workdir or --weights")
    if workdir is not None and not os.path.isfile(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"{workdir} is not a training run directory (no config.json)")
    run, source = open_run(config, Member(workdir, workdir=True) if workdir else Member(weights), explicit)
    try:
        final = loop.final_evaluations(run, run.start_step)
    finally:
        close_run(run)
    return [_row(source, run.config.arch, run.dataset, mode, {k: final.get(f"{mode}_{k}") for k in FIELDS[4:]})
            for mode in run.config.eval_modes if f"{mode}_top1" in final]


def evaluate_ensemble(config: ml_collections.ConfigDict, members: Sequence[Member],
                      explicit: Iterable[str] = ()) -> list[dict]:
    """Rows per mode: one per member, then the ensemble's (members' softmax averaged per example).

    A mode some member cannot run (e.g. ``multiscale`` for a fixed-size model) is skipped for
    the whole ensemble, with a message."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.eval_batch_size = int(config.get("eval_batch_size") or config.batch_size)
    explicit = set(explicit) | set(ENSEMBLE_FIELDS)
    modes = tuple(config.eval_modes)
    rows: dict[str, list[dict]] = {m: [] for m in modes}
    sums: dict[str, Outputs] = {}
    skipped: dict[str, str] = {}
    archs, dataset = [], None
    for i, member in enumerate(members, 1):
        run, source = open_run(config, member, explicit)
        if steps.has_ema(run.state):  # a run trained with an EMA: its result is the EMA's
            run = dataclasses.replace(run, state=steps.ema_view(run.state))
        try:
            if dataset is not None and run.dataset != dataset:
                raise ValueError(f"ensemble members are evaluated on different datasets ({dataset}, {run.dataset}): "
                                 "pass --dataset")
            dataset = run.dataset
            archs.append(run.config.arch)
            for mode in modes:
                if mode in skipped:
                    continue
                out = mode_outputs(run, mode, f"[{i}/{len(members)}] {run.config.arch} {mode}")
                if isinstance(out, str):
                    skipped[mode] = out
                    print(f"eval mode {mode!r} skipped for the ensemble: {out}", file=sys.stderr)
                    continue
                rows[mode].append(_row(source, run.config.arch, run.dataset, mode, metrics(out)))
                if mode in sums:
                    check_same_examples(sums[mode], out, "ensemble members")
                    sums[mode].probs += out.probs
                else:
                    sums[mode] = Outputs(out.probs.astype(np.float64), out.labels)
        finally:
            close_run(run)
    result = []
    for mode in modes:
        if mode not in skipped:
            mean = Outputs(sums[mode].probs / len(members), sums[mode].labels)
            result += rows[mode] + [_row("ensemble", "+".join(archs), dataset, mode, metrics(mean))]
    return result


def write_rows(rows: list[dict], path: str) -> None:
    """``path`` (JSON) and ``path`` with ``.csv``: one row per result."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    with open(os.path.splitext(path)[0] + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


# --- Command line -------------------------------------------------------------------------------
def _define_flags() -> None:
    """The command's flags: train.main's (--config, --arch, --dataset, --workdir, --platform) and
    its own. Only when run as a command, so importing this module defines no flags."""
    from absl import flags

    import train.main  # noqa: F401 - defines the shared flags

    flags.DEFINE_string("weights", None, "Weights tag (torchvision[:TAG], timm[:TAG]) or file.")
    flags.DEFINE_string("ensemble", None, "Comma-separated members: run workdirs and/or [ARCH=]WEIGHTS.")
    flags.DEFINE_string("output", None, "Results JSON path (a CSV is written beside it).")


def main(argv: list[str]) -> None:
    from train.checkpoint import CheckpointError
    from train.main import EXIT_ERROR, FLAGS, config_from_flags, explicit_fields, fail

    config = config_from_flags(argv, "--weights=FILE")
    given = [name for name in ("workdir", "weights", "ensemble") if FLAGS[name].value]
    if len(given) != 1:
        fail(f"give exactly one of --workdir, --weights or --ensemble (got {', '.join(given) or 'none'})")
    try:
        if FLAGS.ensemble:
            rows = evaluate_ensemble(config, parse_members(FLAGS.ensemble, FLAGS.arch), explicit_fields())
        else:
            rows = evaluate_source(config, workdir=FLAGS.workdir, weights=FLAGS.weights, explicit=explicit_fields())
    except (ValueError, FileNotFoundError, loop.TrainingError, CheckpointError) as e:
        fail(e)
    if not rows:
        fail("no eval mode produced a result", EXIT_ERROR)
    output = FLAGS.output or (os.path.join(FLAGS.workdir, "eval.json") if FLAGS.workdir else
                              "eval_ensemble.json" if FLAGS.ensemble else f"eval_{config.arch}.json")
    if progress.is_main_process():
        write_rows(rows, output)
    for row in rows:
        who = f"{row['source']} ({row['arch']}) " if FLAGS.ensemble else ""
        print(f"{who}{row['mode']}: top-1 {row['top1']:.2f}% top-5 {row['top5']:.2f}% loss {row['loss']:.4f}")
    print(f"results: {output}", file=sys.stderr)


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
