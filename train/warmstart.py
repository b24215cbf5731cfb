"""Warm starts and fine-tuning: initialise a run's variables from weights or from another run.

``--config.init_from=SOURCE`` takes

* a weights source as :func:`flaxnets.load_weights` reads it: a tag (``torchvision``,
  ``timm:a1_in1k``), a torch ``state_dict`` file (``.pth``/``.pt``/``.bin``/``.safetensors``,
  keyed for ``config.init_arch`` or, by default, the run's arch) or a flaxnets weights file
  (its arch is read from the file);
* another run's workdir (or its ``checkpoints`` folder): its ``latest`` checkpoint, its
  ``best`` (by eval top-1, see ``config.keep_best``) or a step number (``init_checkpoint``);
  the EMA weights when that run kept them (``init_ema``).

Tensors are matched by variable path (``params/<module path>/<leaf>``, BatchNorm statistics
likewise) and shape, after the optional ``init_map`` renames module-path prefixes
(``("features.3=features.5", "*=")``: the most specific matching source pattern wins, an
empty target drops the tensor). When the number of classes differs, the classifier
(``ModelInfo.classifier``, aux heads included) keeps its fresh initialisation ("reset"); a
first-conv kernel that differs only in input channels is adapted as timm does. One line
reports how many tensors were loaded, kept random and reset; ``init_strict`` turns any target
tensor left random, or any source tensor left unused, into an error. A resumed run never
comes here: its own checkpoint wins (see :func:`train.loop.setup_run`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import traverse_util

import flaxnets
from flaxnets import layers
from flaxnets import weights as fw

COLLECTIONS = ("params", "batch_stats")


class WarmStartError(ValueError):
    """The init source cannot be read or does not fit; the message is one line."""


@dataclasses.dataclass
class Source:
    """Variables read from an init source and what is known about them."""

    variables: dict[str, Any]
    arch: str
    num_classes: int | None
    description: str


@dataclasses.dataclass
class Report:
    """What :func:`match` did, tensor by tensor (``collection/module/leaf`` names)."""

    loaded: list[str]
    random: list[str]
    reset: list[str]
    mismatched: list[str]  # among ``random``: a source tensor of another shape was there
    unused: list[str]  # source tensors no target tensor took (dropped by the map excluded)
    adapted: list[str]  # among ``loaded``: a first conv adapted to other input channels

    def line(self, description: str) -> str:
        """The one line a run prints."""
        out = (f"init_from {description}: {len(self.loaded)} tensors loaded, {len(self.random)} kept random, "
               f"{len(self.reset)} reset")
        if self.reset:
            out += " (classifier: new number of classes)"
        if self.adapted:
            out += f", first conv adapted to other input channels ({self.adapted[0]})"
        if self.mismatched:
            out += f", shape mismatch: {_few(self.mismatched)}"
        elif self.random:
            out += f", random: {_few(self.random)}"
        if self.unused:
            out += f"; {len(self.unused)} source tensors unused: {_few(self.unused)}"
        return out


def _few(names: Sequence[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" … (+{len(names) - n})" if len(names) > n else "")


# --- Sources ----------------------------------------------------------------------------------
def checkpoint_dir(path: str) -> str | None:
    """The orbax checkpoint folder of a run's workdir (or the folder itself), else None."""
    path = os.path.abspath(os.path.expanduser(path))
    for d in (os.path.join(path, "checkpoints"), path):
        if os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d)):
            return d
    return None


def has_checkpoint(workdir: str) -> bool:
    """Whether ``workdir`` already holds a checkpoint (then the run resumes, never re-inits)."""
    d = os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")
    return os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d))


