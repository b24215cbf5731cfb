"""The training loop: ``train_and_evaluate(config, workdir) -> final metrics``.

Importable from notebooks::

    from train.configs.default import get_config
    from train.loop import train_and_evaluate
    cfg = get_config(); cfg.arch = "resnet20"; cfg.max_steps = 100
    metrics = train_and_evaluate(cfg, "/tmp/run")

The arch's paper recipe is applied on top of ``config`` (unless ``config.recipe`` is
False) except for the fields named in ``explicit`` (the command line's overrides); the
dataset fills in what the config leaves ``None``. A rerun with the same ``workdir``
resumes from its latest checkpoint, data position included.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import flaxnets
from flaxnets.summary import forward_flops as model_forward_flops
from flaxnets.summary import variable_shapes
from train import checkpoint as ckpt_lib
from train import compile_cache, optim, parallel, progress, steps, validate, warmstart

NO_FLIP_DATASETS = ("digits", "mnist")  # horizontal flips change the class
SMALL_DATASET_SIDE = 64  # datasets with native images up to this side are "small" (digits/mnist/cifar)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad setup); the message is one line."""


class Preempted(RuntimeError):
    """SIGTERM received: a checkpoint was saved; rerun with the same workdir to resume."""


def apply_recipe(config: ml_collections.ConfigDict, explicit: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """``config`` with the arch's recipe applied, except for the ``explicit`` fields."""
    from train.configs.recipes import recipe_for

    config = ml_collections.ConfigDict(config.to_dict())
    if config.recipe:
        explicit = set(explicit)
        for field, value in recipe_for(config.arch).items():
            if field in explicit:
                continue
            if field not in config:
                raise TrainingError(f"recipe for {config.arch!r} sets unknown config field {field!r}")
            if field == "model_overrides":  # per name: the command line's names win
                value = {**dict(value), **{k: v for k, v in dict(config.model_overrides).items()
                                           if f"model_overrides.{k}" in explicit}}
            setattr(config, field, value)
    # The recipe's off-home fields too (adapt_recipe merges them later): a wrong name fails here, in one line.
    check_model_overrides(config.arch, {**dict(config.model_overrides),
                                        **dict(config.get("adapted_model_overrides") or {})})
    return config


def resolve_image_size(config: Any, arch: str, info: Any) -> int:
    """Training resolution: the config's, the model's own for ImageNet-like data, or for
    small-image datasets a small size the model allows. A small-input network (CIFAR/MNIST
    sized) takes the data's own size raised to its ``min_size`` (the digits' 8×8 for the CIFAR
    ResNets); an ImageNet network at least 32×32, its total stride (BN-Inception accepts 8×8
    but reduces it to a padded 1×1 grid by its second stage: 51 % on the digits vs 99 % for
    ResNet-20 at 8×8), or the recipe's ``small_data_image_size`` where that is larger. Without
    aux heads (``aux_logits=False``) ``ModelInfo.min_size_no_aux`` replaces ``min_size``."""
    if config.image_size:
        return int(config.image_size)
    mi = flaxnets.model_info(arch)
    if info.image_size <= SMALL_DATASET_SIDE:
        floor = info.image_size if mi.input_size[0] <= SMALL_DATASET_SIDE else max(info.image_size, 32)
        return max(floor, mi.smallest_input(config.model_overrides), int(config.get("small_data_image_size") or 0))
    return mi.input_size[0]


def forward_flops(config: Any, image_size: int, channels: int, num_classes: int) -> float:
    """XLA's FLOP count of one image's forward pass (inference mode, float32) at the training
    size (:func:`flaxnets.summary.forward_flops`; 0 where the backend gives none)."""
    model = flaxnets.create_model(config.arch, num_classes=num_classes, **dict(config.model_overrides))
    return model_forward_flops(model, (image_size, image_size, channels)) or 0.0


def compute_dtype(name: str) -> Any:
    """``"auto"`` → bfloat16 on gpu/tpu, float32 on cpu; else the named dtype."""
    if name == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]


class _SigtermFlag:
    """Records SIGTERM (preemption notice) instead of dying; restores the old handler."""

    def __init__(self) -> None:
        self.raised = False
        self._old = None

    def __enter__(self) -> _SigtermFlag:
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. notebooks' worker threads)
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _eval_supported(model: Any, variables: Any, size: int, channels: int) -> str | None:
    """None if the model runs at size×size, else the reason."""
    try:
        jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, size, size, channels)), train=False), variables)
    except Exception as e:  # noqa: BLE001 - any trace failure means unsupported
        return str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    return None


