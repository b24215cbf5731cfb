"""Does every model train with its recipe on the embedded digits? Runs
``python -m train.main --arch=NAME`` (no other flag: the recipe adapted to digits, the image
size the trainer picks) for each registered model matching the globs, one at a time, and
writes TRAINABILITY.md: arch, image size, steps, batch, wall time, final test top-1.

    python benchmarks/trainability.py 'lenet5' 'resnet2*' [--out TRAINABILITY.md] [--timeout 5400]

Models run in the order of the globs. Resumable: a model whose row was measured at the current
commit is skipped (``--force`` re-runs it; ``--missing`` skips every model that has a row, to
resume across commits); rows of other models and commits are kept. Run it as the only heavy job on the
machine (its wall times are the table's).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("arch", "image", "steps", "batch", "epochs", "wall_s", "top1", "commit", "note")
THRESHOLD = 95.0
_START = re.compile(r"^(?P<arch>\S+) \(\d+ classes, (?P<image>\d+x\d+x\d+), \S+\) on (?P<data>\S+): "
                    r"(?P<steps>\d+) steps \((?P<epochs>[\d.]+) epochs .*?\), batch (?P<batch>\d+)")


def commit() -> str:
    """Short HEAD commit, with ``+dirty`` when tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "flaxnets", "train"], cwd=ROOT).returncode
    return head + ("+dirty" if dirty else "")


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an existing table, by arch."""
    rows: dict[str, dict[str, str]] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(COLUMNS) and cells[0] not in ("arch", "---") and not set(cells[0]) <= {"-"}:
            rows[cells[0].strip("`")] = dict(zip(COLUMNS, cells, strict=True))
    return rows


# The table's command is the whole registry's: a run over some globs (or with a shorter timeout
# for one row) fills in part of it.
COMMAND = "python benchmarks/trainability.py --missing --timeout 5400 '*'"
_INTRO_END = "was measured on (CPU unless noted); `commit` is the code the row was measured at."


def read_history(path: Path) -> list[str]:
    """The prose between the generated introduction and the table of an existing file: the
    hand-written history of rule changes ("Since COMMIT …"), which a rewrite keeps."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if _INTRO_END not in lines:
        return []
    rest = lines[lines.index(_INTRO_END) + 1:]
    table = next((i for i, ln in enumerate(rest) if ln.startswith("| " + COLUMNS[0])), len(rest))
    history = rest[:table]
    while history and not history[-1].strip():
        history.pop()
    return history


def write_table(path: Path, rows: dict[str, dict[str, str]], registered: int) -> None:
    """TRAINABILITY.md: the command, how to read it (keeping the file's history prose), the
    table sorted by arch."""
    passed = sum(1 for r in rows.values() if _float(r["top1"]) >= THRESHOLD)
    lines = [
        "# Trainability on the embedded digits",
        "",
        f"Produced by `{COMMAND}` (each row: `python -m train.main --arch=NAME`, no other flag: the",
        "arch's recipe adapted to digits as `train/configs/__init__.py` describes, the image size the",
        f"trainer picks). Goal: ≥ {THRESHOLD:g} % final test top-1 (360 test digits). {len(rows)} of {registered}",
        f"registered models measured so far (the table is partial until every row is there); {passed} of",
        f"{len(rows)} reach the goal. Wall time includes compilation and evaluation on the machine the row",
        _INTRO_END,
        *read_history(path),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for arch in sorted(rows):
        r = rows[arch]
        lines.append("| " + " | ".join(f"`{arch}`" if c == "arch" else r.get(c, "") for c in COLUMNS) + " |")
    path.write_text("\n".join(lines) + "\n")


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("nan")


def run_one(arch: str, timeout: float, curves: Path | None = None) -> dict[str, str]:
    """Train ``arch`` with the default command in a fresh workdir; its row. With ``curves``, the
    run's ``metrics.jsonl`` (every evaluation) is kept there as ``ARCH.jsonl``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"trainability_{arch}_"))
    cmd = [sys.executable, "-m", "train.main", f"--arch={arch}", f"--workdir={workdir}"]
    start = time.time()
    row = dict.fromkeys(COLUMNS, "")
    row["arch"] = arch
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc, timed_out = None, f"timeout after {timeout:g} s"
    row["wall_s"] = f"{time.time() - start:.0f}"
    for line in out.splitlines():
        m = _START.match(line.strip())
        if m:
            row.update(image=m["image"], steps=m["steps"], batch=m["batch"], epochs=m["epochs"])
        budget = re.search(r"\(((?:compute budget: |raised to the )[^)]*)\)", line)
        if budget:  # the dataset's default budget changed (train/configs budget_epochs): the table says how
            way = "raised" if "above the default" in budget[1] else "shrunk"
            row["note"] = f"default budget {way}, {budget[1]}"
        aux = re.search(r"aux heads off \([^)]*\)", line)
        if aux:  # trained without the aux heads that need the paper's size (train/configs adapt_recipe)
            row["note"] = (row["note"] + "; " if row["note"] else "") + aux[0]
        if line.startswith("final: "):
            # The final metrics dict; a diverged run prints nan/inf values, which literal_eval rejects.
            top1 = re.search(r"'top1': ([-+0-9.eE]+|nan|inf)", line)
            row["top1"] = f"{float(top1[1]):.2f}" if top1 else ""
    if rc is None:
        row["note"] = (row["note"] + "; " if row["note"] else "") + timed_out
    elif rc != 0:
        last = [ln for ln in out.splitlines() if ln.strip()][-1:] or ["?"]
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"exit {rc}: {last[0][:100]}".replace("|", "/")
    if curves is not None and (workdir / "metrics.jsonl").exists():
        curves.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "metrics.jsonl", curves / f"{arch}.jsonl")
    shutil.rmtree(workdir, ignore_errors=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("globs", nargs="+", help="registry-name globs, e.g. 'resnet*'")
    parser.add_argument("--out", default=str(ROOT / "TRAINABILITY.md"))
    parser.add_argument("--timeout", type=float, default=5400.0, help="seconds per model")
    parser.add_argument("--force", action="store_true", help="re-run rows already measured at this commit")
    parser.add_argument("--missing", action="store_true",
                        help="run only models without a row (resume a sweep across commits)")
    parser.add_argument("--curves", type=Path, help="keep each run's metrics.jsonl here (learning curves)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import flaxnets

    registered = flaxnets.list_models()  # in the globs' order (cheap families first, if so given)
    names = list(dict.fromkeys(n for g in args.globs for n in registered if fnmatch.fnmatchcase(n, g)))
    if not names:
        print(f"error: no registered model matches {' '.join(args.globs)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows, head = read_rows(out), commit()
    for arch in names:
        if not args.force and rows.get(arch, {}).get("commit") == head:
            print(f"{arch}: measured at {head}, skipped")
            continue
        if args.missing and arch in rows:
            print(f"{arch}: has a row (measured at {rows[arch]['commit']}), skipped (--missing)")
            continue
        row = run_one(arch, args.timeout, args.curves)
        row["commit"] = head
        rows[arch] = row
        # After every model: an interrupted sweep keeps its rows.
        write_table(out, rows, len(flaxnets.list_models()))
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    write_table(out, rows, len(flaxnets.list_models()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