def read_run(path: str, which: str = "latest", use_ema: bool = True) -> Source:
    """The variables of another run's checkpoint: ``which`` is ``latest``, ``best`` or a step."""
    import orbax.checkpoint as ocp

    from train import checkpoint as ckpt_lib

    d = checkpoint_dir(path)
    if d is None:
        raise WarmStartError(f"init_from {path!r}: no checkpoint in that workdir")
    options = ocp.CheckpointManagerOptions(read_only=True, best_fn=ckpt_lib.best_metric, best_mode="max")
    with ocp.CheckpointManager(d, options=options, item_names=("state", "meta")) as mgr:
        if which == "latest":
            step = mgr.latest_step()
        elif which == "best":
            step = mgr.best_step()
            if step is None or not _has_metrics(d, step):
                raise WarmStartError(f"init_from {path!r}: no checkpoint with eval metrics (best needs a run "
                                     "with periodic evals and keep_best)")
        else:
            step = int(which)
            if step not in mgr.all_steps():
                raise WarmStartError(f"init_from {path!r}: no checkpoint at step {step} (has "
                                     f"{sorted(mgr.all_steps())})")
        try:
            out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                              meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - unreadable: one line
            raise WarmStartError(f"init_from {path!r}: checkpoint {step} unreadable "
                                 f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    state, meta = out["state"], dict(out["meta"])
    state = jax.tree_util.tree_map(np.asarray, state)
    if "digest" in meta and ckpt_lib.tree_digest(state) != meta["digest"]:
        raise WarmStartError(f"init_from {path!r}: checkpoint {step} fails its content checksum")
    ema = use_ema and bool(jax.tree_util.tree_leaves(state.get("ema_params") or {}))
    variables = {"params": state["ema_params" if ema else "params"]}
    stats = state.get("ema_batch_stats" if ema else "batch_stats")
    if stats:
        variables["batch_stats"] = stats
    return Source(variables, meta["arch"], meta.get("num_classes"),
                  f"{path} (step {step}{', EMA' if ema else ''}, {which})")


def _has_metrics(directory: str, step: int) -> bool:
    return bool(glob.glob(os.path.join(directory, str(step), "metrics*")))


def read_weights(source: str, arch: str, init_arch: str | None = None) -> Source:
    """Variables from a weights tag or file (the source's own head is kept)."""
    path = source if os.path.isfile(source) else None
    if path and path.endswith(".safetensors"):
        arrays, meta = fw.read_state(path)
        if meta.get("format") == fw.FORMAT:
            src_arch = meta.get("arch", arch)
            variables = traverse_util.unflatten_dict({tuple(k.split("/")): np.asarray(v) for k, v in arrays.items()})
            return Source(variables, src_arch, int(meta.get("num_classes", 0)) or None,
                          f"{source} (flaxnets weights of {src_arch})")
    src_arch = init_arch or arch
    variables = fw.load_weights(src_arch, source, verbose=False)
    variables = jax.tree_util.tree_map(np.asarray, variables)
    return Source(variables, src_arch, fw.classes_in(src_arch, variables) or None, source)


def read_source(config: Any, arch: str) -> Source:
    """:class:`Source` of ``config.init_from`` (a workdir, or a weights tag/file)."""
    source = str(config.init_from)
    if os.path.isdir(os.path.expanduser(source)):
        return read_run(source, str(config.get("init_checkpoint") or "latest"), bool(config.get("init_ema", True)))
    try:
        return read_weights(os.path.expanduser(source) if os.path.exists(os.path.expanduser(source)) else source,
                            arch, config.get("init_arch") or None)
    except fw.WeightsError as e:
        raise WarmStartError(f"init_from {source!r}: {e}") from None


# --- Matching ----------------------------------------------------------------------------------
def parse_map(entries: Sequence[str]) -> list[tuple[str, str | None]]:
    """``("src=dst", "glob=")`` → ``[(src, dst or None)]``; raises on an entry without ``=``."""
    out = []
    for e in entries:
        if "=" not in e:
            raise WarmStartError(f"init_map entry {e!r} is not SOURCE=TARGET (an empty TARGET drops the tensor)")
        src, dst = (s.strip() for s in e.split("=", 1))
        out.append((src, dst or None))
    return out


def map_module(path: str, mapping: Sequence[tuple[str, str | None]]) -> str | None:
    """``path`` with the prefix matched by the best map pattern replaced; None: dropped.

    A pattern matches the module path or one of its prefixes (``layers.path_matches``). A
    pattern without wildcards beats a glob, then the longer matched prefix wins, then the
    longer pattern; so ``"*="`` only drops what no explicit entry names. No match: unchanged.
    """
    if not mapping:
        return path
    parts = path.split("/")
    hits = []
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        for src, dst in mapping:
            if fnmatch.fnmatchcase(prefix, src):
                hits.append(((not any(c in src for c in "*?["), n, len(src)), n, dst))
    if not hits:
        return path
    _, n, dst = max(hits, key=lambda h: h[0])
    return None if dst is None else "/".join([dst, *parts[n:]])


def match(target: Mapping[str, Any], source: Source, *, arch: str, num_classes: int,
          mapping: Sequence[tuple[str, str | None]] = ()) -> tuple[dict[str, Any], Report]:
    """``target`` variables with every source tensor that fits (path after ``mapping``, shape) copied in."""
    info = flaxnets.model_info(arch)
    flat_t = traverse_util.flatten_dict({c: dict(target[c]) for c in COLLECTIONS if c in target and target[c]})
    flat_s = traverse_util.flatten_dict({c: dict(source.variables[c]) for c in COLLECTIONS
                                         if c in source.variables and source.variables[c]})
    candidates: dict[tuple[str, ...], tuple[tuple[str, ...], Any]] = {}
    for key, value in flat_s.items():
        module = map_module(layers.module_path(key[1:-1]), mapping)
        if module is None:
            continue
        candidates[(key[0], *module.split("/"), key[-1])] = (key, value)
    reset_head = source.num_classes is not None and int(source.num_classes) != int(num_classes)
    out, used = {}, set()
    rep = Report([], [], [], [], [], [])
    first = (*info.first_conv.split("/"), "kernel") if info.first_conv else None
    for key, init in flat_t.items():
        name = "/".join(key)
        in_head = layers.path_matches(layers.module_path(key[1:-1]), info.classifier)
        hit = candidates.get(key)
        if hit is not None:
            used.add(hit[0])
        if reset_head and in_head:
            out[key] = init
            rep.reset.append(name)
            continue
        if hit is None:
            out[key] = init
            rep.random.append(name)
            continue
        value = np.asarray(hit[1])
        shape = tuple(np.shape(init))
        if value.shape != shape and key[0] == "params" and key[1:] == first and value.ndim == 4 \
                and value.shape[:2] + value.shape[3:] == shape[:2] + shape[3:]:
            value = np.asarray(fw.adapt_first_conv(value, shape[2]))
            rep.adapted.append(name)
        if value.shape != shape:
            out[key] = init
            rep.random.append(name)
            rep.mismatched.append(f"{name} {value.shape}→{shape}")
            continue
        out[key] = np.asarray(value, dtype=np.asarray(init).dtype)
        rep.loaded.append(name)
    dropped = {k for k in flat_s if map_module(layers.module_path(k[1:-1]), mapping) is None}
    head_src = {k for k in flat_s if reset_head and layers.path_matches(
        layers.module_path(k[1:-1]), flaxnets.model_info(source.arch).classifier)}
    rep.unused = sorted("/".join(k) for k in flat_s if k not in used and k not in dropped and k not in head_src)
    merged = traverse_util.unflatten_dict(out)
    return {c: merged.get(c, target.get(c)) for c in target}, rep


def warm_start(config: Any, target: Mapping[str, Any], arch: str, num_classes: int) -> tuple[dict, Report, str]:
    """Variables for a fresh run from ``config.init_from``, the report and its one line.

    Raises :class:`WarmStartError` for an unreadable source, a bad map, or (``init_strict``)
    any tensor left random or unused.
    """
    source = read_source(config, arch)
    mapping = parse_map(tuple(config.get("init_map") or ()))
    variables, rep = match(target, source, arch=arch, num_classes=num_classes, mapping=mapping)
    line = rep.line(source.description)
    if not rep.loaded:
        raise WarmStartError(f"{line}: nothing matched ({source.arch} → {arch}; use --config.init_map)")
    if config.get("init_strict") and (rep.random or rep.unused):
        raise WarmStartError(f"init_strict: {line}")
    return variables, rep, line
