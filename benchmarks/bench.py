"""Speed benchmark: flaxnets vs its PyTorch twin, side by side.

Prints, per model and mode (inference / training step): compile time, steady-state
images per second and peak memory, for the flax model (jit) and the torchvision/timm twin
(eager; ``--torch-compile`` for torch.compile). Runs on whatever JAX/torch see (CPU here;
GPU/TPU when present).

    python benchmarks/bench.py resnet50 densenet121 --batch 32 --size 224 --steps 10

Peak memory: for JAX, XLA's buffer assignment of the compiled step (arguments + outputs +
temporaries, exact for the program) and, on accelerators, the device's peak bytes in use;
for torch, ``torch.cuda.max_memory_allocated`` on GPU, otherwise the process's peak RSS
during the steps minus its RSS before them (includes allocator slack; ``n/a`` when the steps
stay below an earlier high-water mark of the process, e.g. tiny inputs).

The zoo table (``--family-representatives`` or model globs with ``--table``): every (model,
mode, side) runs in a fresh process of its own, flax and torch alternate (the order flips
each repeat) and the whole sweep repeats ``--repeats`` times, so load from other processes
shows up as spread rather than as a bias against one side. It writes a CSV and the table
between this device's markers in ``BENCHMARKS.md``, headed by the command that made it.

    python benchmarks/bench.py --family-representatives --table --batch 16 --steps 3 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import multiprocessing as mp
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxnets


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    """Resident set size now (Linux /proc; elsewhere the peak so far, a lower bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return _peak_rss_mb()


def sgd_train_step(model: Any, tx: Any) -> Callable[..., Any]:
    """The timed train step: cross-entropy, ``tx`` update, BatchNorm statistics carried."""
    def train_step(params, stats, opt_state, x, y):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(0)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new
        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new.get("batch_stats", stats), opt_state, loss
    return train_step


def bench_jax(name: str, batch: int, size: int, steps: int, train: bool, dtype: str = "float32",
              model_kwargs: dict | None = None, ynn: str = "auto") -> dict:
    """Compile one jitted inference or SGD train step, then time ``steps`` runs of it.

    Returns compile seconds, img/s (None when ``steps == 0``: memory analysis only, nothing
    is initialised or run), XLA's buffer assignment (``temp_mb``: temporaries, where saved
    activations live; ``total_mb``: arguments + outputs + temporaries − aliased) and
    ``peak_mb``: the device's peak bytes in use on accelerators, else ``total_mb``.
    """
    info = flaxnets.model_info(name)
    model = flaxnets.create_model(name, dtype=jnp.dtype(dtype), **(model_kwargs or {}))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, size, size, info.input_size[2])), jnp.float32)
    y = jnp.zeros((batch,), jnp.int32)
    tx = optax.sgd(0.01, momentum=0.9)
    train_step = sgd_train_step(model, tx)

    def eval_step(variables, x):
        return model.apply(variables, x, train=False)

    init = jax.jit(model.init) if steps > 0 else (lambda *a: jax.eval_shape(model.init, *a))
    variables = init(jax.random.PRNGKey(0), x[:1])
    if train:
        # The trainer's XLA options for this model's train step (YNN fusions on CPU for some families).
        fn = jax.jit(train_step, donate_argnums=(0, 1, 2), compiler_options=flaxnets.layers.train_compiler_options(
            name, ynn, jax.default_backend()) or None)
        opt_state = (tx.init if steps > 0 else (lambda p: jax.eval_shape(tx.init, p)))(variables["params"])
        args = (variables["params"], variables.get("batch_stats", {}), opt_state, x, y)
    else:
        fn = jax.jit(eval_step)
        args = (variables, x)
    t0 = time.perf_counter()
    lowered = fn.lower(*args)
    compiled = lowered.compile()
    out = {"compile_s": time.perf_counter() - t0, "img_s": None, "peak_mb": None, "temp_mb": None, "total_mb": None}
    # On GPU the compiled module's cost analysis leaves out the cuDNN convolutions (custom calls):
    # ResNet-50 came to 0.08 GFLOPs per image on an H200 (benchmarks/results/h200-2026-12-04).
    # There the FLOPs are counted on the HLO before the backend's passes (7.99 GFLOPs for ResNet-50).
    cost = compiled.cost_analysis() if jax.default_backend() == "cpu" else lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    out["gflops"] = float(cost.get("flops", 0.0)) / 1e9 / batch if cost else None  # per image
    mem = compiled.memory_analysis()
    if mem is not None:
        out["temp_mb"] = mem.temp_size_in_bytes / 2**20
        out["total_mb"] = out["peak_mb"] = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                                            + mem.temp_size_in_bytes - mem.alias_size_in_bytes) / 2**20
    if steps <= 0:
        return out

    def run(args):
        res = compiled(*args)
        return (res[0], res[1], res[2], x, y) if train else args, res

    args, res = run(args)  # warm-up
    jax.block_until_ready(res)
    t0 = time.perf_counter()
    for _ in range(steps):
        args, res = run(args)
    jax.block_until_ready(res)
    out["img_s"] = batch * steps / (time.perf_counter() - t0)
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    return out


