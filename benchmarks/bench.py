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
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
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


def bench_jax(name: str, batch: int, size: int, steps: int, train: bool, dtype: str = "float32",
              model_kwargs: dict | None = None) -> dict:
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

    def train_step(params, stats, opt_state, x, y):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(0)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new
        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new.get("batch_stats", stats), opt_state, loss

    def eval_step(variables, x):
        return model.apply(variables, x, train=False)

    init = jax.jit(model.init) if steps > 0 else (lambda *a: jax.eval_shape(model.init, *a))
    variables = init(jax.random.PRNGKey(0), x[:1])
    if train:
        fn = jax.jit(train_step, donate_argnums=(0, 1, 2))
        opt_state = (tx.init if steps > 0 else (lambda p: jax.eval_shape(tx.init, p)))(variables["params"])
        args = (variables["params"], variables.get("batch_stats", {}), opt_state, x, y)
    else:
        fn = jax.jit(eval_step)
        args = (variables, x)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    out = {"compile_s": time.perf_counter() - t0, "img_s": None, "peak_mb": None, "temp_mb": None, "total_mb": None}
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    p.add_argument("--torch-compile", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args(argv)
    modes = ("eval", "train") if a.mode == "both" else (a.mode,)
    print(f"device: {jax.devices()[0].device_kind} ×{jax.device_count()}  batch {a.batch}  dtype {a.dtype}")
    print(f"{'model':<22}{'mode':<6}{'impl':<8}{'compile/1st s':>14}{'img/s':>10}{'peak MB':>10}")
    for name in a.models:
        size = a.size or flaxnets.model_info(name).input_size[0]
        for mode in modes:
            rows = [("flax", bench_jax(name, a.batch, size, a.steps, mode == "train", a.dtype))]
            if not a.no_torch:
                t = bench_torch(name, a.batch, size, a.steps, mode == "train", a.torch_compile)
                if t:
                    rows.append(("torch", t))
            for impl, r in rows:
                print(f"{name:<22}{mode:<6}{impl:<8}{r['compile_s']:>14.2f}{fmt(r['img_s'], '.1f'):>10}"
                      f"{fmt(r['peak_mb'], '.0f'):>10}")


if __name__ == "__main__":
    main()
