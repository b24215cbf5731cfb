"""``python -m flaxnets [PATTERN] [--summary NAME] [--plot PATH]``: the model table, one model's
layers, or the accuracy-vs-GFLOPs chart of the registry (needs matplotlib: ``flaxnets[plot]``)."""

from __future__ import annotations

import argparse
import sys

import flaxnets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flaxnets", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="glob over registry names")
    p.add_argument("--summary", metavar="NAME", help="print the per-layer table of NAME")
    p.add_argument("--depth", type=int, default=None, help="nesting depth of --summary rows")
    p.add_argument("--plot", metavar="PATH", help="draw published top-1 vs GFLOPs of the models matching PATTERN "
                   "(bubble = params, colour = family) into PATH (.png, .svg, .pdf)")
    a = p.parse_args(argv)
    try:
        if a.summary:
            print(flaxnets.summary(a.summary, depth=a.depth))
            return 0
        names = flaxnets.list_models(a.pattern)
        if not names:
            raise ValueError(f"no model matches {a.pattern!r}")
        if a.plot:
            from flaxnets.plot import plot_zoo

            print(plot_zoo(a.plot, names))
            return 0
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'name':<30}{'family':<14}{'year':<6}{'input':<12}{'params':>14}  {'top-1':>6}  twin")
    for n in names:
        i = flaxnets.model_info(n)
        size = "×".join(map(str, i.input_size))
        top1 = f"{i.top1:.2f}" if i.top1 is not None else "-"
        params = f"{i.params:,}" if i.params is not None else "?"
        print(f"{n:<30}{i.family:<14}{i.year:<6}{size:<12}{params:>14}  {top1:>6}  {i.twin or '-'}")
    print(f"{len(names)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