def in_fresh_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a spawned process, so its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args, kwargs)


def bench_torch(name: str, batch: int, size: int, steps: int, train: bool, compile_: bool = False,
                twin_kwargs: dict | None = None) -> dict | None:
    """The torchvision/timm twin (eager, or ``torch.compile``): first-step seconds, img/s, peak MB."""
    info = flaxnets.model_info(name)
    if not info.twin:
        return None
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_twin

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_twin(name, **(twin_kwargs or {})).to(dev).train(train)
    x = torch.randn(batch, info.input_size[2], size, size, device=dev)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fn = torch.compile(model) if compile_ else model

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            out = fn(x)
            out = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
            torch.nn.functional.cross_entropy(out, y).backward()
            opt.step()
        else:
            with torch.no_grad():
                fn(x)
        if dev == "cuda":
            torch.cuda.synchronize()

    rss0, high0 = _current_rss_mb(), _peak_rss_mb()
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    if dev == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # growth of RSS over the step; unknown if the step never exceeded an earlier high-water mark
        peak = _peak_rss_mb() - rss0 if _peak_rss_mb() > high0 else None
    return {"compile_s": first_s, "img_s": batch * steps / dt, "peak_mb": peak}


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a``."""
    return "n/a" if value is None else format(value, spec)


# One model per family (issue 13), at batch 16 unless listed: nasnetalarge at 331² is run small.
REPRESENTATIVES: dict[str, int | None] = {
    "resnet50": None, "mobilenet_v2": None, "efficientnet_b0": None, "shufflenet_v2_x1_0": None,
    "resnet18": None, "vgg16": None, "densenet121": None, "inception_v3": None, "resnext50_32x4d": None,
    "squeezenet1_1": None, "ghostnet_100": None, "darknet53": None, "nasnetalarge": 4, "seresnet50": None,
    "googlenet": None,
}
# Dense bf16 tensor-core peak FLOP/s by device-kind substring, for MFU. NVIDIA H100 datasheet: BF16
# Tensor Core 1,979 TFLOPS (SXM) / 1,513 (PCIe) "shown with sparsity; 1/2 lower without"; H200
# has the H100's compute with more HBM (glennklockwood.com/garden/processors/h100: BF16 matrix 989.4).
_PEAKS = (("H100 PCIe", 1513e12 / 2), ("H100", 1979e12 / 2), ("H200", 1979e12 / 2))


def peak_flops(kind: str) -> float | None:
    """The dense bf16 peak of device kind ``kind`` (None when unknown: no MFU)."""
    return next((v for key, v in _PEAKS if key in kind), None)


def _one(side: str, name: str, mode: str, batch: int, size: int, steps: int, dtype: str,
         ynn: str = "auto") -> dict:
    """One measurement in this process (called in a fresh child by :func:`table`)."""
    if side == "flax":
        r = bench_jax(name, batch, size, steps, mode == "train", dtype, ynn=ynn)
        stats = jax.devices()[0].memory_stats() or {}
        r["device"] = jax.devices()[0].device_kind
        r["has_peak"] = "peak_bytes_in_use" in stats
        return r
    return bench_torch(name, batch, size, steps, mode == "train") or {}


def _child(side: str, name: str, mode: str, batch: int, size: int, steps: int, dtype: str,
           ynn: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--one", side, mode, name, "--batch", str(batch), "--size", str(size),
           "--steps", str(steps), "--dtype", dtype, "--cpu-ynn-fusions", ynn]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  {name} {mode} {side} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _med(v: list[float]) -> float | None:
    return statistics.median(v) if v else None


def table(names: list[str], batches: dict[str, int | None], a: argparse.Namespace, command: str) -> list[dict]:
    """Fresh-process, alternated, repeated flax/torch sweep; returns one row per model."""
    runs: dict = {}
    rows = []
    for name in names:  # the table is rewritten after each model, so a cut-short sweep still reports
        size = a.size or flaxnets.model_info(name).input_size[0]
        batch = batches.get(name) or a.batch
        for rep in range(a.repeats):
            sides = ("flax", "torch") if rep % 2 == 0 else ("torch", "flax")
            for mode in ("eval", "train"):
                for side in sides:
                    if side == "torch" and (a.no_torch or not flaxnets.model_info(name).twin):
                        continue
                    r = _child(side, name, mode, batch, size, a.steps, a.dtype, a.cpu_ynn_fusions)
                    runs.setdefault((name, mode, side), []).append(r)
                    print(f"rep {rep} {name:<20}{mode:<6}{side:<6}{fmt(r.get('img_s'), '.1f'):>8} img/s", flush=True)
        row: dict[str, Any] = {"model": name, "batch": batches.get(name) or a.batch,
                               "size": a.size or flaxnets.model_info(name).input_size[0]}
        for mode in ("eval", "train"):
            f, t = runs.get((name, mode, "flax"), []), runs.get((name, mode, "torch"), [])
            fi = [r["img_s"] for r in f if r.get("img_s")]
            ti = [r["img_s"] for r in t if r.get("img_s")]
            ratios = [x["img_s"] / y["img_s"] for x, y in zip(f, t, strict=False) if x.get("img_s") and y.get("img_s")]
            row[f"{mode}_flax"], row[f"{mode}_torch"] = _med(fi), _med(ti)
            row[f"{mode}_ratio"] = (row[f"{mode}_flax"] / row[f"{mode}_torch"]) if fi and ti else None
            row[f"{mode}_ratio_min"] = min(ratios) if ratios else None
            row[f"{mode}_ratio_max"] = max(ratios) if ratios else None
            row[f"{mode}_flax_mb"] = _med([r["peak_mb"] for r in f if r.get("peak_mb")])
            row[f"{mode}_torch_mb"] = _med([r["peak_mb"] for r in t if r.get("peak_mb")])
            row[f"{mode}_compile_s"] = _med([r["compile_s"] for r in f if r.get("compile_s")])
            if mode == "eval":
                row["gflops"] = _med([r["gflops"] for r in f if r.get("gflops")])
        kind = next((r.get("device") for r in runs.get((name, "train", "flax"), []) if r.get("device")), None)
        peak = peak_flops(kind or "")
        # MFU: 3× the forward FLOPs per image (forward + backward ≈ 2× forward) at the train rate.
        row["mfu"] = (3 * row["gflops"] * 1e9 * row["train_flax"] / peak
                      if peak and row.get("gflops") and row.get("train_flax") else None)
        rows.append(row)
        write_table(rows, a, command)
    return rows


def write_table(rows: list[dict], a: argparse.Namespace, command: str) -> None:
    """CSV next to the script and this device/dtype's section of BENCHMARKS.md."""
    device = f"{jax.devices()[0].platform}-{a.dtype}"
    root = Path(__file__).resolve().parents[1]
    csv_path = root / "benchmarks" / f"results-{device}.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    def ratio(r: dict, m: str) -> str:
        if r.get(f"{m}_ratio") is None:
            return "n/a"
        return f"**{r[f'{m}_ratio']:.2f}** ({r[f'{m}_ratio_min']:.2f}–{r[f'{m}_ratio_max']:.2f})"

    lines = [f"<!-- bench:{device} start -->", f"`{command}`", "",
             f"Device: {jax.devices()[0].device_kind}; {a.dtype}; {a.steps} timed steps after one warm-up; "
             f"{a.repeats} repeats, each side in a fresh process, flax/torch order alternating. Ratio = median "
             "flax img/s / median torch img/s (range: per-repeat ratios). Peak MB: flax = XLA buffer assignment "
             "(args + outputs + temps) or device peak; torch = RSS growth (CPU) or max allocated (GPU).", "",
             "| model | batch | eval flax | eval torch | eval ratio | train flax | train torch | train ratio "
             "| train compile s | train peak MB flax / torch | GFLOPs/img | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {fmt(r['eval_flax'], '.1f')} | {fmt(r['eval_torch'], '.1f')} | "
            f"{ratio(r, 'eval')} | {fmt(r['train_flax'], '.1f')} | {fmt(r['train_torch'], '.1f')} | "
            f"{ratio(r, 'train')} | {fmt(r['train_compile_s'], '.1f')} | {fmt(r['train_flax_mb'], '.0f')} / "
            f"{fmt(r['train_torch_mb'], '.0f')} | {fmt(r['gflops'], '.2f')} | "
            f"{'n/a' if r['mfu'] is None else format(r['mfu'], '.1%')} |")
    lines.append(f"<!-- bench:{device} end -->")
    if len(rows) < len(a.all_names):
        lines.insert(-1, f"\n(partial: {len(rows)} of {len(a.all_names)} models measured so far)")
    block = "\n".join(lines)
    md = root / "BENCHMARKS.md"
    text = md.read_text() if md.exists() else "# Benchmarks\n"
    start, end = f"<!-- bench:{device} start -->", f"<!-- bench:{device} end -->"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text)
    print(block)
    print(f"wrote {csv_path} and {md}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="names or globs (e.g. 'resnet*')")
    p.add_argument("--family-representatives", action="store_true", help="one model per family (issue 13)")
    p.add_argument("--table", action="store_true", help="fresh processes, alternated, repeated; writes "
                   "BENCHMARKS.md and a CSV")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("SIDE", "MODE"), help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--cpu-ynn-fusions", choices=flaxnets.layers.YNN_SETTINGS, default="auto",
                   help="XLA:CPU YNNPACK fusions in the train step, as the trainer's config.cpu_ynn_fusions")
    p.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    p.add_argument("--torch-compile", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args(argv)
    if a.one:
        side, mode = a.one
        size = a.size or flaxnets.model_info(a.models[0]).input_size[0]
        print(json.dumps(_one(side, a.models[0], mode, a.batch, size, a.steps, a.dtype, a.cpu_ynn_fusions)))
        return
    known = flaxnets.list_models()
    names: list[str] = list(REPRESENTATIVES) if a.family_representatives else []
    for pat in a.models:
        hits = [n for n in known if fnmatch.fnmatch(n, pat)]
        if not hits:
            sys.exit(f"bench: no registered model matches {pat!r}")
        names += [n for n in hits if n not in names]
    if not names:
        sys.exit("bench: give model names/globs or --family-representatives")
    if a.table:
        a.all_names = names
        command = "python benchmarks/bench.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
        batches = REPRESENTATIVES if a.family_representatives else {}
        table(names, batches, a, command)
        return
    a.models = names
    modes = ("eval", "train") if a.mode == "both" else (a.mode,)
    print(f"device: {jax.devices()[0].device_kind} ×{jax.device_count()}  batch {a.batch}  dtype {a.dtype}")
    print(f"{'model':<22}{'mode':<6}{'impl':<8}{'compile/1st s':>14}{'img/s':>10}{'peak MB':>10}")
    for name in a.models:
        size = a.size or flaxnets.model_info(name).input_size[0]
        for mode in modes:
            rows = [("flax", bench_jax(name, a.batch, size, a.steps, mode == "train", a.dtype,
                                       ynn=a.cpu_ynn_fusions))]
            if not a.no_torch:
                t = bench_torch(name, a.batch, size, a.steps, mode == "train", a.torch_compile)
                if t:
                    rows.append(("torch", t))
            for impl, r in rows:
                print(f"{name:<22}{mode:<6}{impl:<8}{r['compile_s']:>14.2f}{fmt(r['img_s'], '.1f'):>10}"
                      f"{fmt(r['peak_mb'], '.0f'):>10}")


if __name__ == "__main__":
    main()
