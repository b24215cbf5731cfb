"""Single-op timings: the convolution and max-pool formulations of ``flaxnets.layers`` against torch.

Each (op, side) is timed in a fresh process; sides alternate and the whole round repeats,
so a noisy shared machine shows up as spread instead of bias. Sides: ``native``
(``lax.conv_general_dilated``), ``cpu`` (the CPU formulation in ``layers``), ``torch``
(``torch.nn.functional.conv2d``, NCHW). Forward, and forward+backward (grads of input and
kernel for a random cotangent), jitted, batch 16, float32. Max pools (``POOLS``): ``native``
is ``reduce_window`` differentiated by XLA (``select_and_scatter``), ``cpu`` the pool with its
written-out gradient, ``torch`` ``F.max_pool2d``; inputs are post-ReLU (many zeros, ties).

    python benchmarks/ops.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

# name: (H=W, cin, cout, kernel, stride, groups)
OPS = {
    "dw3x3 56²×144": (56, 144, 144, 3, 1, 144),
    "dw3x3/2 112²×96": (112, 96, 96, 3, 2, 96),
    "dw5x5 28²×240": (28, 240, 240, 5, 1, 240),
    "dw5x5/2 56²×144": (56, 144, 144, 5, 2, 144),
    "1x1 56² 256→64": (56, 256, 64, 1, 1, 1),
    "1x1 14² 1024→256": (14, 1024, 256, 1, 1, 1),
    "g32 3x3 56²×128": (56, 128, 128, 3, 1, 32),
    "g32 3x3/2 56²×256": (56, 256, 256, 3, 2, 32),
    "g32 3x3 28²×256": (28, 256, 256, 3, 1, 32),
    "g3 1x1 28² 240→60": (28, 240, 60, 1, 1, 3),
    "g2 5x5 27² 64→192": (27, 64, 192, 5, 1, 2),
    "dense 3x3 56² 64→64": (56, 64, 64, 3, 1, 1),
}
# name: (H=W, channels, kernel, stride, padding, ceil_mode): ResNet's stem pool, GoogLeNet's
# stem and inception-branch pools, SqueezeNet's ceil-mode pool, VGG's 2×2.
POOLS = {
    "maxpool3x3/2 112²×64": (112, 64, 3, 2, 1, False),
    "maxpool3x3/2 ceil 56²×64": (56, 64, 3, 2, 0, True),
    "maxpool3x3/1 28²×192": (28, 192, 3, 1, 1, False),
    "maxpool2x2/2 112²×128": (112, 128, 2, 2, 0, False),
}


def _time(fn, iters: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters * 1e3


def run_one(side: str, op: str, batch: int, iters: int) -> dict:
    """Milliseconds forward and forward+backward of ``op`` on ``side`` (this process only)."""
    if op in POOLS:
        return run_pool(side, op, batch, iters)
    hw, cin, cout, k, s, g = OPS[op]
    pad = k // 2
    if side == "torch":
        import torch

        x = torch.randn(batch, cin, hw, hw, requires_grad=True)
        w = torch.randn(cout, cin // g, k, k, requires_grad=True)

        def fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(x, w, stride=s, padding=pad, groups=g)

        ct = torch.randn_like(torch.nn.functional.conv2d(x.detach(), w.detach(), stride=s, padding=pad, groups=g))

        def fwdbwd():
            x.grad = w.grad = None
            torch.nn.functional.conv2d(x, w, stride=s, padding=pad, groups=g).backward(ct)

        return {"fwd": _time(fwd, iters), "fwdbwd": _time(fwdbwd, iters)}
    import jax
    import jax.numpy as jnp

    from flaxnets import layers

    x = jax.random.normal(jax.random.PRNGKey(0), (batch, hw, hw, cin))
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin // g, cout))
    with layers.conv_impl(side):
        def conv(x, w):
            return layers.conv_general_dilated(x, w, (s, s), ((pad, pad), (pad, pad)),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)

        f = jax.jit(conv)
        ct = jax.random.normal(jax.random.PRNGKey(2), jax.eval_shape(conv, x, w).shape)  # a real cotangent
        gr = jax.jit(jax.grad(lambda x, w: jnp.vdot(conv(x, w), ct), argnums=(0, 1)))
        t0 = time.perf_counter()
        f.lower(x, w).compile()
        gr.lower(x, w).compile()
        compile_s = time.perf_counter() - t0
    return {"fwd": _time(lambda: f(x, w).block_until_ready(), iters),
            "fwdbwd": _time(lambda: jax.block_until_ready(gr(x, w)), iters), "compile_s": compile_s}


def run_pool(side: str, op: str, batch: int, iters: int) -> dict:
    """As :func:`run_one` for a max pool of :data:`POOLS` (gradient of the input only)."""
    hw, c, k, s, p, ceil = POOLS[op]
    if side == "torch":
        import torch

        x = torch.relu(torch.randn(batch, c, hw, hw)).requires_grad_()
        ct = torch.randn_like(torch.nn.functional.max_pool2d(x.detach(), k, s, p, ceil_mode=ceil))

        def fwd():
            with torch.no_grad():
                torch.nn.functional.max_pool2d(x, k, s, p, ceil_mode=ceil)

        def fwdbwd():
            x.grad = None
            torch.nn.functional.max_pool2d(x, k, s, p, ceil_mode=ceil).backward(ct)

        return {"fwd": _time(fwd, iters), "fwdbwd": _time(fwdbwd, iters)}
    import jax
    import jax.numpy as jnp

    from flaxnets import layers

    x = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(0), (batch, hw, hw, c)))
    with layers.conv_impl(side):
        def pool(x):
            return layers.max_pool(x, k, s, p, ceil_mode=ceil)

        f = jax.jit(pool)
        ct = jax.random.normal(jax.random.PRNGKey(2), jax.eval_shape(pool, x).shape)
        gr = jax.jit(jax.grad(lambda x: jnp.vdot(pool(x), ct)))
        t0 = time.perf_counter()
        f.lower(x).compile()
        gr.lower(x).compile()
        compile_s = time.perf_counter() - t0
    return {"fwd": _time(lambda: f(x).block_until_ready(), iters),
            "fwdbwd": _time(lambda: gr(x).block_until_ready(), iters), "compile_s": compile_s}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", nargs="*", default=[*OPS, *POOLS], help=f"subset of {[*OPS, *POOLS]}")
    p.add_argument("--sides", nargs="*", default=["native", "cpu", "torch"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--one", nargs=2, metavar=("SIDE", "OP"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(a.one[0], a.one[1], a.batch, a.iters)))
        return
    bad = [o for o in a.ops if o not in OPS and o not in POOLS]
    if bad:
        sys.exit(f"unknown op(s) {bad}; choose from {[*OPS, *POOLS]}")
    res: dict = {}
    for _ in range(a.repeats):
        for op in a.ops:
            for side in a.sides:
                out = subprocess.run([sys.executable, __file__, "--one", side, op, "--batch", str(a.batch),
                                      "--iters", str(a.iters)], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                for key, v in r.items():
                    res.setdefault((op, side, key), []).append(v)
    print("| op | side | fwd ms (median, min–max) | fwd+bwd ms (median, min–max) |")
    print("|---|---|---|---|")
    for op in a.ops:
        for side in a.sides:
            cells = []
            for key in ("fwd", "fwdbwd"):
                v = res[(op, side, key)]
                cells.append(f"{statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})")
            print(f"| {op} | {side} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
