"""The registry as a table and as a chart: params, GFLOPs, published top-1, year.

``zoo_rows()`` gives one row per registered model; ``plot_zoo(path)`` draws published top-1
against GFLOPs (bubble area = params, colour = family). GFLOPs come from a data file
(``flaxnets/data/flops.json``) because XLA's cost analysis of all 113 models takes minutes:
``python -m flaxnets.plot --refresh-flops`` recomputes it (the same count as
``flaxnets.summary``: XLA's cost analysis of the lowered forward pass at the model's default
input size, batch 1, multiply and add counted separately, i.e. 2 × multiply-accumulates).
matplotlib is only needed for the charts (``pip install 'flaxnets[plot]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import resources
from typing import Any

from flaxnets.registry import list_models, model_info

FLOPS_FILE = "flops.json"
REFRESH_COMMAND = "python -m flaxnets.plot --refresh-flops"

# The line of the seed notes (history of CNN architectures), in order.
HISTORY = ("lenet5", "alexnet_paper", "zfnet", "vgg16", "nin", "googlenet", "resnet50", "densenet121",
           "resnext50_32x4d", "efficientnet_b0")


def need_matplotlib() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend, or an ImportError naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'flaxnets[plot]' (or pip install matplotlib)") from None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def model_flops(name: str) -> float:
    """Forward-pass FLOPs of ``name`` at its default input size, batch 1
    (:func:`flaxnets.summary.forward_flops`: XLA's count, multiply and add counted apart)."""
    from flaxnets.registry import create_model
    from flaxnets.summary import forward_flops

    flops = forward_flops(create_model(name), model_info(name).input_size)
    if flops is None:
        raise RuntimeError(f"{name}: this JAX backend gives no cost analysis")
    return flops


def load_flops() -> dict[str, float]:
    """GFLOPs per model name from the committed data file (empty if it is missing)."""
    try:
        text = resources.files("flaxnets").joinpath("data", FLOPS_FILE).read_text()
    except FileNotFoundError:
        return {}
    return {k: float(v) for k, v in json.loads(text)["gflops"].items()}


def refresh_flops(path: str | None = None, names: list[str] | None = None) -> str:
    """Recompute the GFLOPs data file (every model unless ``names``; others are kept)."""
    import jax

    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", FLOPS_FILE)
    gflops = load_flops()
    for name in names or list_models():
        t0 = time.time()
        gflops[name] = round(model_flops(name) / 1e9, 6)
        print(f"{name:<30}{gflops[name]:>12.4f} GFLOPs  ({time.time() - t0:.1f} s)", flush=True)
    data = {"about": "forward-pass GFLOPs at the model's default input size, batch 1: XLA cost analysis of the "
                     "lowered computation (multiply and add counted separately)",
            "command": REFRESH_COMMAND, "jax": jax.__version__,
            "gflops": {k: gflops[k] for k in sorted(gflops)}}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


def zoo_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per model: name, family, year, params, GFLOPs, published top-1 and its protocol."""
    gflops = load_flops()
    rows = []
    for name in names or list_models():
        i = model_info(name)
        rows.append({"name": name, "family": i.family, "year": i.year, "params": i.params,
                     "gflops": gflops.get(name), "top1": i.top1, "top1_protocol": i.top1_protocol,
                     "input_size": i.input_size, "num_classes": i.num_classes, "twin": i.twin})
    return rows


def _family_colours(families: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    extra = matplotlib.colormaps["Dark2"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the ten strong colours first, then their light twins
    return {f: (cmap(order[i]) if i < 20 else extra(i - 20)) for i, f in enumerate(families)}


def plot_zoo(path: str, names: list[str] | None = None, label_all: bool = True) -> str:
    """Published top-1 (%) against GFLOPs of every model that has both: bubble area ∝ params,
    colour = family; the marker shape tells the protocol (1 crop vs more). Written to ``path``."""
    plt = need_matplotlib()
    rows = [r for r in zoo_rows(names) if r["top1"] is not None and r["gflops"]
            and r["num_classes"] == 1000]  # ImageNet top-1 only (CIFAR/MNIST numbers are another axis)
    if not rows:
        raise ValueError("no model with both a published ImageNet top-1 and GFLOPs to plot")
    families = sorted({r["family"] for r in rows}, key=lambda f: min(r["year"] for r in rows if r["family"] == f))
    colours = _family_colours(families)
    fig, ax = plt.subplots(figsize=(13, 8.5), constrained_layout=True)
    max_params = max(r["params"] or 0 for r in rows)
    for fam in families:
        for single in (True, False):
            sel = [r for r in rows if r["family"] == fam and (r["top1_protocol"] or "").startswith("1 crop") == single]
            if not sel:
                continue
            ax.scatter([r["gflops"] for r in sel], [r["top1"] for r in sel],
                       s=[30 + 1200 * (r["params"] or 0) / max_params for r in sel], color=colours[fam],
                       alpha=0.6, edgecolors="black", linewidths=0.5, marker="o" if single else "D",
                       label=fam if single or not any(
                           (r["top1_protocol"] or "").startswith("1 crop") for r in rows if r["family"] == fam)
                       else None)
    if label_all:
        for r in rows:
            ax.annotate(r["name"], (r["gflops"], r["top1"]), fontsize=6.5, xytext=(4, 3),
                        textcoords="offset points", alpha=0.85)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per image at the default input size (XLA count: multiply + add, log scale)")
    ax.set_ylabel("published ImageNet top-1 accuracy (%)")
    ax.set_title(f"flaxnets zoo: published top-1 vs compute ({len(rows)} ImageNet models with a published top-1)")
    ax.grid(alpha=0.3, which="both")
    fam_legend = ax.legend(title="family (bubble area ∝ params)", fontsize=8, title_fontsize=8, loc="lower right",
                           ncol=2, markerscale=0.6)
    for handle in fam_legend.legend_handles:
        handle.set_sizes([40])
    ax.add_artist(fam_legend)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker="o", ls="", color="grey", label="1-crop protocol"),
                       Line2D([], [], marker="D", ls="", color="grey", label="10-crop, dense or multi-crop")],
              loc="upper left", fontsize=8, title="protocol of the published number", title_fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    """:func:`zoo_rows` as a text table (one line per model)."""
    lines = [f"{'name':<28}{'family':<13}{'year':>5}{'params (M)':>12}{'GFLOPs':>9}  {'top-1':>6}  protocol"]
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}" if r["params"] else "?"
        gflops = f"{r['gflops']:.3g}" if r["gflops"] else "?"
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        lines.append(f"{r['name']:<28}{r['family']:<13}{r['year']:>5}{params:>12}{gflops:>9}  {top1:>6}  "
                     f"{r['top1_protocol'] or '-'}")
    return "\n".join(lines)


def plot_history(path: str, names: tuple[str, ...] = HISTORY) -> str:
    """The seed notes' line of architectures (:data:`HISTORY`) as a timeline: one station per
    paper in order, its parameter count (log scale), published top-1 and GFLOPs."""
    plt = need_matplotlib()
    rows = zoo_rows(list(names))
    fig, ax = plt.subplots(figsize=(14, 5.5), constrained_layout=True)
    xs = list(range(len(rows)))
    ax.plot(xs, [r["params"] for r in rows], "-", color="grey", alpha=0.5, zorder=1)
    colours = _family_colours([r["family"] for r in rows])
    for x, r in zip(xs, rows, strict=True):
        ax.scatter([x], [r["params"]], s=110, color=colours[r["family"]], edgecolors="black", zorder=2)
        if r["top1"] is None:
            top1 = "no published top-1"
        else:
            where = "ImageNet" if r["num_classes"] == 1000 else f"{r['num_classes']} classes"
            top1 = f"top-1 {r['top1']:.1f}% {where}\n({r['top1_protocol']})"
        gflops = f"\n{r['gflops']:.3g} GFLOPs" if r["gflops"] else ""
        ax.annotate(f"{r['params'] / 1e6:.3g}M params\n{top1}{gflops}", (x, r["params"]), fontsize=7.5,
                    xytext=(0, 16 if x % 2 == 0 else -16), textcoords="offset points", ha="center",
                    va="bottom" if x % 2 == 0 else "top")
    ax.set_xticks(xs, [f"{r['name']}\n{r['year']}" for r in rows], fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("parameters (log scale)")
    ax.set_xlabel("architecture and year of its paper, in the order of the seed notes")
    ax.set_title("From LeNet-5 to EfficientNet: the line of the seed notes")
    ax.grid(alpha=0.3, which="both", axis="y")
    ax.margins(x=0.07, y=0.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flaxnets.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("--refresh-flops", action="store_true", help="recompute flaxnets/data/flops.json")
    p.add_argument("names", nargs="*", help="only these models (with --refresh-flops)")
    a = p.parse_args(argv)
    if not a.refresh_flops:
        p.error("nothing to do (use --refresh-flops; charts: python -m flaxnets --plot PATH)")
    print(refresh_flops(names=a.names or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
