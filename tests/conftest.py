"""Shared test helpers: small inputs, twin construction for parity tests, compile options."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import flaxnets
from flaxnets import layers

# Compile-time economy, per jit rather than process-wide: the registry-wide tests whose cost is
# one deep compile and one tiny run (tests/test_models.py's train step) pass
# ``jax.jit(..., compiler_options=FAST_COMPILE)``: XLA's LLVM backend at optimisation level 0
# without its expensive passes and with the legacy (non-MLIR) fusion emitters compiles them in
# about half the time (densenet121 behaviour test: 34 s -> 18 s) and changes no op semantics
# (fast-math stays off). Set for the whole process (XLA_FLAGS, until 2026-12-02) the same options
# made every test that *runs* much slower: resnet20 on digits for 15 epochs 154 s vs 22 s wall,
# efficientnet_b7's forward at 600x600 6.7 s vs 1.1 s. FLAXNETS_TEST_XLA_OPT=1 keeps XLA's
# defaults everywhere.
FAST_COMPILE: dict = ({} if os.environ.get("FLAXNETS_TEST_XLA_OPT") == "1" else
                      {**layers.ONCE_CPU_OPTIONS, "xla_cpu_use_fusion_emitters": False})


def cheap_jit(fn, **kwargs):
    """``jax.jit(fn)`` traced on the native conv path and compiled with :data:`FAST_COMPILE`.

    For the tests of a model's semantics (dropout, drop-path, auxiliary losses, activations,
    init, wiring), which do not depend on how a convolution is formulated: XLA's conv compiles
    2-5x faster than the CPU formulations (``flaxnets.layers``), whose numerics the parity and
    layer tests pin (efficientnet_b0's drop-connect test: 40 s against 100 s on a loaded machine).
    """
    import jax

    def traced(*args, **kw):
        with layers.conv_impl("native"):
            return fn(*args, **kw)

    return jax.jit(traced, compiler_options=FAST_COMPILE, **kwargs)


def small_input_size(name: str) -> tuple[int, int, int]:
    """The smallest square input the model accepts, with its channel count."""
    info = flaxnets.model_info(name)
    return (info.min_size, info.min_size, info.input_size[2])


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def build_twin(name: str, calibrate: tuple[int, int] | bool = True, **kwargs):
    """The torchvision/timm twin of ``name`` in eval mode with randomised BN statistics.

    ``calibrate``: the (height, width) of the batch that sets the BN statistics (True: the
    model's default size); a test that compares logits at smaller sizes calibrates at one of them
    (efficientnet_b6's train-mode batch at 528×528 took 12 s of its parity test's 17). False:
    no batch, the statistics are only perturbed (distinct values for tests of weight loading).
    ``kwargs`` are passed to the twin's constructor on top of the registry's ``twin_kwargs``.
    """
    torch = pytest.importorskip("torch")
    info = flaxnets.model_info(name)
    lib, twin_name = info.twin.split(":", 1)
    torch.manual_seed(0)
    if lib == "torchvision":
        import torchvision

        twin = getattr(torchvision.models, twin_name)(weights=None, **dict(info.twin_kwargs), **kwargs)
    elif lib == "timm":
        timm = pytest.importorskip("timm")
        twin = timm.create_model(twin_name, pretrained=False, **dict(info.twin_kwargs), **kwargs)
    else:
        raise ValueError(f"unknown twin library {lib!r}")
    # Random but well-conditioned BatchNorm state: calibrate the running statistics on a
    # random batch with unit affine parameters (so every BN normalises what reaches it,
    # whatever the twin's init, e.g. timm's zero-init of the last BN in a block), then
    # draw scales in [0.5, 1) and small biases and perturb the statistics. Scales below 1
    # keep the network contractive like a trained one; with scales ≥ 1 deep nets become
    # chaotic and float32 rounding alone moves the twin's own logits by more than 1e-4.
    bns = [m for m in twin.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    h, w, c = info.input_size
    h, w = calibrate if isinstance(calibrate, tuple) else (h, w)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch sets the statistics
            if bn.affine:
                bn.weight.fill_(1.0)
                bn.bias.zero_()
        twin.train()
        if calibrate:
            twin(torch.randn(4, c, h, w, generator=gen))
        for bn in bns:
            n = bn.num_features
            bn.running_mean.add_(torch.randn(n, generator=gen) * 0.1)
            bn.running_var.mul_(torch.rand(n, generator=gen) * 0.4 + 0.8)
            if bn.affine:
                bn.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                bn.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return twin.eval()


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def random_variables(model, x, seed: int = 0, bn_scale: tuple[float, float] = (1.0, 1.0)) -> dict:
    """Variables with the shapes of ``model.init`` filled by numpy (no init compilation).

    Kernels get He-normal values for their fan-in, BN scales uniform in ``bn_scale`` (1 by
    default), biases and other params a small normal, BN statistics (0, 1), all drawn in float32
    (:func:`flaxnets.export_table.random_like`). Keeps registry-wide tests to one compile per model.
    """
    import jax

    from flaxnets.export_table import random_like

    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0),
                                                "dropout": jax.random.PRNGKey(1)}, x))
    return random_like(shapes, seed, bn_scale)
