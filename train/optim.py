"""Optimisers and learning-rate schedules (optax) built from the training config.

* ``sgd``: momentum (optionally Nesterov) with coupled L2 weight decay (He et al. 2016).
* ``rmsprop``: TensorFlow-1 ``RMSPropOptimizer`` semantics as used for Inception
  (Szegedy et al. 2016, Sec. 8: decay 0.9, ε 1.0): ``ms = ρ·ms + (1-ρ)·g²`` with ``ms``
  initialised to 1, ``mom = μ·mom + lr·g/√(ms+ε)`` (ε inside the square root).
* ``adamw``: decoupled weight decay (Loshchilov & Hutter 2019).

Weight decay skips BatchNorm scales/biases and every bias unless
``config.decay_bn_and_bias``; depthwise conv kernels get ``config.depthwise_weight_decay``
instead when it is not ``None`` (MobileNet v1: "very little or no weight decay" on them).
The learning rate is ``learning_rate × batch_size / lr_batch_denom`` (Goyal et al. 2017
linear scaling; ``lr_batch_denom = 0`` disables it).

Fine-tuning: ``config.freeze`` (globs over parameter paths, ``layers.path_matches``) routes
those parameters to ``optax.set_to_zero`` through ``optax.multi_transform``: no update, no
weight decay, no optimiser state. ``config.lr_mult`` (``("layer*=0.1", ...)``, the first
matching pattern wins) scales the final update of the matching parameters, which is their
learning rate times the factor for every optimiser here (the rate multiplies a linear
function of the gradient and the decay term, as in a torch parameter group).

Filter renormalisation (Zeiler & Fergus 2014, Sec. 3): ``config.filter_rms_radius``
(``("PATTERN=RADIUS", ...)``, first matching pattern wins) caps the RMS of every filter (one
output channel of a 4-D conv kernel) of the matching layers after each update: a filter whose
RMS exceeds the radius is scaled back onto it. :func:`renormalize_filters` is the last
transformation of the chain, so the cap holds on the parameters the step produces.
"""

from __future__ import annotations

