"""Pure training and evaluation steps.

``train_step(state, batch, rng)`` and ``eval_step(state, batch)`` are plain functions of
arrays; :mod:`train.parallel` wraps them in ``jax.jit`` over a device mesh (default) or in
``jax.pmap`` (``config.parallel="pmap"``, then ``axis_name`` is set: gradients, metrics
and — through :func:`flaxnets.layers.bn_axis_name` — BatchNorm statistics are averaged
over devices).

Input feeding: batches may hold uint8 pixels (4× less to copy to the device than float32);
every step normalises them itself with the model's ``mean``/``std`` (:func:`device_images`),
float batches are taken as already normalised. :func:`prefetch_to_device` copies batches a
few steps ahead so the copy overlaps the running step.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import flaxnets
from flaxnets import layers
from train import optim, pixels


class TrainState(train_state.TrainState):
    """flax ``TrainState`` plus BatchNorm statistics and their exponential moving averages.

    ``ema_params``/``ema_batch_stats`` are empty dicts when the run keeps no EMA
    (``config.ema_decay`` 0); they are saved and restored with the rest of the state.
    """

    batch_stats: Any = None
    ema_params: Any = None
    ema_batch_stats: Any = None


EMA_WARMUPS = ("tf", "timm", "none")


def ema_decay_at(step: jax.Array, decay: float, warmup: str = "tf", power: float = 0.75) -> jax.Array:
    """EMA decay for the update after ``step`` optimiser steps.

    ``tf``: ``min(decay, (1 + t) / (10 + t))``, ``tf.train.ExponentialMovingAverage`` with
    ``num_updates`` = the global step, as the EfficientNet and slim (MobileNet) reference
    trainers call it; ``timm``: ``min(decay, 1 - (1 + t)^-power)``, timm ``ModelEmaV3``'s
    warm-up (gamma 1); ``none``: ``decay``. A warm-up keeps the average of a short run from
    sitting at its initial weights.
    """
    t = jnp.asarray(step, jnp.float32)
    if warmup == "tf":
        return jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    if warmup == "timm":
        return jnp.minimum(decay, 1.0 - (1.0 + t) ** -power)
    return jnp.asarray(decay, jnp.float32)


def ema_update(ema: Any, new: Any, decay: jax.Array) -> Any:
    """``decay · ema + (1 − decay) · new`` leaf by leaf (float32 arithmetic)."""
    return jax.tree_util.tree_map(lambda e, n: (decay * e + (1.0 - decay) * n).astype(e.dtype), ema, new)


def ema_view(state: TrainState) -> TrainState:
    """``state`` with its EMA params and BatchNorm statistics in place of the raw ones (for eval)."""
    return state.replace(params=state.ema_params, batch_stats=state.ema_batch_stats or state.batch_stats)


def has_ema(state: Any) -> bool:
    """Whether ``state`` keeps an EMA of its weights."""
    return bool(jax.tree_util.tree_leaves(getattr(state, "ema_params", None) or {}))


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy with optional label smoothing (float32)."""
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        onehot = optax.smooth_labels(onehot, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)


