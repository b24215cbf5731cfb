"""One check of a resolved config against its dataset, model and workdir, before anything runs.

:func:`validate` runs after the recipe and the dataset are resolved and before the trainer
creates, reads or writes anything in the workdir, so a bad value costs one line and nothing
else (no overwritten ``config.json``, no half-trained run). Every problem found is reported in
the one message.
"""

from __future__ import annotations

import math
import os
from typing import Any

import flaxnets

OPTIMIZERS = ("sgd", "rmsprop", "adamw", "sdlm")
SCHEDULES = ("cosine", "linear", "poly", "step", "exponential", "constant", "plateau")
TRAIN_CROPS = ("random_resized", "scale_jitter", "pad_crop", "center")
EVAL_MODES = ("center", "10crop", "multiscale", "dense", "144crop", "multicrop150")
COMBINE = "+"  # "dense+multicrop150": the softmax outputs of several modes averaged (VGG Table 5)
AUTO_AUGMENTS = ("", "autoaugment", "autoaugment_svhn", "randaugment")
PARALLEL = ("jit", "pmap")
DTYPES = ("auto", "float32", "bfloat16", "float16")
GRAD_CLIP_MODES = ("global", "per_tensor")


class ConfigError(ValueError):
    """The config cannot be run; the message is one line naming every bad field."""


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def is_eval_mode(mode: Any) -> bool:
    """One of :data:`EVAL_MODES`, or several distinct ones joined by "+" (their softmax outputs
    averaged per example, e.g. "dense+multicrop150")."""
    parts = str(mode).split(COMBINE)
    return isinstance(mode, str) and all(p in EVAL_MODES for p in parts) and len(set(parts)) == len(parts)


def config_problems(config: Any, image_size: int) -> list[str]:
    """Every reason ``config`` cannot train at ``image_size`` (empty: fine)."""
    info = flaxnets.model_info(config.arch)
    bad: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            bad.append(message)

    def positive(field: str, allow_none: bool = False, integer: bool = False, zero: bool = False) -> None:
        value = config.get(field)
        if value is None and allow_none:
            return
        x = _number(value)
        ok = x is not None and math.isfinite(x) and (x >= 0 if zero else x > 0)
        if ok and integer:
            ok = float(x).is_integer()
        need(ok, f"{field}={value!r} must be a {'non-negative' if zero else 'positive'} "
                 f"{'integer' if integer else 'number'}")

    positive("batch_size", integer=True)
    positive("learning_rate", zero=True)
    positive("num_epochs", allow_none=True)
    positive("steps_per_epoch", allow_none=True, integer=True)
    positive("max_steps", allow_none=True, integer=True)
    positive("eval_batch_size", allow_none=True, integer=True)
    positive("steps_per_eval", allow_none=True, integer=True)
    positive("log_every_steps", integer=True)
    positive("checkpoint_every_steps", integer=True)
    positive("keep_checkpoints", integer=True)
    positive("eval_every_epochs")
    for field in ("weight_decay", "momentum", "label_smoothing", "warmup_epochs", "grad_clip_norm",
                  "lr_batch_denom", "pca_lighting", "color_jitter"):
        positive(field, zero=True)
    need(0 <= (_number(config.label_smoothing) or 0) < 1,
         f"label_smoothing={config.label_smoothing!r} must be in [0, 1)")
    need(0 <= (_number(config.momentum) or 0) < 1 + 1e-9, f"momentum={config.momentum!r} must be in [0, 1]")
    if config.get("aux_loss_weight") is not None:
        positive("aux_loss_weight", zero=True)
    for field, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("train_crop", TRAIN_CROPS),
                           ("auto_augment", AUTO_AUGMENTS), ("parallel", PARALLEL), ("compute_dtype", DTYPES),
                           ("cpu_ynn_fusions", flaxnets.layers.YNN_SETTINGS),
                           ("grad_clip_mode", GRAD_CLIP_MODES)):
        need(config.get(field) in choices,
             f"{field}={config.get(field)!r} is not one of {', '.join(map(repr, choices))}")
    modes = tuple(config.eval_modes) if not isinstance(config.eval_modes, str) else (config.eval_modes,)
    unknown = [m for m in modes if not is_eval_mode(m)]
    need(not unknown, f"eval_modes {unknown} unknown (use {', '.join(EVAL_MODES)}, or distinct ones joined by "
                      f"{COMBINE!r} to average their softmax outputs, e.g. 'dense+multicrop150')")
    if any("dense" in str(m).split(COMBINE) for m in modes):
        need(info.dense_eval is not None, f"eval mode 'dense': {config.arch} has no dense evaluation")
    ratio = _number(config.eval_crop_ratio)
    need(ratio is not None and 0 < ratio <= 1, f"eval_crop_ratio={config.eval_crop_ratio!r} must be in (0, 1]")
    lo, hi = (tuple(config.crop_area_range) + (None, None))[:2]
    need(_number(lo) is not None and _number(hi) is not None and 0 < lo <= hi <= 1,
         f"crop_area_range={tuple(config.crop_area_range)!r} must satisfy 0 < lo <= hi <= 1")
    if config.get("num_classes") is not None:
        need(int(config.num_classes) > 0,
             f"num_classes={config.num_classes} cannot be trained (0 means a pooled-feature model without a "
             "classifier; leave it unset for the dataset's)")
    smallest = info.smallest_input(config.get("model_overrides"))
    need(image_size >= smallest, f"image_size={image_size} is below {config.arch}'s minimum {smallest} "
                                 + ("without its aux heads " if smallest < info.min_size else "")
                                 + f"({info.table or info.paper})")
    if info.fixed_size:
        need(image_size == info.input_size[0], f"image_size={image_size}: {config.arch} accepts only "
                                               f"{info.input_size[0]}x{info.input_size[1]}")
    bad += finetune_problems(config)
    bad += schedule_and_augment_problems(config)
    return bad