def evaluate(par: parallel.Parallel, step_fn: Any, state: Any, batches: Iterable[dict]) -> dict:
    """Top-1/top-5 (%) and loss over one pass of ``batches`` (padding masked out)."""
    totals = None
    for batch in steps.prefetch_to_device(batches, par.put_batch):  # copies overlap the steps
        out = step_fn(state, batch)
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    if totals is None:
        return {}
    t = par.scalars(totals)
    n = max(t["count"], 1.0)
    return {"top1": 100.0 * t["top1"] / n, "top5": 100.0 * t["top5"] / n, "loss": t["loss"] / n,
            "count": t["count"]}


def limit_eval_batches(batches: Iterable[dict], config: Any) -> Iterable[dict]:
    """The first ``config.steps_per_eval`` batches of an eval pass (all when it is ``None``
    or 0). Every process yields the same number of eval batches, so every process stops
    after the same number and collective eval steps stay matched."""
    steps = config.get("steps_per_eval") if hasattr(config, "get") else getattr(config, "steps_per_eval", None)
    if not steps:
        return batches
    if int(steps) < 0:
        raise ValueError(f"steps_per_eval must be positive or None, got {steps}")
    return itertools.islice(batches, int(steps))


def _averaged_probs_eval(par: parallel.Parallel, probs_fn: Any, state: Any,
                         passes: list[Iterable[dict]]) -> dict:
    """Average softmax over several passes of the same examples (multi-scale testing)."""
    acc, labels, mask = None, [], []
    for i, batches in enumerate(passes):
        chunks = []
        for batch in batches:
            chunks.append(par.local_output(probs_fn(state, par.put_batch(batch))))
            if i == 0:
                labels.append(batch["label"])
                mask.append(batch["mask"])
        probs = np.concatenate(chunks)
        acc = probs if acc is None else acc + probs
    probs = acc / len(passes)
    labels, mask = np.concatenate(labels), np.concatenate(mask)
    order = np.argsort(-probs, axis=-1)
    top1 = (order[:, 0] == labels).astype(np.float64)
    top5 = (order[:, :5] == labels[:, None]).any(-1).astype(np.float64)
    nll = -np.log(probs[np.arange(len(labels)), labels] + 1e-12)
    s = parallel.all_sum({"count": mask.sum(), "top1": (top1 * mask).sum(), "top5": (top5 * mask).sum(),
                          "loss": (nll * mask).sum()})
    n = max(float(s["count"]), 1.0)
    return {"top1": 100.0 * float(s["top1"]) / n, "top5": 100.0 * float(s["top5"]) / n,
            "loss": float(s["loss"]) / n, "count": float(s["count"])}


def check_model_overrides(arch: str, overrides: Any) -> None:
    """Fail with one line if ``overrides`` names a constructor field ``arch``'s module lacks."""
    try:
        flaxnets.create_model(arch, **dict(overrides))
    except TypeError as e:
        raise TrainingError(f"model_overrides {sorted(dict(overrides))} do not fit {arch!r}: "
                            f"{str(e).splitlines()[0]}") from None


@dataclasses.dataclass
class Run:
    """Everything a run's step loop and final evaluations need, built once by :func:`setup_run`."""

    config: ml_collections.ConfigDict
    workdir: str
    dataset: str
    data_info: Any
    model_info: flaxnets.ModelInfo
    model: Any
    par: parallel.Parallel
    image_size: int
    channels: int
    num_classes: int
    dtype: Any
    batch_size: int
    num_epochs: float
    steps_per_epoch: int
    total_steps: int
    stop_step: int
    start_step: int
    schedule: Any
    state: Any
    ckpt: ckpt_lib.Checkpointer | None
    writer: progress.MetricWriter
    bar: progress.Progress
    meta: dict[str, Any]
    eval_batches: Callable[..., Iterable[dict]]
    train_iter: Any
    # Keyword options of the compiled train step (frozen BatchNorms, EMA), the step from which
    # every BatchNorm is frozen (bn_freeze_epochs) and the persistent compilation cache in use.
    train_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    bn_freeze_step: int | None = None
    cache_dir: str | None = None
    # PreciseBN (precise_bn_samples): step → the training batches that estimate BatchNorm
    # population statistics before an evaluation (None: running averages are kept).
    precise_batches: Callable[[int], Iterable[dict]] | None = None


@dataclasses.dataclass
class _Resolved:
    config: ml_collections.ConfigDict
    workdir: str
    dataset: str
    data_info: Any
    model_info: flaxnets.ModelInfo
    image_size: int
    channels: int
    num_classes: int
    dtype: Any
    par: parallel.Parallel
    model: Any
    eval_batches: Callable[..., Iterable[dict]]


