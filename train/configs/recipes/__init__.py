"""Per-arch training recipes taken from the papers.

Each module here defines ``RECIPES: dict[str, dict]`` mapping a registry-name glob
pattern to the config fields the paper prescribes, with a comment that cites the source
(paper, section/table) and the paper's reported top-1/top-5. :func:`recipe_for` merges
every pattern that matches the arch, most specific (longest pattern) last.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from typing import Any


def all_recipes() -> dict[str, dict[str, Any]]:
    """Every pattern → fields mapping defined in this package."""
    out: dict[str, dict[str, Any]] = {}
    for mod in pkgutil.iter_modules(__path__):
        recipes = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "RECIPES", {})
        for pattern, fields in recipes.items():
            if pattern in out:
                raise ValueError(f"recipe pattern {pattern!r} defined twice")
            out[pattern] = fields
    return out


def recipe_for(arch: str) -> dict[str, Any]:
    """Config fields for ``arch`` from every matching recipe pattern."""
    merged: dict[str, Any] = {}
    matches = [p for p in all_recipes() if fnmatch.fnmatchcase(arch, p)]
    for pattern in sorted(matches, key=len):
        merged.update(all_recipes()[pattern])
    return merged