import math
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

    ``cosine`` decays to 0 at ``total_steps``; ``linear`` decreases linearly to 0 at
    ``total_steps`` (ShuffleNet); ``poly`` is ``peak·(1 − t/T)^poly_power`` over the
    ``T`` post-warmup steps (Caffe/Darknet "poly"; power 1 equals ``linear``); ``step``
    multiplies by ``step_factor`` at each of ``step_epochs``; ``exponential`` multiplies by
    ``decay_rate`` every ``decay_epochs`` (staircase); ``constant`` keeps the peak.
    """
    peak = base_learning_rate(config)
    warmup = int(round(float(config.warmup_epochs) * steps_per_epoch))
    num_epochs = total_steps / max(steps_per_epoch, 1)
    kind = config.schedule

    decay_steps = max(total_steps - warmup, 1)  # post-warmup steps
    if kind == "cosine":

        def decay(t):
            frac = jnp.clip(t / decay_steps, 0.0, 1.0)
            return peak * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    elif kind == "linear":
        decay = optax.linear_schedule(peak, 0.0, decay_steps)
    elif kind == "poly":
        power = float(config.poly_power)
        if power <= 0:
            raise ValueError(f"poly_power must be > 0, got {power}")
        decay = optax.polynomial_schedule(peak, 0.0, power, decay_steps)
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
        raise ValueError(f"unknown schedule {kind!r}; use cosine, linear, poly, step, exponential or "
                         "constant")

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
        return _leaf_name(path) not in _NO_DECAY_LEAVES

    return jax.tree_util.tree_map_with_path(keep, params)


def _leaf_name(path: Any) -> str:
    return str(getattr(path[-1], "key", getattr(path[-1], "name", path[-1])))


def is_depthwise_kernel(path: Any, leaf: Any) -> bool:
    """A conv kernel ``(kh, kw, 1, C)`` with ``C > 1``: one input channel per filter group,
    i.e. a depthwise conv (``feature_group_count`` = input channels). A plain conv on a
    single-channel input has the same shape and is counted too; the distinction only matters
    when ``depthwise_weight_decay`` differs from ``weight_decay``."""
    shape = getattr(leaf, "shape", ())
    return _leaf_name(path) == "kernel" and len(shape) == 4 and shape[2] == 1 and shape[3] > 1


def depthwise_mask(params: Any) -> Any:
    """Pytree of bools: True on depthwise conv kernels (see :func:`is_depthwise_kernel`)."""
    return jax.tree_util.tree_map_with_path(is_depthwise_kernel, params)


def weight_decay_groups(config: Any, params: Any) -> list[tuple[float, Any]]:
    """``(rate, mask)`` pairs of the weight decay: ``weight_decay`` on the :func:`decay_mask`
    leaves, except depthwise kernels, which get ``depthwise_weight_decay`` when it is set
    (not ``None``) and differs from ``weight_decay``."""
    mask = decay_mask(params, bool(config.decay_bn_and_bias))
    wd = float(config.weight_decay)
    dw = getattr(config, "depthwise_weight_decay", None)
    if dw is None or float(dw) == wd:
        return [(wd, mask)]
    depthwise = depthwise_mask(params)
    if not any(jax.tree_util.tree_leaves(depthwise)):
        return [(wd, mask)]
    rest = jax.tree_util.tree_map(lambda m, d: m and not d, mask, depthwise)
    return [(wd, rest), (float(dw), depthwise)]


def make_optimizer(
    config: Any, params: Any, steps_per_epoch: int, total_steps: int
) -> tuple[optax.GradientTransformation, Schedule]:
    """The optax transformation described by ``config`` and its learning-rate schedule."""
    schedule = make_schedule(config, steps_per_epoch, total_steps)
    groups = weight_decay_groups(config, params)
    chain: list[optax.GradientTransformation] = []
    if config.grad_clip_norm and config.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(float(config.grad_clip_norm)))
    name = config.optimizer
    if name == "adamw":
        # optax.adamw's own chain (same state layout) with per-group decoupled decay:
        # update = −lr·(adam(g) + rate·w).
        decays = [optax.add_decayed_weights(rate, m) for rate, m in groups]
        chain.append(optax.chain(optax.scale_by_adam(b1=float(config.adam_b1), b2=float(config.adam_b2)),
                                 *decays, optax.scale_by_learning_rate(schedule)))
    elif name in ("sgd", "rmsprop"):
        # Coupled L2: g ← g + rate·w, before the optimiser's statistics.
        chain.extend(optax.add_decayed_weights(rate, m) for rate, m in groups if rate > 0)
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
    tx = optax.chain(*chain)
    frozen = path_mask(params, tuple(config.get("freeze") or ()))
    if any(jax.tree_util.tree_leaves(frozen)):
        labels = jax.tree_util.tree_map(lambda f: "frozen" if f else "train", frozen)
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    mults = lr_multipliers(params, tuple(config.get("lr_mult") or ()))
    if mults is not None:
        tx = optax.chain(tx, optax.stateless(lambda updates, _: jax.tree_util.tree_map(
            lambda u, m: u * jnp.asarray(m, u.dtype), updates, mults)))
    radii = filter_radii(params, tuple(config.get("filter_rms_radius") or ()))
    if radii is not None:
        # Frozen filters stay as they are.
        radii = jax.tree_util.tree_map(lambda r, f: 0.0 if f else r, radii, frozen)
        tx = optax.chain(tx, renormalize_filters(radii))
    return tx, schedule

def is_conv_kernel(path: Any, leaf: Any) -> bool:
    """A 4-D ``kernel`` leaf ``(kh, kw, in, out)``: a conv layer's filters (dense kernels are 2-D)."""
    return _leaf_name(path) == "kernel" and len(getattr(leaf, "shape", ())) == 4


