"""Optimisers and learning-rate schedules (optax) built from the training config.

* ``sgd``: momentum (optionally Nesterov) with coupled L2 weight decay (He et al. 2016).
* ``rmsprop``: TensorFlow-1 ``RMSPropOptimizer`` semantics as used for Inception
  (Szegedy et al. 2016, Sec. 8: decay 0.9, ε 1.0): ``ms = ρ·ms + (1-ρ)·g²`` with ``ms``
  initialised to 1, ``mom = μ·mom + lr·g/√(ms+ε)`` (ε inside the square root).
* ``adamw``: decoupled weight decay (Loshchilov & Hutter 2019).

Weight decay skips BatchNorm scales/biases and every bias unless
``config.decay_bn_and_bias``. The learning rate is ``learning_rate × batch_size /
lr_batch_denom`` (Goyal et al. 2017 linear scaling; ``lr_batch_denom = 0`` disables it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

Schedule = Callable[[Any], Any]

_NO_DECAY_LEAVES = ("bias", "scale")  # dense/conv biases and BatchNorm's affine params


def base_learning_rate(config: Any) -> float:
    """Peak learning rate after linear batch-size scaling."""
    denom = config.lr_batch_denom
    return float(config.learning_rate) * (config.batch_size / denom if denom else 1.0)


def _boundary_steps(epochs: Any, num_epochs: float, steps_per_epoch: int) -> list[int]:
    """Step indices of epoch boundaries; values ≤ 1 are fractions of the whole run."""
    out = []
    for e in epochs:
        e = float(e)
        e = e * num_epochs if e <= 1.0 else e
        out.append(int(round(e * steps_per_epoch)))
    return out


def make_schedule(config: Any, steps_per_epoch: int, total_steps: int) -> Schedule:
    """Learning rate as a function of the step: linear warmup then the configured decay.

    ``cosine`` decays to 0 at ``total_steps``; ``step`` multiplies by ``step_factor`` at
    each of ``step_epochs``; ``exponential`` multiplies by ``decay_rate`` every
    ``decay_epochs`` (staircase); ``constant`` keeps the peak.
    """
    peak = base_learning_rate(config)
    warmup = int(round(float(config.warmup_epochs) * steps_per_epoch))
    num_epochs = total_steps / max(steps_per_epoch, 1)
    kind = config.schedule

    if kind == "cosine":
        decay_steps = max(total_steps - warmup, 1)

        def decay(t):
            frac = jnp.clip(t / decay_steps, 0.0, 1.0)
            return peak * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    elif kind == "step":
        bounds = jnp.asarray(_boundary_steps(config.step_epochs, num_epochs, steps_per_epoch) or [0])
        has = len(config.step_epochs) > 0

        def decay(t):
            # Boundaries count from the start of the run, warmup included.
            n = jnp.sum((t + warmup) >= bounds) if has else 0
            return peak * jnp.power(float(config.step_factor), n)
    elif kind == "exponential":
        every = max(float(config.decay_epochs) * steps_per_epoch, 1.0)

        def decay(t):
            return peak * jnp.power(float(config.decay_rate), jnp.floor((t + warmup) / every))
    elif kind == "constant":

        def decay(t):
            return peak * jnp.ones_like(jnp.asarray(t, jnp.float32))
    else:
        raise ValueError(f"unknown schedule {kind!r}; use cosine, step, exponential or constant")

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        if warmup <= 0:
            return decay(step)
        warm = peak * (step + 1.0) / warmup
        return jnp.where(step < warmup, warm, decay(step - warmup))

    return schedule


def decay_mask(params: Any, decay_bn_and_bias: bool = False) -> Any:
    """Pytree of bools: True where weight decay applies (kernels; not biases/BN params)."""

    def keep(path, leaf) -> bool:
        if decay_bn_and_bias:
            return True
        name = getattr(path[-1], "key", getattr(path[-1], "name", str(path[-1])))
        return name not in _NO_DECAY_LEAVES

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(
    config: Any, params: Any, steps_per_epoch: int, total_steps: int
) -> tuple[optax.GradientTransformation, Schedule]:
    """The optax transformation described by ``config`` and its learning-rate schedule."""
    schedule = make_schedule(config, steps_per_epoch, total_steps)
    mask = decay_mask(params, bool(config.decay_bn_and_bias))
    wd = float(config.weight_decay)
    chain: list[optax.GradientTransformation] = []
    if config.grad_clip_norm and config.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(float(config.grad_clip_norm)))
    name = config.optimizer
    if name == "adamw":
        chain.append(optax.adamw(schedule, b1=float(config.adam_b1), b2=float(config.adam_b2),
                                 weight_decay=wd, mask=mask))
    elif name in ("sgd", "rmsprop"):
        if wd > 0:  # coupled L2: g ← g + wd·w, before the optimiser's statistics
            chain.append(optax.add_decayed_weights(wd, mask))
        momentum = float(config.momentum) or None
        if name == "sgd":
            chain.append(optax.sgd(schedule, momentum=momentum, nesterov=bool(config.nesterov)))
        else:
            chain.append(optax.rmsprop(schedule, decay=float(config.rmsprop_decay),
                                       eps=float(config.rmsprop_eps), initial_scale=1.0,
                                       eps_in_sqrt=True, momentum=momentum,
                                       nesterov=bool(config.nesterov)))
    else:
        raise ValueError(f"unknown optimizer {name!r}; use sgd, rmsprop or adamw")
    return optax.chain(*chain), schedule
