"""Pure training and evaluation steps.

``train_step(state, batch, rng)`` and ``eval_step(state, batch)`` are plain functions of
arrays; :mod:`train.parallel` wraps them in ``jax.jit`` over a device mesh (default) or in
``jax.pmap`` (``config.parallel="pmap"``, then ``axis_name`` is set: gradients, metrics
and — through :func:`flaxnets.layers.bn_axis_name` — BatchNorm statistics are averaged
over devices).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import flaxnets
from flaxnets import layers


class TrainState(train_state.TrainState):
    """flax ``TrainState`` plus BatchNorm statistics."""

    batch_stats: Any = None


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy with optional label smoothing (float32)."""
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        onehot = optax.smooth_labels(onehot, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)


def _variables(state: TrainState, params: Any = None) -> dict:
    v = {"params": state.params if params is None else params}
    if state.batch_stats:
        v["batch_stats"] = state.batch_stats
    return v


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, num_classes: int,
               label_smoothing: float = 0.0, aux_loss_weight: float = 0.0,
               axis_name: str | None = None) -> tuple[TrainState, dict]:
    """One SGD step on ``batch`` ({"image", "label"}); returns the new state and metrics.

    loss = CE(main) + ``aux_loss_weight`` × Σ CE(aux heads sown into AUX_COLLECTION).
    ``rng`` feeds the ``dropout`` stream; it is folded with the step (and the device index
    under pmap) so every step and device draws fresh masks.
    """
    rng = jax.random.fold_in(rng, state.step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    images, labels = batch["image"], batch["label"]

    def loss_fn(params):
        with layers.bn_axis_name(axis_name):
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
    new_state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    return new_state, metrics


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
              apply_fn: Callable | None = None) -> dict:
    """Masked top-1/top-5/loss sums on ``batch`` ({"image", "label", "mask"}); no aux heads.

    ``apply_fn`` replaces the state's model (e.g. VGG built with ``dense=True``).
    """
    probs = predict_probs(apply_fn or state.apply_fn, _variables(state), batch["image"])
    mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
    out = eval_metrics(probs, batch["label"], mask)
    if axis_name is not None:
        out = jax.lax.psum(out, axis_name)
    return out


def probs_step(state: TrainState, batch: dict, *, apply_fn: Callable | None = None) -> jax.Array:
    """Per-example probabilities (for multi-scale averaging across passes)."""
    return predict_probs(apply_fn or state.apply_fn, _variables(state), batch["image"])


def init_state(model: Any, tx: optax.GradientTransformation, input_shape: tuple[int, int, int],
               seed: int = 0) -> TrainState:
    """Freshly initialised state (host numpy arrays), identical on every process."""

    def init():
        return model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
                          jnp.zeros((1, *input_shape), jnp.float32), train=False)

    variables = jax.device_get(jax.jit(init)())
    params = variables["params"]
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                              batch_stats=variables.get("batch_stats", {}))
    return jax.tree_util.tree_map(np.asarray, state)
