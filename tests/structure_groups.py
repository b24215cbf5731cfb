"""Structure signatures: which registered models run the same code, differing only in sizes.

A model's signature is the set of its module calls, each as (module class, method, every
field but its name whose kind differs from its default's; the kind of a number is 0 / 1 /
many / negative, of a sequence the set of its members' kinds), hashed. Depth, width, growth
rate and group counts above one vanish; a module or option that only some variants have (a
bottleneck, grouped convs, SE gates, a bias, an activation) does not.
``tests/test_models.py`` checks every model's signature against ``structure_groups.json`` in
the trace it makes anyway, and compiles the train/eval behaviour test once per group (its
member with the fewest parameter tensors): a depth or width variant adds compile time there
but no code. ``tests/test_parity.py`` compares every twin at its odd extra size and one twin
per group at the default size too.

Refresh after a model change: ``python tests/structure_groups.py`` (writes the JSON).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any

import flax.linen as nn

FILE = pathlib.Path(__file__).with_name("structure_groups.json")


def _kind(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return "0" if v == 0 else "1" if v == 1 else "neg" if v < 0 else "many"
    if isinstance(v, tuple | list):
        return tuple(sorted({repr(_kind(x)) for x in v}))
    return getattr(v, "__name__", type(v).__name__)  # callables, dtypes, modules


def _is_default(module: Any, field: dataclasses.Field) -> bool:
    """Whether the field's kind is its declared default's (left out of the signature, so that a
    field a new flax version adds to ``nn.Conv`` with a default changes no signature)."""
    if field.default is dataclasses.MISSING:
        return False
    return repr(_kind(getattr(module, field.name, None))) == repr(_kind(field.default))


class Recorder:
    """``with nn.intercept_methods(rec):`` around a trace; ``rec.signature()`` afterwards."""

    def __init__(self) -> None:
        self.calls: set = set()

    def __call__(self, next_fun, args, kwargs, context):
        m = context.module
        fields = tuple((f.name, repr(_kind(getattr(m, f.name, None)))) for f in dataclasses.fields(m)
                       if f.name not in ("parent", "name") and not _is_default(m, f))
        self.calls.add((type(m).__name__, context.method_name, fields))
        return next_fun(*args, **kwargs)

    def signature(self) -> str:
        return hashlib.sha1(repr(sorted(self.calls)).encode()).hexdigest()[:12]


def recorded(fn):
    """``fn`` with its module calls recorded: returns ``(wrapped, recorder)``."""
    rec = Recorder()

    def wrapped(*args, **kwargs):
        with nn.intercept_methods(rec):
            return fn(*args, **kwargs)

    return wrapped, rec


def load() -> dict[str, list]:
    """``{name: [signature, parameter tensors]}``."""
    return json.loads(FILE.read_text())


def representatives(table: dict[str, list], family: Any) -> list[str]:
    """One model per (family, signature): the fewest parameter tensors, then the name."""
    best: dict[tuple, tuple] = {}
    for name, (sig, leaves) in table.items():
        key = (family(name), sig)
        best[key] = min(best.get(key, (leaves, name)), (leaves, name))
    return sorted(name for _, name in best.values())


def measure(name: str) -> list:
    """``[signature, parameter tensors]`` of ``name``, from the trace the anatomy test makes."""
    import jax
    import jax.numpy as jnp

    import flaxnets
    from flaxnets import layers

    info = flaxnets.model_info(name)
    model = flaxnets.create_model(name, dtype=jnp.bfloat16)
    init, rec = recorded(lambda: model.init_with_output(jax.random.PRNGKey(0), jnp.zeros((3, *info.input_size))))
    with layers.conv_impl("native"):
        _, variables = jax.eval_shape(init)
    return [rec.signature(), len(jax.tree_util.tree_leaves(variables["params"]))]


if __name__ == "__main__":
    import flaxnets

    table = {n: measure(n) for n in flaxnets.list_models()}
    FILE.write_text(json.dumps(table, indent=0, sort_keys=True) + "\n")
    print(f"wrote {FILE}: {len(table)} models, "
          f"{len(representatives(table, lambda n: flaxnets.model_info(n).family))} behaviour groups")
