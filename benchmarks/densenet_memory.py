"""Memory-efficient DenseNet: peak memory, speed and compile time of one train step.

Compares ``flaxnets`` DenseNet with and without ``memory_efficient=True`` (the
concat-BN-ReLU-1×1 part of every dense layer rematerialised in the backward pass, Pleiss
et al. 2017) and, side by side, torchvision's DenseNet with ``memory_efficient`` False/True
(``torch.utils.checkpoint``).

    python benchmarks/densenet_memory.py                       # densenet121, batch 64, 224×224
    python benchmarks/densenet_memory.py --batch 8 --size 96 --steps 3
    python benchmarks/densenet_memory.py --steps 0 --no-torch  # memory analysis only

JAX memory: XLA's buffer assignment of the compiled train step (``memory_analysis()``,
known after compilation, without running; the temporaries are where the saved
activations live) and, on accelerators, the device's ``peak_bytes_in_use``. torch memory:
``torch.cuda.max_memory_allocated`` on GPU; on CPU the growth of peak RSS of a fresh
process per configuration (an upper bound including allocator slack). ``--steps 0``
skips running (no img/s) and torch.

Measured (CPU only; no accelerator was available), densenet121, batch 64, 224×224:
JAX's saved residuals 16,313 MB plain → 7,198 MB with ``memory_efficient`` (−56 %; what the
program asks to keep for the backward pass). XLA:CPU's compiled temporaries, however, are
11,764 MB plain vs 11,767 MB memory-efficient (compile 388 s vs 453 s): the CPU compiler
already avoids storing the plain net's concat/BN/ReLU outputs, so the explicit remat adds
nothing there. Accelerator backends, whose convolutions are library calls with materialised
inputs, are where the residual saving is expected to show; measure with this script there.
torchvision on CPU (batch 32, 112×112, RSS growth): 1,194 MB → 723 MB with checkpointing.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax
from bench import bench_jax, bench_torch, fmt, in_fresh_process

import flaxnets


def saved_residuals_mb(name: str, batch: int, size: int, memory_efficient: bool) -> float | None:
    """Bytes JAX's autodiff keeps from the forward pass for the backward (before XLA).

    Device-independent: what the program asks to store. XLA may then fuse, recompute or
    reorder (on CPU it already avoids storing the concat/BN/ReLU outputs of the plain net).
    Uses JAX's internal ``saved_residuals`` (the data behind ``print_saved_residuals``).
    """
    try:
        from jax._src.ad_checkpoint import saved_residuals
    except ImportError:
        return None
    model = flaxnets.create_model(name, memory_efficient=memory_efficient)
    x = jnp.zeros((batch, size, size, flaxnets.model_info(name).input_size[2]))
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x[:1])
    v = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def loss(params):
        logits, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                                mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros((batch,), jnp.int32)).mean()

    residuals = saved_residuals(loss, v["params"])
    return sum(a.size * a.dtype.itemsize for a, _ in residuals) / 2**20


def main(argv: list[str] | None = None) -> None:
    """Print the side-by-side table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="densenet121")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3, help="timed steps; 0 → memory analysis only")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-flax", action="store_true", help="only the torchvision rows")
    p.add_argument("--residuals-only", action="store_true", help="only JAX's saved residuals (no compile)")
    a = p.parse_args(argv)
    print(f"{a.model}  batch {a.batch}  {a.size}×{a.size}  device {jax.devices()[0].device_kind}")
    for eff in (False, True):
        mb = saved_residuals_mb(a.model, a.batch, a.size, eff)
        print(f"JAX saved residuals, memory_efficient={eff!s:<5}: {fmt(mb, ',.0f')} MB")
    if a.residuals_only:
        return
    print(f"{'impl':<7}{'memory_efficient':<18}{'compile/1st s':>14}{'img/s':>9}"
          f"{'XLA temp MB':>13}{'XLA total MB':>14}{'peak MB':>9}")
    for eff in (() if a.no_flax else (False, True)):
        r = bench_jax(a.model, a.batch, a.size, a.steps, train=True, model_kwargs={"memory_efficient": eff})
        print(f"{'flax':<7}{eff!s:<18}{r['compile_s']:>14.1f}{fmt(r['img_s'], '.1f'):>9}"
              f"{fmt(r['temp_mb'], '.0f'):>13}{fmt(r['total_mb'], '.0f'):>14}{fmt(r['peak_mb'], '.0f'):>9}")
    if a.no_torch or a.steps == 0 or not a.model.startswith("densenet") or a.model == "densenet264":
        return
    for eff in (False, True):
        # A fresh process per configuration: on CPU the peak is the growth of peak RSS.
        r = in_fresh_process(bench_torch, a.model, a.batch, a.size, a.steps, True,
                             twin_kwargs={"memory_efficient": eff})
        if r is None:
            print("torch  (torch/torchvision not installed)")
            break
        print(f"{'torch':<7}{eff!s:<18}{r['compile_s']:>14.1f}{r['img_s']:>9.1f}{'':>13}{'':>14}"
              f"{fmt(r['peak_mb'], '.0f'):>9}")


if __name__ == "__main__":
    main()
