"""Training curves from runs' ``metrics.jsonl``: train loss, eval top-1 and learning rate vs step.

    python -m train.plot runs/resnet20_digits                      # → runs/resnet20_digits/curves.png
    python -m train.plot runs/a runs/b --output=compare.png        # several runs overlaid

The trainer writes ``WORKDIR/curves.png`` itself at the end of a run (:func:`write_curves`).
Needs matplotlib (in the ``[train]`` and ``[plot]`` extras).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from flaxnets.plot import need_matplotlib

CURVES_FILE = "curves.png"


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """The rows of ``workdir/metrics.jsonl`` (FileNotFoundError naming the file if it is missing)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run's workdir?")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_label(workdir: str) -> str:
    """``workdir name (arch, dataset)`` from the run's ``config.json``, else the workdir's name."""
    name = os.path.basename(os.path.abspath(workdir))
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        return f"{name} ({', '.join(str(v) for v in (config['arch'], config.get('dataset')) if v)})"
    except (OSError, ValueError, KeyError):
        return name


def plot_runs(workdirs: Sequence[str], path: str, labels: Sequence[str] | None = None) -> str:
    """Draw train loss, eval top-1 (%) and learning rate against step for each run into ``path``
    (one colour per run; dots: periodic evaluations, star: the final centre-crop evaluation)."""
    plt = need_matplotlib()
    from matplotlib.lines import Line2D

    labels = list(labels) if labels else [run_label(w) for w in workdirs]
    fig, (ax_loss, ax_top1, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True, constrained_layout=True)
    lrs = []
    for i, (workdir, label) in enumerate(zip(workdirs, labels, strict=True)):
        rows = read_metrics(workdir)
        colour = f"C{i % 10}"
        train = [r for r in rows if r["split"] == "train" and "loss" in r]
        # a resumed run logs some steps twice: keep the last value of each step
        train = sorted({r["step"]: r for r in train}.values(), key=lambda r: r["step"])
        evals = [r for r in rows if r["split"] == "eval" and "top1" in r]
        final = [r for r in rows if r["split"] == "final_center" and "top1" in r]
        dots = "." if len(train) < 20 else None  # a short run's few points stay visible
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], color=colour, marker=dots, label=label)
        ax_top1.plot([r["step"] for r in evals], [r["top1"] for r in evals], "o-", color=colour, ms=4)
        if final:
            ax_top1.plot([final[-1]["step"]], [final[-1]["top1"]], "*", color=colour, ms=14)
            ax_top1.annotate(f"{final[-1]['top1']:.1f}%", (final[-1]["step"], final[-1]["top1"]), fontsize=8,
                             xytext=(-8, 8), textcoords="offset points", ha="right", color=colour)
        lr = [(r["step"], r["lr"]) for r in train if "lr" in r]
        ax_lr.plot([s for s, _ in lr], [v for _, v in lr], color=colour, marker=dots)
        lrs += [v for _, v in lr]
    ax_loss.set(title="training loss", xlabel="step", ylabel="cross-entropy (batch mean)")
    ax_top1.set(title="evaluation top-1", xlabel="step", ylabel="top-1 accuracy (%)")
    ax_lr.set(title="learning rate", xlabel="step", ylabel="learning rate")
    if lrs and min(lrs) > 0 and max(lrs) / min(lrs) > 20:  # step/exponential decay: log scale shows it
        ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_top1, ax_lr):
        ax.grid(alpha=0.3)
        ax.margins(y=0.12)
    ax_loss.legend(fontsize=8, title="run", title_fontsize=8)
    ax_top1.legend(handles=[Line2D([], [], marker="o", color="grey", label="periodic eval"),
                            Line2D([], [], marker="*", ls="", ms=12, color="grey", label="final (centre crop)")],
                   fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curves(workdir: str) -> str:
    """``workdir/curves.png`` of the run in ``workdir``; returns its path."""
    return plot_runs([workdir], os.path.join(workdir, CURVES_FILE))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("workdirs", nargs="+", metavar="WORKDIR", help="training runs (their metrics.jsonl)")
    p.add_argument("--output", "-o", help=f"PNG path (default: WORKDIR/{CURVES_FILE} for one run, "
                                          "runs.png for several)")
    a = p.parse_args(argv)
    output = a.output or (os.path.join(a.workdirs[0], CURVES_FILE) if len(a.workdirs) == 1 else "runs.png")
    try:
        print(plot_runs(a.workdirs, output))
    except (ImportError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