def _pair(value: Any, low: float, high: float | None = None, integer: bool = False) -> bool:
    """``value`` is ``(lo, hi)`` with ``low < lo <= hi`` (``<= high``), integers if asked."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return False
    ok = math.isfinite(lo) and math.isfinite(hi) and low < lo <= hi and (high is None or hi <= high)
    return ok and (not integer or (lo.is_integer() and hi.is_integer()))


def schedule_and_augment_problems(config: Any) -> list[str]:
    """Optimiser constants, schedule shapes and augmentation ranges the other checks leave out."""
    bad: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            bad.append(message)

    def within(field: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> None:
        x = _number(config.get(field))
        ok = x is not None and (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)
        need(ok, f"{field}={config.get(field)!r} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                 f"{')' if hi_open else ']'}")

    for field in ("rmsprop_decay", "adam_b1", "adam_b2"):
        within(field, 0.0, 1.0)
    for field in ("rmsprop_eps", "step_factor", "decay_rate", "decay_epochs", "poly_power"):
        within(field, 0.0, math.inf, lo_open=True)
    within("head_lr_mult", 0.0, math.inf)
    side = _number(config.get("small_data_image_size"))
    need(side is not None and side.is_integer() and side >= 0,
         f"small_data_image_size={config.get('small_data_image_size')!r} must be a whole number of pixels >= 0 "
         "(0: the smallest the model allows)")
    within("small_data_min_epochs", 0.0, math.inf)
    within("plateau_patience", 0.0, math.inf, lo_open=True)
    drops = _number(config.get("plateau_drops"))
    need(drops is not None and drops.is_integer() and drops >= 0,
         f"plateau_drops={config.get('plateau_drops')!r} must be an integer >= 0")
    if config.get("depthwise_weight_decay") is not None:
        within("depthwise_weight_decay", 0.0, math.inf)
    steps_at = [_number(e) for e in tuple(config.get("step_epochs") or ())]
    need(all(e is not None and e >= 0 for e in steps_at) and steps_at == sorted(steps_at),
         f"step_epochs={tuple(config.step_epochs)!r} must be non-negative and increasing")
    need(_pair(config.get("aspect_ratio_range"), 0.0),
         f"aspect_ratio_range={tuple(config.aspect_ratio_range)!r} must satisfy 0 < lo <= hi")
    need(_pair(config.get("scale_jitter_range"), 0.0, integer=True),
         f"scale_jitter_range={tuple(config.scale_jitter_range)!r} must be integers 0 < lo <= hi")
    for field, low in (("pad_crop_padding", 0), ("randaugment_num_ops", 0), ("shuffle_buffer", 1)):
        x = _number(config.get(field))
        need(x is not None and x.is_integer() and x >= low,
             f"{field}={config.get(field)!r} must be an integer >= {low}")
    within("randaugment_magnitude", 0.0, 10.0, hi_open=False)  # RandAugment's 0-10 scale (Sec. 3)
    sizes = [_number(s) for s in tuple(config.get("multiscale_sizes") or ())]
    need(all(s is not None and s.is_integer() and s > 0 for s in sizes),
         f"multiscale_sizes={tuple(config.multiscale_sizes)!r} must be positive integers")
    return bad


def finetune_problems(config: Any) -> list[str]:
    """Bad warm-start, freeze, lr_mult and EMA fields (syntax and ranges; patterns are checked
    against the model's parameters by :func:`param_pattern_problems`)."""
    from train import optim, steps, warmstart

    bad = []
    try:
        warmstart.parse_map(tuple(config.get("init_map") or ()))
    except ValueError as e:
        bad.append(str(e))
    try:
        optim.parse_lr_mult(tuple(config.get("lr_mult") or ()))
    except ValueError as e:
        bad.append(str(e))
    try:
        optim.parse_filter_radius(tuple(config.get("filter_rms_radius") or ()))
    except ValueError as e:
        bad.append(str(e))
    which = str(config.get("init_checkpoint") or "latest")
    if which not in ("latest", "best") and not which.isdigit():
        bad.append(f"init_checkpoint={which!r} is not 'latest', 'best' or a step number")
    if config.get("init_arch"):
        try:
            flaxnets.model_info(config.init_arch)
        except ValueError as e:
            bad.append(f"init_arch: {e}")
    decay = _number(config.get("ema_decay", 0.0))
    if decay is None or not 0 <= decay < 1:
        bad.append(f"ema_decay={config.get('ema_decay')!r} must be in [0, 1) (0: no EMA)")
    if config.get("ema_warmup", "tf") not in steps.EMA_WARMUPS:
        bad.append(f"ema_warmup={config.get('ema_warmup')!r} is not one of {', '.join(map(repr, steps.EMA_WARMUPS))}")
    power = _number(config.get("ema_warmup_power", 0.75))
    if power is None or not power > 0:
        bad.append(f"ema_warmup_power={config.get('ema_warmup_power')!r} must be > 0")
    bn = _number(config.get("bn_freeze_epochs", 0.0))
    if bn is None or not bn >= 0:
        bad.append(f"bn_freeze_epochs={config.get('bn_freeze_epochs')!r} must be >= 0")
    samples = config.get("precise_bn_samples", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        bad.append(f"precise_bn_samples={samples!r} must be a whole number >= 0 (0: off)")
    return bad


def param_pattern_problems(config: Any, params: Any) -> list[str]:
    """``freeze`` and ``lr_mult`` globs that match no parameter of the model (a typo would
    otherwise silently train everything)."""
    import jax

    from train import optim

    names = [optim.param_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    patterns = [("freeze", p) for p in tuple(config.get("freeze") or ())]
    patterns += [("lr_mult", p) for p, _ in optim.parse_lr_mult(tuple(config.get("lr_mult") or ()))]
    patterns += [("filter_rms_radius", p)
                 for p, _ in optim.parse_filter_radius(tuple(config.get("filter_rms_radius") or ()))]
    from flaxnets import layers

    return [f"{field} pattern {pat!r} matches no parameter of {config.arch} (parameters look like "
            f"{names[0]!r}, {names[-1]!r})" for field, pat in patterns
            if not any(layers.path_matches(n, [pat]) for n in names)]


def init_source_problems(config: Any, workdir: str) -> list[str]:
    """A missing ``init_from`` path, unless the workdir resumes (then the source is not read)."""
    from train import warmstart

    source = str(config.get("init_from") or "")
    looks_like_path = os.sep in source or source.startswith((".", "~")) or source.endswith(
        (".safetensors", ".pth", ".pt", ".bin"))
    if source and looks_like_path and not os.path.exists(os.path.expanduser(source)) \
            and not warmstart.has_checkpoint(workdir):
        return [f"init_from={source!r} does not exist"]
    return []


def check_param_patterns(config: Any, params: Any) -> None:
    """Raise :class:`ConfigError` if a freeze/lr_mult glob matches no parameter."""
    bad = param_pattern_problems(config, params)
    if bad:
        raise ConfigError("bad config: " + "; ".join(bad))


def workdir_problems(workdir: str) -> list[str]:
    """Why ``workdir`` cannot hold a run (a file, or a directory this process cannot write)."""
    path = os.path.abspath(os.path.expanduser(workdir))
    if os.path.exists(path) and not os.path.isdir(path):
        return [f"workdir {path} is a file, not a directory"]
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return [f"workdir {path}: {probe} is a file"]
    if not os.access(probe, os.W_OK | os.X_OK):
        return [f"workdir {path} is not writable ({probe} is read-only for this user)"]
    return []


def validate(config: Any, image_size: int, workdir: str) -> None:
    """Raise :class:`ConfigError` naming every problem of the config and the workdir."""
    bad = config_problems(config, image_size) + workdir_problems(workdir) + init_source_problems(config, workdir)
    if bad:
        raise ConfigError("bad config: " + "; ".join(bad))