def _resolve(config: ml_collections.ConfigDict, workdir: str, explicit: Iterable[str]) -> _Resolved:
    """Config against recipe, dataset and model: what training and evaluation-only runs share."""
    data = progress.import_quietly("train.data")  # TensorFlow: imported lazily, its load notices dropped

    flaxnets.model_info(config.arch)  # unknown arch → ValueError with close names
    config = apply_recipe(config, explicit)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    dataset = data.resolve_dataset(config.dataset, config.data_dir)
    info = data.dataset_info(dataset, config.data_dir)
    from train.configs import adapt_augmentation, adapt_recipe, budget_epochs, recipe_home  # recipe elsewhere

    recipe_config = config
    classes = int(config.num_classes or info.num_classes)
    config, adapted = adapt_recipe(config, info.name, info.num_train, info.image_size, info.default_epochs, explicit,
                                   classes)
    mi = flaxnets.model_info(config.arch)
    image_size = resolve_image_size(config, config.arch, info)
    if adapted and "num_epochs" not in set(explicit):  # the compute budget of a dataset the recipe is not for
        flops = forward_flops(config, image_size, mi.input_size[2], classes)
        epochs, why = budget_epochs(info.default_epochs, flops, info.num_train, recipe_home(config.arch),
                                    float(config.get("small_data_min_epochs") or 0))
        if epochs != info.default_epochs:
            config, adapted = adapt_recipe(recipe_config, info.name, info.num_train, info.image_size, epochs,
                                           explicit, classes)
            adapted = adapted.replace("; schedule shape", f" ({why}); schedule shape", 1)
    if dataset in NO_FLIP_DATASETS and "random_flip" not in set(explicit) and config.random_flip:
        config.random_flip = False  # mirrored digits are other glyphs
    config, augmentation = adapt_augmentation(config, info.name, image_size, explicit,
                                              small_images=info.image_size <= SMALL_DATASET_SIDE)
    if augmentation:
        adapted = (adapted.replace("; schedule shape", f", {augmentation}; schedule shape", 1) if adapted
                   else f"{config.arch} on {info.name}: {augmentation}")
    if adapted and progress.is_main_process():
        print(adapted, flush=True)
    validate.validate(config, image_size, workdir)  # before anything touches the workdir
    channels = mi.input_size[2]
    num_classes = int(config.num_classes or info.num_classes)
    dtype = compute_dtype(config.compute_dtype)
    par = parallel.Parallel(config.parallel, pixel_stats=(mi.mean, mi.std))  # steps normalise uint8 batches
    model = flaxnets.create_model(config.arch, num_classes=num_classes, dtype=dtype,
                                  **dict(config.model_overrides))
    eval_batch = int(config.get("eval_batch_size") or config.batch_size)
    norm = dict(image_size=image_size, channels=channels, mean=mi.mean, std=mi.std, normalize=False)  # uint8

    def eval_batches(mode: str = "center", size: int | None = None) -> Iterable[dict]:
        return limit_eval_batches(data.eval_iterator(config, info, global_batch_size=eval_batch, mode=mode,
                                                     size=size, data_dir=config.data_dir, **norm), config)

    return _Resolved(config, workdir, dataset, info, mi, image_size, channels, num_classes, dtype, par, model,
                     eval_batches)


