"""Per-layer summary of a registered model: output shapes, parameter counts, FLOPs.

Shapes come from ``jax.eval_shape`` with ``capture_intermediates`` (no compilation), so
the table can be printed for any model on a laptop. FLOPs come from XLA's cost analysis
of the lowered (not compiled) forward pass and count multiply and add separately.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from flaxnets import layers
from flaxnets.registry import create_model, model_info


@dataclasses.dataclass
class Summary:
    """Result of :func:`summary`; ``str()`` renders the table."""

    name: str
    input_size: tuple[int, int, int]
    rows: list[tuple[str, tuple[int, ...], int]]  # (module path, output shape, params inside)
    total_params: int
    flops: float | None

    def __str__(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [5])
        h, w, c = self.input_size
        lines = [f"{self.name}  input {h}×{w}×{c}", f"{'layer':<{width}}  {'output':<20} {'params':>12}"]
        for path, shape, n in self.rows:
            out = "×".join(str(d) for d in shape[1:])
            lines.append(f"{path:<{width}}  {out:<20} {n:>12,}")
        lines.append(f"total params: {self.total_params:,}")
        if self.flops is not None:
            lines.append(f"FLOPs (XLA, mul+add): {self.flops / 1e9:.3f} G")
        return "\n".join(lines)


def count_params(tree: object) -> int:
    """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def variable_shapes(model: nn.Module, input_size: tuple[int, int, int], seed: int = 0) -> dict:
    """``model.init``'s variables for one image of ``input_size`` (H, W, C), as ShapeDtypeStructs.

    Traced on the native conv path: the CPU formulations have the same variables (names and
    shapes) and trace several times slower (senet154: 6.0 s against 1.6 s).
    """
    x = jnp.zeros((1, *input_size), jnp.float32)
    with layers.conv_impl("native"):
        return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(seed), x, train=False))


def forward_flops(model: nn.Module, input_size: tuple[int, int, int], variables: dict | None = None) -> float | None:
    """XLA's FLOP count of one image's inference forward pass (multiply and add counted apart).

    From the lowered, not compiled, computation, on the native conv path on every platform: it
    counts the convolutions, not a CPU formulation's slices and multiply-adds. ``variables``
    (shapes suffice) saves a trace; None where the backend gives no cost analysis.
    """
    x = jax.ShapeDtypeStruct((1, *input_size), jnp.float32)
    variables = variables if variables is not None else variable_shapes(model, input_size)
    with layers.conv_impl("native"):
        try:
            cost = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).cost_analysis()
        except Exception:  # cost analysis is best effort on some backends
            return None
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def summary(name: str, input_size: tuple[int, int, int] | None = None, flops: bool = True,
            depth: int | None = None, **overrides: object) -> Summary:
    """Per-layer table of model ``name`` at ``input_size`` (H, W, C; default: the model's).

    Rows are module calls in execution order with their output shape and the number of
    parameters inside the module; ``depth`` limits how deeply nested modules are listed (None: all).
    """
    info = model_info(name)
    size = tuple(input_size) if input_size is not None else info.input_size
    model = create_model(name, **overrides)
    x = jax.ShapeDtypeStruct((1, *size), jnp.float32)
    variables = variable_shapes(model, size)
    params = traverse_util.flatten_dict(variables.get("params", {}))
    sizes = [(path[:-1], math.prod(leaf.shape)) for path, leaf in params.items()]

    def subtree(prefix: tuple[str, ...]) -> int:
        return sum(n for p, n in sizes if p[: len(prefix)] == prefix)
    # Record every submodule call in execution order (children finish before parents).
    rows: list[tuple[str, tuple[int, ...], int]] = []

    active: list = []  # modules whose methods are running (a subclass calling super() nests)

    def record(next_fun, args, kwargs, context):
        module = context.module
        nested = bool(active) and active[-1] is module
        active.append(module)
        try:
            out = next_fun(*args, **kwargs)
        finally:
            active.pop()
        if not nested and context.method_name == "__call__" and module.path and hasattr(out, "shape"):
            if depth is None or len(module.path) <= depth:
                rows.append(("/".join(module.path), tuple(out.shape), subtree(tuple(module.path))))
        return out

    # The convolutions' shapes, traced on the native conv path (the CPU formulations have the
    # same variables and outputs, and more ops to trace).
    with layers.conv_impl("native"), nn.intercept_methods(record):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    total_flops = forward_flops(model, size, variables) if flops else None
    return Summary(name, size, rows, count_params(variables.get("params", {})), total_flops)


__all__ = ["Summary", "count_params", "forward_flops", "summary", "variable_shapes"]
