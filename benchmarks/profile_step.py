"""Where a train step's time goes on this machine: per HLO op, grouped by the JAX op that made it.

Compiles the same SGD train step as ``bench.py`` (the trainer's XLA options for the model),
runs it under ``jax.profiler`` and reads the trace back (``jax.profiler.ProfileData``): every
executed HLO instruction's time, summed over threads and averaged over the steps, labelled
forward or backward (``transpose(`` in its source path) and by the primitive at the end of its
``op_name``; then the slowest single instructions with their source path. A ``custom_vjp``'s
backward rule (the CPU depthwise conv's, the max pool's) keeps the forward's source path, so its
ops count as ``fwd``; single runs on a shared machine vary by ±20 %.

    python benchmarks/profile_step.py shufflenet_v2_x1_0 --batch 16 --steps 3
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench import sgd_train_step  # benchmarks/ is the script's directory

import flaxnets


def compiled_train_step(name: str, batch: int, size: int | None):
    """(compiled step, its arguments) for ``name``: SGD + momentum, as bench.py times it."""
    info = flaxnets.model_info(name)
    size = size or info.input_size[0]
    model = flaxnets.create_model(name)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, size, size, info.input_size[2])), jnp.float32)
    y = jnp.zeros((batch,), jnp.int32)
    tx = optax.sgd(0.01, momentum=0.9)
    train_step = sgd_train_step(model, tx)
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    options = flaxnets.layers.train_compiler_options(name, "auto", jax.default_backend()) or None
    args = (v["params"], v.get("batch_stats", {}), tx.init(v["params"]), x, y)
    return jax.jit(train_step, compiler_options=options).lower(*args).compile(), args


def hlo_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name → (opcode, op_name metadata) of the optimised module."""
    out = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ (\w[\w-]*)\(", line)
        if m:
            op = re.search(r'op_name="([^"]*)"', line)
            out[m.group(1)] = (m.group(2), op.group(1) if op else "")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args(argv)
    if a.model not in flaxnets.list_models():
        raise SystemExit(f"unknown model {a.model!r}")
    compiled, args = compiled_train_step(a.model, a.batch, a.size)
    sources = hlo_sources(compiled.as_text())
    jax.block_until_ready(compiled(*args))  # warm-up
    trace_dir = tempfile.mkdtemp(prefix="flaxnets_profile_")
    jax.profiler.start_trace(trace_dir)
    t0 = time.perf_counter()
    for _ in range(a.steps):
        jax.block_until_ready(compiled(*args))
    wall = (time.perf_counter() - t0) / a.steps
    jax.profiler.stop_trace()
    data = jax.profiler.ProfileData.from_file(sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1])
    per_inst: collections.Counter = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            for ev in line.events:
                if ev.name in sources:
                    per_inst[ev.name] += ev.duration_ns / 1e6 / a.steps
    groups: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for inst, ms in per_inst.items():
        opcode, src = sources[inst]
        prim = re.sub(r"\[.*", "", src.rsplit("/", 1)[-1]) if src else opcode
        key = ("bwd" if "transpose(" in src else "fwd", prim, opcode)
        groups[key] += ms
        counts[key] += 1
    total = sum(groups.values())
    print(f"{a.model}, batch {a.batch}: {wall * 1e3:.0f} ms/step wall ({a.batch / wall:.1f} img/s); "
          f"HLO op time {total:.0f} ms/step summed over threads")
    print("\n| ms/step | share | instructions | pass, JAX op, HLO opcode |\n|---|---|---|---|")
    for key, ms in groups.most_common(a.top):
        print(f"| {ms:.1f} | {100 * ms / total:.1f} % | {counts[key]} | {' · '.join(key)} |")
    print("\n| ms/step | instruction | source |\n|---|---|---|")
    for inst, ms in per_inst.most_common(a.top):
        print(f"| {ms:.1f} | {inst} ({sources[inst][0]}) | {sources[inst][1][-140:]} |")


if __name__ == "__main__":
    main()