def setup_run(config: ml_collections.ConfigDict, workdir: str, explicit: Iterable[str] = ()) -> Run:
    """Resolve the config against recipe, dataset and model; build the state (restored if the
    workdir has a checkpoint), the checkpointer, logs and the data iterators."""
    data = progress.import_quietly("train.data")

    r = _resolve(config, workdir, explicit)
    config, info, mi, par, model = r.config, r.data_info, r.model_info, r.par, r.model
    batch_size = int(config.batch_size)
    num_epochs = float(config.num_epochs if config.num_epochs is not None else info.default_epochs)
    steps_per_epoch = int(config.steps_per_epoch or max(info.num_train // batch_size, 1))
    total_steps = max(int(math.ceil(num_epochs * steps_per_epoch)), 1)
    stop_step = min(total_steps, int(config.max_steps)) if config.max_steps else total_steps
    par.check_batch_size(batch_size)
    input_shape = (r.image_size, r.image_size, r.channels)
    variables_shape = variable_shapes(model, input_shape)
    validate.check_param_patterns(config, variables_shape["params"])  # before the workdir changes
    cache_dir = compile_cache.enable(str(config.get("compilation_cache", "auto") or ""))
    tx, schedule = optim.make_optimizer(config, variables_shape["params"], steps_per_epoch, total_steps)
    ema = float(config.get("ema_decay") or 0.0) > 0
    host_state = steps.init_state(model, tx, input_shape, seed=int(config.seed), ema=ema)
    warm = None
    if config.get("init_from") and not warmstart.has_checkpoint(r.workdir):  # a resumed run keeps its own
        target = {"params": host_state.params, "batch_stats": host_state.batch_stats}
        try:
            warm = warmstart.warm_start(config, target, config.arch, r.num_classes)
        except warmstart.WarmStartError as e:
            raise TrainingError(str(e)) from None

    meta = {"arch": config.arch, "dataset": r.dataset, "num_classes": r.num_classes, "image_size": r.image_size,
            "config": config.to_json_best_effort()}
    ckpt = ckpt_lib.Checkpointer(r.workdir, keep=int(config.keep_checkpoints),
                                 keep_best=bool(config.get("keep_best", False)))
    restored = ckpt.restore(host_state, config.arch)
    if restored is None and warm is not None:
        host_state = jax.tree_util.tree_map(np.asarray, steps.new_state(model.apply, tx, warm[0], ema))
    start_step = 0
    writer = progress.MetricWriter(r.workdir, tensorboard=bool(config.get("tensorboard", True)))
    if restored is not None:
        host_state, _ = restored
        start_step = int(host_state.step)
    bar = progress.Progress(stop_step, start_step)
    bar.message(f"{config.arch} ({r.num_classes} classes, {r.image_size}x{r.image_size}x{r.channels}, "
                f"{jnp.dtype(r.dtype).name}) on {r.dataset}: {total_steps} steps ({num_epochs:g} epochs × "
                f"{steps_per_epoch}), batch {batch_size}, {config.optimizer} lr {optim.base_learning_rate(config):g} "
                f"{config.schedule}, {par.num_devices} {jax.default_backend()} device(s), {config.parallel}"
                + (f"; resumed at step {start_step}" if start_step else ""))
    if warm is not None and not start_step:
        bar.message(warm[2])
    if progress.is_main_process():
        os.makedirs(r.workdir, exist_ok=True)
        with open(os.path.join(r.workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))

    norm = dict(image_size=r.image_size, channels=r.channels, mean=mi.mean, std=mi.std, normalize=False)  # uint8
    train_iter = data.train_iterator(config, info, global_batch_size=batch_size, seed=int(config.seed),
                                     start_step=start_step, data_dir=config.data_dir, **norm)
    precise_batches = None
    n_precise = precise_bn_batches(config, batch_size, steps_per_epoch, host_state.batch_stats)
    if n_precise:
        def precise_batches(step: int) -> Iterable[dict]:
            # Its own stream (seed + 1, from the current step): the training stream stays as it
            # is, so a resumed run sees the same batches.
            return itertools.islice(data.train_iterator(
                config, info, global_batch_size=batch_size, seed=int(config.seed) + 1, start_step=step,
                data_dir=config.data_dir, **norm), n_precise)

        bar.message(f"PreciseBN: BatchNorm statistics from {n_precise} training batches "
                    f"({n_precise * batch_size} images) before every evaluation")
    return Run(config=config, workdir=r.workdir, dataset=r.dataset, data_info=info, model_info=mi, model=model,
               par=par, image_size=r.image_size, channels=r.channels, num_classes=r.num_classes, dtype=r.dtype,
               batch_size=batch_size, num_epochs=num_epochs, steps_per_epoch=steps_per_epoch,
               total_steps=total_steps, stop_step=stop_step, start_step=start_step, schedule=schedule,
               state=par.put_state(host_state), ckpt=ckpt, writer=writer, bar=bar, meta=meta,
               eval_batches=r.eval_batches, train_iter=train_iter,
               train_options=train_options(config, variables_shape), bn_freeze_step=bn_freeze_step(
                   config, steps_per_epoch, total_steps), cache_dir=cache_dir, precise_batches=precise_batches)


def precise_bn_batches(config: Any, batch_size: int, steps_per_epoch: int, batch_stats: Any) -> int:
    """Training batches PreciseBN averages: ``precise_bn_samples`` images, at most one epoch
    (pycls: ``min(NUM_SAMPLES_PRECISE // batch_size, len(loader))``); 0 when off or the
    model has no BatchNorm."""
    samples = int(config.get("precise_bn_samples") or 0)
    if samples <= 0 or not jax.tree_util.tree_leaves(batch_stats):
        return 0
    return max(1, min(samples // batch_size, steps_per_epoch))


def precise_batch_stats(run: Run, step: int, moments_fns: Sequence[Any]) -> None:
    """PreciseBN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", Sec. 3): replace the
    BatchNorm running averages of ``run.state`` (and of its EMA) by population statistics of
    training batches through the network as evaluated.

    Running averages mix the statistics of many recent weights and, under dropout or drop-path,
    of the sub-networks trained, not of the one evaluated: measured on the digits, a FractalNet
    trained with global drop-path evaluated at 66 % top-1 with its running averages and 98 %
    with recomputed ones. ``moments_fns``: the compiled raw and EMA
    :func:`train.steps.batch_moments_step`.
    """
    if run.precise_batches is None:
        return
    for ema, fn in zip((False, True), moments_fns, strict=True):
        if ema and not steps.has_ema(run.state):
            break
        sums, n = None, 0
        for batch in steps.prefetch_to_device(run.precise_batches(step), run.par.put_batch):
            out = fn(run.state, batch)
            sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
            n += 1
        stats = steps.population_stats(sums, n)
        run.state = run.state.replace(**{"ema_batch_stats" if ema else "batch_stats": stats})


def train_options(config: Any, variables: Any) -> dict[str, Any]:
    """Train-step options: BatchNorms whose parameters are all frozen run in inference mode,
    and the EMA settings."""
    frozen = tuple(config.get("freeze") or ())
    modules = []
    if frozen:
        params = variables.get("params", {})
        mask = optim.path_mask(params, frozen)
        by_module: dict[str, list[bool]] = {}
        for path, f in jax.tree_util.tree_leaves_with_path(mask):
            by_module.setdefault(optim.param_path(path[:-1]), []).append(bool(f))
        for m in sorted(steps.bn_modules(variables.get("batch_stats", {}))):
            if flaxnets.layers.path_matches(m, frozen) or (by_module.get(m) and all(by_module[m])):
                modules.append(glob.escape(m))
    return {"frozen_bn": tuple(modules), "ema_decay": float(config.get("ema_decay") or 0.0),
            "ema_warmup": str(config.get("ema_warmup", "tf")), "ema_power": float(config.get("ema_warmup_power", 0.75))}


def bn_freeze_step(config: Any, steps_per_epoch: int, total_steps: int) -> int | None:
    """First step of the last ``bn_freeze_epochs`` epochs (every BatchNorm frozen), or None;
    a value ≤ 1 is a fraction of the run (as ``step_epochs``), so a shortened recipe keeps it."""
    epochs = float(config.get("bn_freeze_epochs") or 0.0)
    if epochs <= 0:
        return None
    steps_frozen = epochs * total_steps if epochs <= 1.0 else epochs * steps_per_epoch
    return max(total_steps - int(round(steps_frozen)), 0)


def evaluation_run(config: ml_collections.ConfigDict, variables: Any, outdir: str,
                   explicit: Iterable[str] = ()) -> Run:
    """A :class:`Run` that only evaluates ``variables`` (no optimiser, no checkpoints); metrics
    are logged under ``outdir``."""
    r = _resolve(config, outdir, explicit)
    have = flaxnets.weights.classes_in(r.config.arch, variables)
    if have != r.num_classes:
        raise TrainingError(f"the weights have {have} classes but {r.dataset} has {r.num_classes}")
    import optax

    state = steps.TrainState.create(apply_fn=r.model.apply, params=variables["params"], tx=optax.identity(),
                                    batch_stats=variables.get("batch_stats"))
    writer = progress.MetricWriter(r.workdir, tensorboard=False)
    batch = int(r.config.get("eval_batch_size") or r.config.batch_size)
    r.par.check_batch_size(batch)
    return Run(config=r.config, workdir=r.workdir, dataset=r.dataset, data_info=r.data_info,
               model_info=r.model_info, model=r.model, par=r.par, image_size=r.image_size, channels=r.channels,
               num_classes=r.num_classes, dtype=r.dtype, batch_size=batch, num_epochs=0.0, steps_per_epoch=1,
               total_steps=0, stop_step=0, start_step=0, schedule=None, state=r.par.put_state(state), ckpt=None,
               writer=writer, bar=progress.Progress(0, 0), meta={}, eval_batches=r.eval_batches, train_iter=None)


def aux_loss_weight(config: Any, info: flaxnets.ModelInfo) -> float:
    """The config's aux-head loss weight, else the model's declared one (``ModelInfo``)."""
    return float(config.aux_loss_weight if config.aux_loss_weight is not None else info.aux_loss_weight)


def _non_finite(run: Run, step: int, what: str) -> TrainingError:
    return TrainingError(f"non-finite {what} at step {step}: stopping; the last good checkpoint "
                         f"(step {max(run.ckpt.steps(), default='none')}) is kept (lower --config.learning_rate?)")


def _check_loss(run: Run, step: int, metrics_dev: Any) -> None:
    """The one finiteness check of a step's loss (read one step late, so it does not block)."""
    loss = run.par.scalars(metrics_dev)["loss"]
    if not math.isfinite(loss):
        raise _non_finite(run, step, f"loss {loss}")


def _save(run: Run, step: int, metrics_dev: Any, force: bool = False, eval_metrics: dict | None = None) -> None:
    """Checkpoint ``step`` after checking its loss and parameters are finite."""
    if metrics_dev is not None:
        _check_loss(run, step, metrics_dev)
    host = run.par.host_state(run.state)
    # The loss of step t is computed before its update: check everything that is saved too
    # (params, BatchNorm statistics, optimiser state).
    for part in ("params", "batch_stats", "opt_state"):
        leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(getattr(host, part))]
        bad = sum(1 for x in leaves if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)))
        if bad:
            raise _non_finite(run, step, f"values in {bad} {part} arrays")
    run.ckpt.save(step, host, run.meta, force=force, metrics=eval_metrics)


def _log(run: Run, step: int, metrics_dev: Any, seen: int, seconds: float) -> None:
    m = run.par.scalars(metrics_dev)
    lr = float(run.schedule(step - 1)) * optim.plateau_scale(run.state.opt_state)
    m.update(epoch=step / run.steps_per_epoch, lr=lr, img_s=seen / max(seconds, 1e-9))
    m["accuracy"] *= 100.0
    run.bar.update(step, {"epoch": round(m["epoch"], 2), "loss": m["loss"], "acc": m["accuracy"],
                          "lr": m["lr"], "img_s": m["img_s"]})
    run.writer.write(step, "train", m)


def _periodic_eval(run: Run, step: int, eval_fn: Any) -> dict:
    """Eval the raw weights (and the EMA's); returns ``{"top1": ...}`` of the model the run
    reports (the EMA when kept), which ranks the checkpoint for ``keep_best``."""
    ev = evaluate(run.par, eval_fn, run.state, run.eval_batches())
    ema = None
    if steps.has_ema(run.state):
        ema = evaluate(run.par, eval_fn, steps.ema_view(run.state), run.eval_batches())
        run.writer.write(step, "eval_ema", ema)
    run.bar.message(f"eval step {step} (epoch {step / run.steps_per_epoch:.2f}): top-1 "
                    f"{ev['top1']:.2f}% top-5 {ev['top5']:.2f}% loss {ev['loss']:.4f}"
                    + (f"; EMA top-1 {ema['top1']:.2f}% top-5 {ema['top5']:.2f}%" if ema else "")
                    + (f" ({ev.get('count', 0):.0f} examples)" if run.config.get("steps_per_eval") else ""))
    run.writer.write(step, "eval", ev)
    return {"top1": float((ema or ev).get("top1", 0.0))}


def _preempt(run: Run, step: int, metrics_dev: Any) -> Preempted:
    run.ckpt.wait()
    if step not in run.ckpt.steps():
        _save(run, step, metrics_dev, force=True)
        run.ckpt.wait()
    return Preempted(f"SIGTERM at step {step}: checkpoint saved in {run.ckpt.directory}; "
                     "rerun with the same --workdir to resume")


def train_steps(run: Run) -> int:
    """The step loop with its periodic actions (log, eval, checkpoint, preemption); returns the
    last step, whose checkpoint is saved."""
    config = run.config
    options = dict(num_classes=run.num_classes, label_smoothing=float(config.label_smoothing),
                   aux_loss_weight=aux_loss_weight(config, run.model_info), **run.train_options)
    xla = flaxnets.layers.train_compiler_options(config.arch, str(config.get("cpu_ynn_fusions", "auto")),
                                                 run.par.devices[0].platform)
    train_fn = run.par.train_step(compiler_options=xla, **options)
    # bn_freeze_epochs: from bn_freeze_step on, every BatchNorm normalises with its running
    # statistics and keeps its scale/bias (a second compiled step, chosen by the step number,
    # so a resumed run picks the same one).
    frozen_fn = None if run.bn_freeze_step is None else run.par.train_step(
        compiler_options=xla, **{**options, "frozen_bn": ("*",), "freeze_bn_affine": True})
    eval_fn = run.par.eval_step()
    moments_fns = [run.par.batch_moments_step(), run.par.batch_moments_step(ema=True)]
    rng = jax.random.PRNGKey(int(config.seed) + 17)
    eval_every = max(int(round(float(config.eval_every_epochs) * run.steps_per_epoch)), 1)
    log_every, ckpt_every = int(config.log_every_steps), int(config.checkpoint_every_steps)
    step, pending = run.start_step, None  # pending: (step, metrics) checked one step late
    t0, seen = time.time(), 0
    batches = steps.prefetch_to_device(run.train_iter, run.par.put_batch)  # 2 batches ahead on device
    with _SigtermFlag() as sigterm:
        while step < run.stop_step:
            batch = next(batches)
            fn = frozen_fn if frozen_fn is not None and step >= run.bn_freeze_step else train_fn
            if step == run.start_step or (fn is frozen_fn and step == run.bn_freeze_step):
                with compile_cache.watch() as cache:
                    run.state, metrics = fn(run.state, batch, rng)
                    jax.block_until_ready(metrics)
                what = "train step" + (" (BatchNorm frozen)" if fn is frozen_fn else "")
                run.bar.message(compile_cache.describe(cache, what, run.cache_dir))
            else:
                run.state, metrics = fn(run.state, batch, rng)
            step += 1
            seen += run.batch_size
            if pending is not None:
                _check_loss(run, *pending)
            pending = (step, metrics)
            last = step == run.stop_step
            if step % log_every == 0 or last:
                _log(run, step, metrics, seen, time.time() - t0)
                t0, seen = time.time(), 0
            saved = False
            if step % eval_every == 0 and not last:
                precise_batch_stats(run, step, moments_fns)
                ev = _periodic_eval(run, step, eval_fn)
                if run.config.get("keep_best"):  # an eval checkpoint: a candidate for the best one
                    _save(run, step, metrics, eval_metrics=ev)
                    saved = True
            if step % ckpt_every == 0 and not last and not saved:
                _save(run, step, metrics)
            if parallel.any_process(sigterm.raised):
                raise _preempt(run, step, metrics)
        if pending is not None:
            precise_batch_stats(run, step, moments_fns)  # the saved state is the one evaluated
            _save(run, step, pending[1], force=True)
        elif step not in run.ckpt.steps():
            _save(run, step, None, force=True)
    run.ckpt.wait()
    return step


def final_evaluations(run: Run, step: int) -> dict[str, Any]:
    """Evaluate the final state in every requested test-time mode."""
    final: dict[str, Any] = {"arch": run.config.arch, "dataset": run.dataset, "step": step,
                             "epochs": step / run.steps_per_epoch}
    # With an EMA every mode runs twice: raw weights ("center_top1") and EMA ("ema_center_top1");
    # the run's result ("top1") is then the EMA's, the raw one is "raw_top1".
    variants = [("", run)]
    if steps.has_ema(run.state):
        variants.append(("ema_", dataclasses.replace(run, state=steps.ema_view(run.state))))
    for mode in run.config.eval_modes:
        for prefix, r in variants:
            result = _final_eval(mode, r)
            if isinstance(result, str):
                print(f"eval mode {mode!r} skipped: {result}", file=sys.stderr)
                break
            run.writer.write(step, f"final_{prefix}{mode}", result)
            final[f"{prefix}{mode}_top1"], final[f"{prefix}{mode}_top5"] = result["top1"], result["top5"]
            final[f"{prefix}{mode}_loss"], final[f"{prefix}{mode}_count"] = result["loss"], result.get("count")
    if "center_top1" in final:
        final["top1"], final["top5"] = final["center_top1"], final["center_top5"]
    if "ema_center_top1" in final:
        final["raw_top1"], final["raw_top5"] = final["top1"], final["top5"]
        final["top1"], final["top5"] = final["ema_center_top1"], final["ema_center_top5"]
    return final


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       explicit: Iterable[str] = ()) -> dict[str, Any]:
    """Train ``config.arch`` on ``config.dataset``, evaluate, return the final metrics.

    ``explicit`` names config fields the user set explicitly (kept over the recipe).
    Raises :class:`TrainingError` (non-finite loss, arch mismatch, bad setup),
    :class:`Preempted` after SIGTERM (checkpoint saved), ``ValueError`` /
    ``FileNotFoundError`` for unknown names or missing data.
    """
    run = setup_run(config, workdir, explicit)
    try:
        step = train_steps(run)
        run.bar.close()
        final = final_evaluations(run, step)
        if run.config.get("export_weights"):
            final["weights"] = export_weights(run)
        write_curves(run)
        return final
    finally:
        run.bar.close()
        run.ckpt.close()
        run.writer.close()