def device_images(images: jax.Array, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> jax.Array:
    """The model's input: uint8 pixels → ``(x / 255 − mean) / std`` in float32 (the affine map
    of :func:`train.pixels.pixel_affine`, as the host pipeline would apply it); float images
    are already normalised and pass unchanged."""
    if images.dtype != jnp.uint8:
        return images
    if mean is None or std is None:
        raise ValueError("uint8 images need the model's mean and std to be normalised on the device")
    scale, shift = pixels.pixel_affine(mean, std, images.shape[-1])
    return images.astype(jnp.float32) * scale + shift


def prefetch_to_device(batches: Iterable[Any], put: Callable[[Any], Any], size: int = 2) -> Iterator[Any]:
    """``put(batch)`` for each host batch, issued ``size`` batches ahead (double buffering for 2).

    ``put`` is the step's placement (``Parallel.put_batch``: ``jax.device_put`` onto the
    batch sharding); transfers are asynchronous, so the next batches' copies run while the
    current step computes. Batches come out in order; at most ``size`` are held on device.
    """
    queue: collections.deque = collections.deque()
    it = iter(batches)
    while True:
        while len(queue) < max(size, 1):
            try:
                queue.append(put(next(it)))
            except StopIteration:
                break
        if not queue:
            return
        yield queue.popleft()


def _variables(state: TrainState, params: Any = None) -> dict:
    v = {"params": state.params if params is None else params}
    if state.batch_stats:
        v["batch_stats"] = state.batch_stats
    return v


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, num_classes: int,
               label_smoothing: float = 0.0, aux_loss_weight: float = 0.0,
               axis_name: str | None = None, frozen_bn: tuple[str, ...] = (),
               freeze_bn_affine: bool = False, ema_decay: float = 0.0, ema_warmup: str = "tf",
               ema_power: float = 0.75, mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None) -> tuple[TrainState, dict]:
    """One SGD step on ``batch`` ({"image", "label"}); returns the new state and metrics.

    loss = CE(main) + ``aux_loss_weight`` × Σ CE(aux heads sown into AUX_COLLECTION).
    ``rng`` feeds the ``dropout`` stream; it is folded with the step (and the device index
    under pmap) so every step and device draws fresh masks. BatchNorms under the module globs
    ``frozen_bn`` run in inference mode (``layers.frozen_batch_norm``); with
    ``freeze_bn_affine`` their scale/bias keep their values too. With ``ema_decay`` > 0 the
    EMA of params and BatchNorm statistics is updated after the step (:func:`ema_decay_at`).
    uint8 images are normalised with ``mean``/``std`` (:func:`device_images`).
    """
    rng = jax.random.fold_in(rng, state.step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    images, labels = device_images(batch["image"], mean, std), batch["label"]

    def loss_fn(params):
        with layers.bn_axis_name(axis_name), layers.frozen_batch_norm(frozen_bn):
            logits, new_vars = state.apply_fn(
                _variables(state, params), images, train=True,
                mutable=["batch_stats", flaxnets.AUX_COLLECTION], rngs={"dropout": rng})
        ce = cross_entropy(logits, labels, num_classes, label_smoothing)
        loss = ce.mean()
        aux = jax.tree_util.tree_leaves(new_vars.get(flaxnets.AUX_COLLECTION, {}))
        if aux and aux_loss_weight:
            loss = loss + aux_loss_weight * sum(
                cross_entropy(a, labels, num_classes, label_smoothing).mean() for a in aux)
        return loss, (logits, new_vars.get("batch_stats", {}), ce.mean())

    (loss, (logits, new_stats, main_ce)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"loss": loss, "ce": main_ce,
               "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels).astype(jnp.float32)}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    extra = {}
    if optim.wants_curvature(state.opt_state):
        # SDLM (LeNet-5): the optimiser scales by the batch's diagonal Gauss-Newton curvature of
        # the deterministic network (no dropout, BatchNorm in inference mode).
        def logits_fn(params, x):
            return state.apply_fn(_variables(state, params), x, train=False)

        curvature = optim.gauss_newton_diag(logits_fn, state.params, images)
        if axis_name is not None:
            curvature = jax.lax.pmean(curvature, axis_name)
        extra.update(curvature=curvature, curvature_samples=images.shape[0])
    if optim.wants_value(state.opt_state):
        extra["value"] = metrics["loss"]  # "plateau": the replicas' mean, the same everywhere
    if extra:
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params, **extra)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state, batch_stats=new_stats)
    else:
        new_state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    if freeze_bn_affine and frozen_bn:
        new_state = new_state.replace(params=_keep_bn_params(state.params, new_state.params,
                                                             state.batch_stats, frozen_bn))
    if ema_decay and has_ema(state):
        d = ema_decay_at(state.step, ema_decay, ema_warmup, ema_power)
        new_state = new_state.replace(ema_params=ema_update(state.ema_params, new_state.params, d),
                                      ema_batch_stats=ema_update(state.ema_batch_stats, new_state.batch_stats, d))
    return new_state, metrics


def bn_modules(batch_stats: Any) -> set[str]:
    """Module paths (``layers.module_path`` form) of the BatchNorms in ``batch_stats``."""
    return {layers.module_path(tuple(str(getattr(k, "key", k)) for k in path[:-1]))
            for path, _ in jax.tree_util.tree_leaves_with_path(batch_stats or {})}


def _keep_bn_params(old: Any, new: Any, batch_stats: Any, patterns: tuple[str, ...]) -> Any:
    """``new`` params with those of the BatchNorms matched by ``patterns`` taken from ``old``."""
    frozen = {m for m in bn_modules(batch_stats) if layers.path_matches(m, patterns)}

    def pick(path, o, n):
        module = layers.module_path(tuple(str(getattr(k, "key", k)) for k in path[:-1]))
        return o if module in frozen else n

    return jax.tree_util.tree_map_with_path(pick, old, new)


def predict_probs(apply_fn: Callable, variables: dict, images: jax.Array) -> jax.Array:
    """Softmax probabilities; ``images`` (b,H,W,C) or (b,k,H,W,C) (k crops averaged)."""
    if images.ndim == 5:
        b, k = images.shape[:2]
        logits = apply_fn(variables, images.reshape(b * k, *images.shape[2:]), train=False)
        return jax.nn.softmax(logits.astype(jnp.float32), -1).reshape(b, k, -1).mean(1)
    logits = apply_fn(variables, images, train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), -1)