def parse_filter_radius(entries: tuple[str, ...]) -> list[tuple[str, float]]:
    """``("conv1=5.8", "conv*=0.1")`` → ``[("conv1", 5.8), ("conv*", 0.1)]``; raises
    ``ValueError`` naming a bad entry (the radius must be > 0)."""
    out = []
    for e in entries:
        pattern, _, value = str(e).rpartition("=")
        try:
            radius = float(value)
        except ValueError:
            radius = float("nan")
        if not pattern or not 0 < radius < math.inf:
            raise ValueError(f"filter_rms_radius entry {e!r} is not PATTERN=RADIUS with a radius > 0")
        out.append((pattern, radius))
    return out


def filter_radii(params: Any, entries: tuple[str, ...]) -> Any | None:
    """Per-leaf RMS radius: the first matching pattern's on conv kernels, 0 (no cap) on every
    other leaf; None without entries."""
    if not entries:
        return None
    from flaxnets import layers

    rules = parse_filter_radius(entries)

    def radius(path, leaf):
        if not is_conv_kernel(path, leaf):
            return 0.0
        name = param_path(path)
        return next((r for pat, r in rules if layers.path_matches(name, [pat])), 0.0)

    return jax.tree_util.tree_map_with_path(radius, params)


def renormalize_filters(radii: Any) -> optax.GradientTransformation:
    """Scale back every filter whose RMS after the update exceeds its radius (Zeiler & Fergus
    2014, Sec. 3: "we renormalize each filter in the convolutional layers whose RMS value
    exceeds a fixed radius of 10^-1 to this fixed radius").

    ``radii`` has the params' structure: a float per leaf, the RMS radius of each filter
    (``kernel[..., o]``, RMS over its ``kh·kw·in`` weights) of a 4-D kernel, 0 for no cap.
    Returns updates ``u'`` with ``params + u'`` = the renormalised ``params + u``; leaves and
    filters within their radius keep ``u`` exactly. Stateless; needs ``params`` in ``update``.
    """

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        if params is None:
            raise ValueError("renormalize_filters needs the parameters (tx.update(updates, state, params))")

        def one(u, p, r):
            if not r:
                return u
            new = p.astype(jnp.float32) + u.astype(jnp.float32)
            rms = jnp.sqrt(jnp.mean(jnp.square(new), axis=tuple(range(new.ndim - 1)), keepdims=True))
            over = rms > r
            scaled = new * jnp.where(over, r / jnp.where(over, rms, 1.0), 1.0) - p.astype(jnp.float32)
            return jnp.where(over, scaled.astype(u.dtype), u)

        return jax.tree_util.tree_map(one, updates, params, radii), state

    return optax.GradientTransformation(init_fn, update_fn)



def param_path(path: Any) -> str:
    """A parameter's path as ``module/path/leaf`` (what freeze and lr_mult globs match)."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def path_mask(params: Any, patterns: tuple[str, ...]) -> Any:
    """Pytree of bools: True where the parameter's path (or a module above it) matches a glob."""
    from flaxnets import layers

    return jax.tree_util.tree_map_with_path(
        lambda p, _: bool(patterns) and layers.path_matches(param_path(p), patterns), params)


def parse_lr_mult(entries: tuple[str, ...]) -> list[tuple[str, float]]:
    """``("layer*=0.1",)`` → ``[("layer*", 0.1)]``; raises ``ValueError`` naming a bad entry."""
    out = []
    for e in entries:
        pattern, _, value = str(e).rpartition("=")
        try:
            mult = float(value)
        except ValueError:
            mult = float("nan")
        if not pattern or not mult >= 0:
            raise ValueError(f"lr_mult entry {e!r} is not PATTERN=FACTOR with a factor >= 0")
        out.append((pattern, mult))
    return out


def lr_multipliers(params: Any, entries: tuple[str, ...]) -> Any | None:
    """Per-parameter learning-rate factors (first matching pattern wins; 1 elsewhere), or
    None without entries."""
    if not entries:
        return None
    from flaxnets import layers

    rules = parse_lr_mult(entries)

    def factor(path, _):
        name = param_path(path)
        return next((m for pat, m in rules if layers.path_matches(name, [pat])), 1.0)

    return jax.tree_util.tree_map_with_path(factor, params)