def write_curves(run: Run) -> None:
    """``WORKDIR/curves.png``: train loss, eval top-1 and lr against step (:mod:`train.plot`)."""
    if not progress.is_main_process():
        return
    from train import plot

    try:
        run.bar.message(f"curves written to {plot.write_curves(run.workdir)}")
    except ImportError as e:  # matplotlib is in the [train] extra; a bare install skips the picture
        print(f"warning: curves.png not written: {e}", file=sys.stderr)


def export_weights(run: Run) -> str:
    """Write the run's final params + BatchNorm statistics as a flaxnets weights file.

    ``config.export_weights``: ``"auto"`` → ``WORKDIR/<arch>.safetensors``, else the path.
    """
    path = run.config.export_weights
    if path == "auto":
        path = os.path.join(run.workdir, f"{run.config.arch}.safetensors")
    host = run.par.host_state(run.state)
    ema = steps.has_ema(host)
    if ema:  # the EMA is the run's result: export it
        host = steps.ema_view(host)
    variables = {"params": host.params, **({"batch_stats": host.batch_stats} if host.batch_stats else {})}
    if progress.is_main_process():
        flaxnets.save_weights(path, variables, name=run.config.arch,
                              metadata={"dataset": run.dataset, "step": int(host.step), "ema": ema})
        run.bar.message(f"weights written to {path}")
    return path