def topk_correct(probs: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """1.0 where the label is among the ``k`` highest scores (ties broken by index)."""
    k = min(k, probs.shape[-1])
    _, idx = jax.lax.top_k(probs, k)
    return jnp.any(idx == labels[:, None], axis=-1).astype(jnp.float32)


def eval_metrics(probs: jax.Array, labels: jax.Array, mask: jax.Array) -> dict:
    """Masked sums (count, top-1, top-5 hits, NLL) for one batch of probabilities."""
    nll = -jnp.log(jnp.take_along_axis(probs, labels[:, None], -1)[:, 0] + 1e-12)
    return {"count": mask.sum(), "top1": (topk_correct(probs, labels, 1) * mask).sum(),
            "top5": (topk_correct(probs, labels, 5) * mask).sum(), "loss": (nll * mask).sum()}


def eval_step(state: TrainState, batch: dict, *, axis_name: str | None = None,
              apply_fn: Callable | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> dict:
    """Masked top-1/top-5/loss sums on ``batch`` ({"image", "label", "mask"}); no aux heads.

    ``apply_fn`` replaces the state's model (e.g. VGG built with ``dense=True``); uint8
    images are normalised with ``mean``/``std``.
    """
    probs = predict_probs(apply_fn or state.apply_fn, _variables(state), device_images(batch["image"], mean, std))
    mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
    out = eval_metrics(probs, batch["label"], mask)
    if axis_name is not None:
        out = jax.lax.psum(out, axis_name)
    return out


def _moments(tree: Any) -> Any:
    """BatchNorm statistics ``{"mean", "var"}`` → ``{"mean", "var": E[x²] = var + mean²}``."""
    if isinstance(tree, Mapping) and set(tree) == {"mean", "var"}:
        return {"mean": tree["mean"], "var": tree["var"] + jnp.square(tree["mean"])}
    return {k: _moments(v) for k, v in tree.items()}


def population_stats(moment_sums: Any, n: int) -> Any:
    """Sums over ``n`` batches of :func:`batch_moments_step` → BatchNorm ``{"mean", "var"}``:
    the mean of the batch means and ``E[x²] − mean²`` (pycls ``compute_precise_bn_stats``)."""
    if isinstance(moment_sums, Mapping) and set(moment_sums) == {"mean", "var"}:
        mean = moment_sums["mean"] / n
        return {"mean": mean, "var": jnp.maximum(moment_sums["var"] / n - jnp.square(mean), 0.0)}
    return {k: population_stats(v, n) for k, v in moment_sums.items()}


def batch_moments_step(state: TrainState, batch: dict, *, axis_name: str | None = None,
                       ema: bool = False, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> Any:
    """Per BatchNorm, the mean and second moment ``E[x²]`` (in ``"var"``) of what reaches it on
    ``batch`` in the network as evaluated (``train=False``: no dropout, no drop-path), each
    BatchNorm normalising with these batch statistics (:func:`flaxnets.layers.batch_statistics`);
    with ``ema`` for the EMA weights. One batch of PreciseBN (``train.loop.precise_batch_stats``).
    """
    view = ema_view(state) if ema else state
    images = device_images(batch["image"], mean, std)
    with layers.bn_axis_name(axis_name), layers.batch_statistics():
        _, new = view.apply_fn(_variables(view), images, train=False, mutable=["batch_stats"])
    return _moments(new["batch_stats"])


def probs_step(state: TrainState, batch: dict, *, apply_fn: Callable | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> jax.Array:
    """Per-example probabilities (for multi-scale averaging across passes)."""
    return predict_probs(apply_fn or state.apply_fn, _variables(state), device_images(batch["image"], mean, std))


def init_state(model: Any, tx: optax.GradientTransformation, input_shape: tuple[int, int, int],
               seed: int = 0, ema: bool = False) -> TrainState:
    """Freshly initialised state (host numpy arrays), identical on every process; with
    ``ema`` the EMA starts as a copy of the initial params and statistics."""

    def init():
        return model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
                          jnp.zeros((1, *input_shape), jnp.float32), train=False)

    # Compiled without the CPU backend's optimisations: it runs once (flaxnets.layers).
    variables = jax.device_get(jax.jit(init, compiler_options=layers.run_once_compiler_options())())
    return jax.tree_util.tree_map(np.asarray, new_state(model.apply, tx, variables, ema))


def new_state(apply_fn: Callable, tx: optax.GradientTransformation, variables: Any, ema: bool = False) -> TrainState:
    """A step-0 state for ``variables`` (fresh optimiser state; the EMA, if kept, starts at them)."""
    params, stats = variables["params"], variables.get("batch_stats") or {}
    copy = functools.partial(jax.tree_util.tree_map, lambda x: np.array(x, copy=True))
    return TrainState.create(apply_fn=apply_fn, params=params, tx=tx, batch_stats=stats,
                             ema_params=copy(params) if ema else {}, ema_batch_stats=copy(stats) if ema else {})
