"""Smoke-run ``python -m train.main`` for a set of architectures and print one row each.

Each arch gets a fresh process running the real command line (recipe applied, model input
size, embedded digits dataset unless ``--dataset`` says otherwise) for a few steps, then
the final evaluation limited to ``--eval-steps`` batches. The row reports wall time, the
first and last training loss, the cross-entropy of the main head (``loss − ce`` is what
the auxiliary heads add) and the exit status, so a family that stopped training shows up.

    python benchmarks/smoke_train.py                         # one or two archs per family
    python benchmarks/smoke_train.py densenet121 inception_v3 --steps 3
    python benchmarks/smoke_train.py --all --steps 2         # every registered model
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

# The headline architectures of each family (those the issues name first).
DEFAULT_ARCHS = (
    "lenet5", "alexnet", "alexnet_paper", "zfnet", "vgg11", "nin_cifar10", "resnet20", "resnet50",
    "resnext50_32x4d", "wide_resnet50_2", "googlenet_paper", "googlenet", "bn_inception", "inception_v3",
    "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "densenet121", "densenet_bc_100_k12",
    "wrn_16_8", "seresnet50", "se_inception_v3", "highway_fc", "highway_cifar", "fractalnet_cifar",
    "squeezenet1_1", "mobilenetv1_100", "mobilenet_v2", "shufflenet_v1_g3", "shufflenet_v2_x1_0",
    "ghostnet_100", "efficientnet_b0", "darknet53", "nasnetamobile",
)


def smoke(arch: str, steps: int, batch: int, eval_steps: int, extra: list[str], root: pathlib.Path) -> dict:
    """Run the trainer for ``arch``; return wall seconds, losses, final top-1 and exit code."""
    workdir = root / arch
    cmd = [sys.executable, "-m", "train.main", f"--arch={arch}", f"--workdir={workdir}",
           f"--config.max_steps={steps}", f"--config.batch_size={batch}", f"--config.eval_batch_size={batch}",
           f"--config.steps_per_eval={eval_steps}", "--config.log_every_steps=1", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = {"arch": arch, "seconds": time.perf_counter() - t0, "rc": proc.returncode}
    metrics = workdir / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    train = [r for r in records if r.get("split") == "train"]
    final = [r for r in records if str(r.get("split", "")).startswith("final")]
    if train:
        row.update(first_loss=train[0]["loss"], last_loss=train[-1]["loss"], last_ce=train[-1].get("ce"),
                   steps=train[-1]["step"])
    if final:
        row["top1"] = final[-1].get("top1")
    if proc.returncode:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archs", nargs="*", help=f"default: {len(DEFAULT_ARCHS)} headline archs")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--eval-steps", type=int, default=2)
    p.add_argument("--workdir", default=None, help="keep run directories here (default: a temp dir)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a, extra = p.parse_known_args(argv)
    if a.all:
        import flaxnets

        archs = flaxnets.list_models()
    else:
        archs = a.archs or list(DEFAULT_ARCHS)
    root = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="flaxnets_smoke_"))
    print(f"{'arch':<24}{'rc':>3}{'s':>7}{'steps':>6}{'loss0':>8}{'loss':>8}{'ce':>8}{'top1':>7}")
    rows, failed = [], 0
    for arch in archs:
        r = smoke(arch, a.steps, a.batch, a.eval_steps, extra, root)
        rows.append(r)
        failed += r["rc"] != 0

        def f(key: str, spec: str = ".3f") -> str:
            return "-" if r.get(key) is None else format(r[key], spec)

        print(f"{arch:<24}{r['rc']:>3}{r['seconds']:>7.0f}{f('steps', 'd'):>6}{f('first_loss'):>8}"
              f"{f('last_loss'):>8}{f('last_ce'):>8}{f('top1', '.1f'):>7}  {r.get('error', '')}", flush=True)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
