"""Where a dense 3×3 convolution's training time goes on XLA:CPU, piece by piece.

Times (ms, median of 5, jitted, batch 16, fp32) of the forward, the input gradient, the kernel
gradient and both gradients of ``lax.conv_general_dilated``, and of other formulations of the
kernel gradient (one matmul per tap, im2col + one matmul); ``torch`` times ``F.conv2d`` forward
and forward + backward. Run each side in its own process; XLA_FLAGS apply to the jax side:

    python benchmarks/conv_grad_parts.py jax 56x64
    python benchmarks/conv_grad_parts.py torch 56x64
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=dot python benchmarks/conv_grad_parts.py jax 56x64

``grouped`` times the two CPU forwards of a ResNeXt grouped 3×3 conv (32 groups, batch 16) in
``flaxnets/layers.py``, multiply-adds and one batched matmul per tap, with their compile times,
at the channels per group and sides of ResNeXt's stages (the choice ``_MACS_MAX_CIN`` makes):

    python benchmarks/conv_grad_parts.py grouped

``small`` times a dense 3×3 conv (padding 1, batch 64) on tiny maps, forward and forward +
backward, as lax's conv, one matmul per tap and one matmul per output pixel (``flaxnets/layers.py``,
``_SMALL_MAP``):

    python benchmarks/conv_grad_parts.py small
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

SHAPES = {"56x64": (56, 64, 64), "28x128": (28, 128, 128), "14x256": (14, 256, 256), "7x512": (7, 512, 512)}
BATCH = 16


def _ms(fn, iters: int = 5) -> float:
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def jax_side(shape: str) -> dict[str, float]:
    """XLA's pieces and the alternative kernel-gradient formulations (checked equal first)."""
    import jax
    import jax.numpy as jnp

    hw, ci, co = SHAPES[shape]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((BATCH, hw, hw, ci)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, ci, co)) * 0.05, jnp.float32)
    dy = jnp.asarray(rng.standard_normal((BATCH, hw, hw, co)), jnp.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def taps(x):
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return [xp[:, i:i + hw, j:j + hw, :] for i in range(3) for j in range(3)]

    def per_tap_dw(x, dy):
        return jnp.stack([jax.lax.dot_general(t, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))) for t in taps(x)]
                         ).reshape(3, 3, ci, co)

    def im2col_dw(x, dy):
        cols = jnp.concatenate(taps(x), axis=-1)
        return jax.lax.dot_general(cols, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))).reshape(3, 3, ci, co)

    fwd = jax.jit(conv)
    dx = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
    dw = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
    both = jax.jit(lambda x, w, dy: jax.vjp(conv, x, w)[1](dy))
    tap_dw, col_dw = jax.jit(per_tap_dw), jax.jit(im2col_dw)
    for f in (tap_dw, col_dw):
        np.testing.assert_allclose(np.asarray(f(x, dy)), np.asarray(dw(x, w, dy)), rtol=2e-3, atol=2e-2)
    return {"forward": _ms(lambda: fwd(x, w).block_until_ready()),
            "input grad": _ms(lambda: dx(x, w, dy).block_until_ready()),
            "kernel grad": _ms(lambda: dw(x, w, dy).block_until_ready()),
            "both grads": _ms(lambda: jax.block_until_ready(both(x, w, dy))),
            "kernel grad, matmul per tap": _ms(lambda: tap_dw(x, dy).block_until_ready()),
            "kernel grad, im2col": _ms(lambda: col_dw(x, dy).block_until_ready())}


def torch_side(shape: str) -> dict[str, float]:
    import torch

    hw, ci, co = SHAPES[shape]
    x = torch.randn(BATCH, ci, hw, hw, requires_grad=True)
    w = torch.randn(co, ci, 3, 3, requires_grad=True)
    dy = torch.randn(BATCH, co, hw, hw)

    def forward() -> None:
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, padding=1)

    def forward_backward() -> None:
        x.grad = w.grad = None
        torch.nn.functional.conv2d(x, w, padding=1).backward(dy)

    return {"forward": _ms(forward), "forward + backward": _ms(forward_backward)}