FIXED_S_STEP = 32  # VGG Sec. 4.2: Q = {S − 32, S, S + 32} for 224 crops


def eval_scale(run: Run) -> int:
    """The shorter side the eval crop is taken from (``image_size / eval_crop_ratio``): VGG's
    S of the dense and multi-scale modes."""
    return int(round(run.image_size / float(run.config.eval_crop_ratio)))


def multiscale_sizes(run: Run) -> list[int]:
    """Test scales Q (shorter sides) of the "multiscale" and "multicrop150" modes:
    ``config.multiscale_sizes`` when set, else VGG Sec. 4.2's rule, scaled with
    ``image_size / 224`` like the training crops: {S_min, ½(S_min + S_max), S_max} for a model
    trained with scale jittering S ∈ [S_min, S_max] (Table 5: 256, 384, 512), {S − 32, S, S + 32}
    for a fixed S (``scale_jitter_range`` with S_min = S_max; otherwise S is the eval resize side
    :func:`eval_scale`). Never below ``image_size``: a 32-pixel VGG at S − 32 unscaled was
    tested at 5×5 pixels, where its pools leave nothing (NaN loss)."""
    from train.data import preprocess as pp

    size, config = run.image_size, run.config
    if config.multiscale_sizes:
        return [max(size, int(q)) for q in config.multiscale_sizes]
    if config.train_crop == "scale_jitter":
        smin, smax = pp.scaled_sides(tuple(config.scale_jitter_range), size)
        if smin < smax:
            return [smin, int(round((smin + smax) / 2)), smax]
        s = smin
    else:
        s = eval_scale(run)
    step = int(round(FIXED_S_STEP * size / pp.CROP_REFERENCE))
    return [max(size, q) for q in (s - step, s, s + step)]


