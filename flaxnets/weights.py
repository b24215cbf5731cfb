"""Weights in and out: pretrained twin weights by tag, weight files, head reset, input channels.

``load_weights(name, source)`` returns ``{"params": ..., "batch_stats": ...}`` for model
``name`` from

* a torchvision tag: ``"torchvision"`` (the twin's default weights) or
  ``"torchvision:IMAGENET1K_V1"``, resolved through torchvision's weight registry; the file
  is read from torch hub's cache (``torch.hub.get_dir()/checkpoints``), downloaded there when
  the machine is online;
* a timm tag: ``"timm"`` (the default pretrained tag) or ``"timm:a1_in1k"``, resolved through
  timm's pretrained configs; the file is read from the Hugging Face hub cache
  (``model.safetensors`` of the config's ``hf_hub_id``), or torch hub's cache for configs that
  only have a URL;
* a file: ``.safetensors`` (a torch state_dict, e.g. a timm hub file, read without torch, or a
  flaxnets weights file written by :func:`save_weights`), ``.pth``/``.pt``/``.bin`` (a torch
  ``state_dict``, read with ``torch.load(weights_only=True)``).

Nothing touches the network at import time; tags need the ``[parity]`` extra (torchvision or
timm), files need only ``safetensors`` (and torch for ``.pth``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from flaxnets import layers
from flaxnets.interop import default_torch_key, from_torch
from flaxnets.registry import create_model, model_info

FORMAT = "flaxnets-weights-1"  # the ``format`` entry of a flaxnets weights file's metadata
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class WeightsError(ValueError):
    """Weights cannot be found or do not fit the model; the message is one line."""


# --- Sources ---------------------------------------------------------------------------------
def _twin(name: str, lib: str) -> str:
    twin = model_info(name).twin
    if not twin or not twin.startswith(f"{lib}:"):
        raise WeightsError(f"{name!r} has no {lib} twin (twin: {twin}); pass a weights file instead")
    return twin.split(":", 1)[1]


def _need(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise WeightsError(f"{what} needs {module} (pip install 'flaxnets[parity]' or pip install {module})") from None


def _cached_or_download(url: str) -> str:
    """Path of ``url``'s file in torch hub's cache, downloading it there if it is missing."""
    torch = _need("torch", "a torchvision weights tag")
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.exists(path):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=False)
        except Exception as e:  # noqa: BLE001 - offline, proxy, 404: one message
            raise WeightsError(f"weights file {path} is not cached and could not be downloaded "
                               f"({type(e).__name__}); download {url} and put it at {path}") from None
    return path


def torchvision_weights(name: str, tag: str | None = None) -> Any:
    """torchvision's weights enum entry for ``name``'s twin (``tag`` None: its DEFAULT)."""
    _need("torchvision", "a torchvision weights tag")
    import torchvision

    enum = torchvision.models.get_model_weights(_twin(name, "torchvision"))
    if tag is None:
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        raise WeightsError(f"torchvision has no {tag!r} weights for {name!r}; it has "
                           f"{', '.join(w.name for w in enum)}") from None


def timm_pretrained_cfg(name: str, tag: str | None = None) -> Any:
    """timm's pretrained config for ``name``'s twin (``tag`` None: timm's default tag)."""
    _need("timm", "a timm weights tag")
    import timm

    twin = _twin(name, "timm")
    cfg = timm.models.get_pretrained_cfg(f"{twin}.{tag}" if tag else twin, allow_unregistered=False)
    if cfg is None:
        tags = [m.split(".", 1)[1] for m in timm.list_pretrained(f"{twin}.*")]
        raise WeightsError(f"timm has no {tag!r} weights for {name!r}; published tags: {tags or 'none'}")
    if cfg.tag == "untrained" or not (cfg.hf_hub_id or cfg.url):
        raise WeightsError(f"timm publishes no weights for {twin!r} (tag {cfg.tag!r}: untrained)")
    return cfg


def _hf_file(repo_id: str) -> str:
    """``model.safetensors`` of a hub repo: from the Hugging Face cache, else downloaded."""
    hub = _need("huggingface_hub", "a timm weights tag")
    import huggingface_hub.constants  # noqa: F401 - loads the lazy submodule

    cached = hub.try_to_load_from_cache(repo_id, "model.safetensors")
    if isinstance(cached, str):
        return cached
    where = os.path.join(hub.constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
    try:
        return hub.hf_hub_download(repo_id, "model.safetensors")
    except Exception as e:  # noqa: BLE001 - offline, missing: one message
        raise WeightsError(f"model.safetensors of {repo_id} is not in the Hugging Face cache ({where}) and could "
                           f"not be downloaded ({type(e).__name__}); run huggingface-cli download {repo_id} "
                           "model.safetensors, or pass the file's path (offline: HF_HUB_OFFLINE=1 skips "
                           "the retries)") from None


def resolve(name: str, source: str) -> tuple[str, int | None]:
    """The local file of ``source`` and the number of classes its weights have (None: unknown)."""
    lib, _, tag = source.partition(":")
    if lib == "torchvision":
        weights = torchvision_weights(name, tag or None)
        categories = weights.meta.get("categories")
        return _cached_or_download(weights.url), len(categories) if categories else None
    if lib == "timm":
        cfg = timm_pretrained_cfg(name, tag or None)
        path = _hf_file(cfg.hf_hub_id.split("@")[0]) if cfg.hf_hub_id else _cached_or_download(cfg.url)
        return path, cfg.num_classes
    if not os.path.isfile(source):
        raise WeightsError(f"weights source {source!r} is neither a file nor a tag (torchvision[:TAG], timm[:TAG])")
    return source, None


# --- Files -------------------------------------------------------------------------------------
def read_state(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of a weights file (torch-style or flaxnets keys)."""
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, framework="numpy") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as e:  # noqa: BLE001 - truncated or not safetensors
            raise WeightsError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    if path.endswith(TORCH_SUFFIXES):
        torch = _need("torch", f"reading {os.path.basename(path)}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"{path} is not a readable torch state_dict ({str(e).splitlines()[0][:120]})") from None
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        return {k: v for k, v in state.items() if hasattr(v, "shape")}, {}
    raise WeightsError(f"unknown weights file type {path!r} (.safetensors, {', '.join(TORCH_SUFFIXES)})")


def save_weights(path: str, variables: Mapping[str, Any], name: str, *,
                 metadata: Mapping[str, Any] | None = None) -> str:
    """Write ``variables`` (params + batch_stats) of model ``name`` as a safetensors file.

    The file's metadata carries the arch, its number of classes (read from the classifier),
    input size and mean/std, so :func:`load_weights` can refuse a wrong model.
    """
    if not path.endswith(".safetensors"):
        raise WeightsError(f"flaxnets weights files end in .safetensors, got {path!r}")
    from safetensors.numpy import save_file

    info = model_info(name)
    flat = {"/".join(k): np.asarray(v, np.float32) for k, v in traverse_util.flatten_dict(
        {c: dict(variables[c]) for c in ("params", "batch_stats") if c in variables}).items()}
    meta = {"format": FORMAT, "arch": name, "num_classes": str(_num_classes_of(name, flat)),
            "input_size": json.dumps(list(info.input_size)), "mean": json.dumps(list(info.mean)),
            "std": json.dumps(list(info.std))}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    save_file(flat, tmp, metadata=meta)
    os.replace(tmp, path)  # a crash never leaves half a file under the final name
    return path


def _num_classes_of(name: str, flat: Mapping[str, Any]) -> int:
    """Output width of the main classifier in flaxnets-keyed arrays (0: no head)."""
    if not model_info(name).classifier:
        return 0
    head = model_info(name).classifier[0]
    for key, value in flat.items():
        module = key.split("/", 1)[1].rsplit("/", 1)[0] if key.startswith("params/") else None
        if module is not None and layers.path_matches(module, [head]) and key.endswith("bias"):
            return int(value.shape[-1])
    return 0


def _torch_num_classes(name: str, arrays: Mapping[str, Any]) -> int | None:
    info = model_info(name)
    if not info.classifier:
        return None
    to_key = info.torch_key or default_torch_key
    prefix = to_key(tuple(info.classifier[0].split("/")) + ("bias",))
    value = arrays.get(f"{prefix}.bias")
    return None if value is None else int(value.shape[0])


# --- Loading ------------------------------------------------------------------------------------
def _init_variables(name: str, num_classes: int, rng: jax.Array, channels: int) -> dict[str, Any]:
    info = model_info(name)
    model = create_model(name, num_classes=num_classes)
    x = jnp.zeros((1, info.input_size[0], info.input_size[1], channels))
    return jax.jit(lambda r: model.init({"params": r, "dropout": r}, x),
                   compiler_options=layers.run_once_compiler_options())(rng)


def _unflatten_flaxnets(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in arrays.items()})


def adapt_first_conv(kernel: jax.Array, in_chans: int) -> jax.Array:
    """An HWIO first-conv kernel for ``in_chans`` inputs, as timm adapts pretrained convs.

    One channel: the sum over the RGB filters (a grey image equals R = G = B). More than
    three: the RGB filters repeated and scaled by 3 / in_chans, keeping activations' scale.
    """
    k = np.asarray(kernel)
    have = k.shape[2]
    if in_chans == have:
        return jnp.asarray(k)
    if in_chans == 1:
        if have > 3:  # grouped RGB triples (timm): sum each triple
            k = k.reshape(*k.shape[:2], have // 3, 3, k.shape[3]).sum(axis=3)
        else:
            k = k.sum(axis=2, keepdims=True)
        return jnp.asarray(k)
    if have != 3:
        raise WeightsError(f"cannot adapt a first conv with {have} input channels to {in_chans}")
    reps = math.ceil(in_chans / 3)
    return jnp.asarray(np.tile(k, (1, 1, reps, 1))[:, :, :in_chans] * (3.0 / in_chans))


def reset_classifier(name: str, variables: Mapping[str, Any], num_classes: int,
                     rng: jax.Array | None = None) -> tuple[dict[str, Any], list[str]]:
    """``variables`` with the classifier (and aux heads) for ``num_classes``: freshly initialised,
    or dropped for 0. Every other leaf is kept as it is. Returns the variables and the reset keys."""
    info = model_info(name)
    flat = traverse_util.flatten_dict(dict(variables))
    in_head = {k for k in flat if layers.path_matches(layers.module_path(k[1:-1]), info.classifier)}
    kept = {k: v for k, v in flat.items() if k not in in_head}
    reset = sorted("/".join(k) for k in in_head)
    if num_classes:
        first = flat.get(("params", *info.first_conv.split("/"), "kernel"))
        channels = info.input_size[2] if first is None else int(first.shape[2])
        fresh = traverse_util.flatten_dict(dict(_init_variables(name, num_classes, rng if rng is not None
                                                                else jax.random.PRNGKey(0), channels)))
        head = {k: v for k, v in fresh.items() if layers.path_matches(layers.module_path(k[1:-1]), info.classifier)}
        kept.update(head)
        reset = sorted("/".join(k) for k in head)
    return traverse_util.unflatten_dict(kept), reset


def load_weights(name: str, source: str, *, num_classes: int | None = None, in_chans: int | None = None,
                 rng: jax.Array | None = None, verbose: bool = True) -> dict[str, Any]:
    """Variables for model ``name`` from a weights tag or file (see the module docstring).

    Args:
      name: registry name.
      source: ``"torchvision[:TAG]"``, ``"timm[:TAG]"`` or a file path.
      num_classes: when it differs from the source's, the classifier modules
        (``ModelInfo.classifier``, aux heads included) are re-initialised from ``rng`` and every
        other tensor is kept; ``0`` drops the head (a pooled-feature model).
      in_chans: input channels; the first conv (``ModelInfo.first_conv``) is adapted as timm does.
      rng: initialises a reset head (default ``PRNGKey(0)``).
      verbose: print one line saying which tensors were reset.

    Raises:
      WeightsError: one line naming what is missing or does not fit.
    """
    info = model_info(name)
    path, source_classes = resolve(name, source)
    arrays, meta = read_state(path)
    if meta.get("format") == FORMAT:
        if meta.get("arch") != name:
            raise WeightsError(f"{path} holds {meta.get('arch')!r} weights, not {name!r}")
        variables = _unflatten_flaxnets(arrays)
        source_classes = int(meta["num_classes"])
    else:
        source_classes = source_classes or _torch_num_classes(name, arrays) or info.num_classes
        try:
            variables = from_torch(name, arrays, num_classes=source_classes)
        except ValueError as e:
            raise WeightsError(f"{os.path.basename(path)} does not fit {name!r}: {str(e)[:300]}") from None
    if in_chans is not None and in_chans != info.input_size[2]:
        params = traverse_util.flatten_dict(dict(variables["params"]))
        key = (*info.first_conv.split("/"), "kernel")
        params[key] = adapt_first_conv(params[key], in_chans)
        variables = {**variables, "params": traverse_util.unflatten_dict(params)}
    if num_classes is not None and num_classes != source_classes:
        variables, reset = reset_classifier(name, variables, num_classes, rng)
        if verbose:
            what = "dropped" if num_classes == 0 else f"re-initialised for {num_classes} classes"
            print(f"flaxnets: {name}: {len(reset)} classifier tensors {what} "
                  f"(source has {source_classes}): {', '.join(reset[:6])}{' …' if len(reset) > 6 else ''}",
                  file=sys.stderr)
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


def classes_in(name: str, variables: Mapping[str, Any]) -> int:
    """Number of classes the classifier in ``variables`` has (0: no head)."""
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict({"params": dict(variables["params"])}).items()}
    return _num_classes_of(name, flat)


@dataclasses.dataclass(frozen=True)
class WeightsRecord:
    """One set of published weights of a model's twin.

    Attributes:
      source: the ``load_weights`` source string (``"torchvision:IMAGENET1K_V2"``, ``"timm:a1_in1k"``).
      default: whether the bare tag (``"torchvision"`` / ``"timm"``) resolves to it.
      top1: the top-1 the source publishes for these weights (torchvision's ``meta``; timm keeps
        its results in the repository's ``results/`` tables, not in the package: ``None``).
      eval_transform: resize / crop / interpolation of that number (``crop_pct`` = crop / resize).
      license: the weights' license as the source states it.
      num_classes: classes of the weights' head; ``classes`` names them (ImageNet-1k: shipped list).
    """

    source: str
    default: bool
    top1: float | None
    eval_transform: Mapping[str, Any]
    license: str | None
    num_classes: int
    classes: str


def published_weights(name: str) -> list[WeightsRecord]:
    """The weights torchvision / timm publish for ``name``'s twin (needs the library; no network)."""
    twin = model_info(name).twin
    if twin is None:
        return []
    lib, twin_name = twin.split(":", 1)
    out = []
    if lib == "torchvision":
        _need("torchvision", "listing torchvision weights")
        import torchvision

        enum = torchvision.models.get_model_weights(twin_name)
        for w in enum:
            preset = w.transforms()
            resize = preset.resize_size[0] if getattr(preset, "resize_size", None) else None
            crop = preset.crop_size[0] if getattr(preset, "crop_size", None) else None
            out.append(WeightsRecord(
                source=f"torchvision:{w.name}", default=w is enum.DEFAULT,
                top1=w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
                eval_transform={"resize": resize, "crop": crop,
                                "crop_pct": crop / resize if crop and resize else None,
                                "interpolation": getattr(getattr(preset, "interpolation", None), "value", None)},
                license="BSD-3-Clause (torchvision); see the recipe in meta['recipe']",
                num_classes=len(w.meta.get("categories") or ()),
                classes="imagenet-1k" if w.meta.get("categories") else "none (feature weights)"))
        return out
    _need("timm", "listing timm weights")
    import timm

    default = timm.models.get_pretrained_cfg(twin_name).tag
    for full in timm.list_pretrained(f"{twin_name}.*"):
        cfg = timm.models.get_pretrained_cfg(full)
        if cfg.tag == "untrained" or not (cfg.hf_hub_id or cfg.url):
            continue
        out.append(WeightsRecord(
            source=f"timm:{cfg.tag}", default=cfg.tag == default, top1=None,
            eval_transform={"input_size": tuple(cfg.input_size), "crop_pct": cfg.crop_pct,
                            "interpolation": cfg.interpolation, "crop_mode": cfg.crop_mode},
            license=cfg.license, num_classes=cfg.num_classes,
            classes="imagenet-1k" if cfg.num_classes == 1000 else f"{cfg.num_classes} classes (see timm)"))
    return out