GROUPED = ((4, 56), (4, 28), (8, 56), (8, 28), (8, 14), (16, 28), (16, 14), (32, 14), (64, 7))


def grouped_side() -> None:
    """Multiply-adds vs batched matmuls per tap, forward, per (channels per group, side)."""
    import jax
    import jax.numpy as jnp

    from flaxnets import layers

    groups = 32
    for cin_g, hw in GROUPED:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((BATCH, hw + 2, hw + 2, cin_g * groups)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((3, 3, cin_g, cin_g * groups)) * 0.05, jnp.float32)
        forms = {"multiply-adds": lambda x, k: layers._grouped_macs(x, k, (hw, hw), (1, 1), (1, 1), groups),
                 "matmul per tap": lambda x, k: layers._grouped_taps(x, k, (hw, hw), (1, 1), (1, 1), groups, None)}
        parts, outs = [], []
        for form, f in forms.items():
            t0 = time.perf_counter()
            compiled = jax.jit(f).lower(x, k).compile()
            compile_s = time.perf_counter() - t0
            outs.append(np.asarray(compiled(x, k)))
            parts.append(f"{form} {_ms(lambda: compiled(x, k).block_until_ready()):.1f} ms (compile {compile_s:.2f} s)")
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-3)
        print(f"grouped {cin_g} ch/group {hw}x{hw}: " + ", ".join(parts), flush=True)


# (input side, channels, stride): the last stages of ImageNet nets at 32×32 and their neighbours.
SMALL = ((1, 512, 1), (2, 256, 1), (2, 512, 1), (4, 256, 2), (2, 256, 2), (4, 256, 1), (8, 64, 1), (16, 64, 1))


def small_side() -> None:
    """lax's conv, one matmul per kernel tap and one matmul per output pixel (the receptive field
    as one slice, ``layers._conv_small``), forward and forward + backward, per tiny map."""
    import jax
    import jax.numpy as jnp

    from flaxnets import layers

    def per_tap(x, k, s):
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        ho = (x.shape[1] - 1) // s + 1
        return sum(layers._tap(xp, i, j, (ho, ho), (s, s)) @ k[i, j] for i in range(3) for j in range(3))

    for hw, c, s in SMALL:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((64, hw, hw, c)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((3, 3, c, c)) * 0.05, jnp.float32)
        ho = (hw - 1) // s + 1
        forms = {"conv": lambda x, k: jax.lax.conv_general_dilated(x, k, (s, s), ((1, 1), (1, 1)),
                                                                   dimension_numbers=("NHWC", "HWIO", "NHWC")),
                 "matmul per tap": lambda x, k: per_tap(x, k, s),
                 "matmul per pixel": lambda x, k: layers._conv_small(
                     jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (s, s), (1, 1), (ho, ho), (1, 1), (hw, hw), None)}
        parts = []
        for form, f in forms.items():
            if form == "matmul per pixel" and ho * ho > layers._SMALL_MAP:
                continue
            fwd = jax.jit(f)
            both = jax.jit(jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) ** 2), argnums=(0, 1)))
            parts.append(f"{form} {_ms(lambda: fwd(x, k).block_until_ready()):.2f} / "
                         f"{_ms(lambda: jax.block_until_ready(both(x, k))):.2f} ms")
        print(f"small 3x3 {hw}x{hw}x{c} stride {s}, batch 64, forward / forward+backward: " + ", ".join(parts),
              flush=True)


def main(argv: list[str]) -> int:
    if argv in (["grouped"], ["small"]):
        grouped_side() if argv == ["grouped"] else small_side()
        return 0
    if len(argv) != 2 or argv[0] not in ("jax", "torch") or argv[1] not in SHAPES:
        print(f"usage: conv_grad_parts.py jax|torch {'|'.join(SHAPES)}, or conv_grad_parts.py grouped|small",
              file=sys.stderr)
        return 2
    side, shape = argv
    times = jax_side(shape) if side == "jax" else torch_side(shape)
    print(side, shape, ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