def dense_model(run: Run) -> Any:
    """The fully-convolutional twin of the run's model (``ModelInfo.dense_eval``), or None."""
    if run.model_info.dense_eval is None:
        return None
    return flaxnets.create_model(run.config.arch, num_classes=run.num_classes, dtype=run.dtype,
                                 **{**dict(run.config.model_overrides), **dict(run.model_info.dense_eval)})


def eval_pass_length(run: Run) -> int:
    """Batches of one eval pass on this process (what the progress display counts to)."""
    batch = int(run.config.get("eval_batch_size") or run.config.batch_size)
    n = math.ceil(math.ceil(run.data_info.num_eval / jax.process_count()) / batch)
    limit = run.config.get("steps_per_eval")
    return min(n, int(limit)) if limit else n


def _final_eval(mode: str, run: Run) -> dict | str:
    """Metrics of one test-time mode, or the reason it is skipped."""
    if mode not in ("center", "10crop", "multiscale", "dense"):  # 144crop, multicrop150, "a+b" averages
        from train import evaluate as test_time  # not "evaluate": that is this module's function

        return test_time.mode_metrics(run, mode)
    config, par, state = run.config, run.par, run.state
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    if par.mode == "pmap":
        variables = jax.tree_util.tree_map(lambda x: x[0], variables)
    abstract = jax.eval_shape(lambda: variables)

    def batches(kind: str = "center", size: int | None = None, what: str = mode) -> Iterable[dict]:
        return progress.track(run.eval_batches(kind, size), eval_pass_length(run), f"eval {what}")

    if mode == "center":
        return evaluate(par, par.eval_step(), state, batches())
    if mode == "10crop":
        return evaluate(par, par.eval_step(), state, batches("10crop"))
    scale = eval_scale(run)
    if mode == "multiscale":
        sizes = multiscale_sizes(run)
        for s in sizes:
            why = _eval_supported(run.model, abstract, s, run.channels)
            if why:
                return f"{config.arch} does not accept {s}x{s} inputs ({why})"
        fn = par.probs_step()
        return _averaged_probs_eval(par, fn, state, [batches("full", s, f"multiscale {s}") for s in sizes])
    dense = dense_model(run)
    if dense is None:
        return f"{config.arch} has no dense (fully-convolutional) evaluation"
    why = _eval_supported(dense, abstract, scale, run.channels)
    if why:
        return f"dense {config.arch} does not run at {scale}x{scale} ({why})"
    return evaluate(par, par.eval_step(apply_fn=dense.apply), state, batches("full", scale))
