"""Device placement: ``jax.jit`` over a ``("data",)`` mesh (default) or ``jax.pmap``.

jit: parameters and optimiser state are replicated, each host batch becomes a slice of a
global batch sharded along ``"data"`` (``jax.make_array_from_process_local_data``), so
BatchNorm statistics and gradients are global means, exactly as on one device.
pmap: the state is replicated over the local devices, the host batch split in one part
per device; gradients and metrics are ``pmean``-ed and BatchNorm statistics are computed
across devices with :func:`flaxnets.layers.bn_axis_name` (no model change needed).

Multi-host: :func:`initialize_distributed` calls ``jax.distributed.initialize`` when a
coordinator is given (flags or ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/
``JAX_PROCESS_ID``) or when running on a multi-worker TPU slice.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from train import steps

AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, platform: str | None = None) -> bool:
    """Start JAX's multi-process runtime when the run spans several hosts.

    Returns whether ``jax.distributed.initialize`` was called. Must run before any other
    JAX call that touches devices.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator_address:
        if platform == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        # The coordinator (process 0) listens only where the user said (JAX's default is every
        # interface, [::]:port): a run on 127.0.0.1 is not reachable from the network.
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id,
                                   coordinator_bind_address=coordinator_address)
        return True
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if platform == "tpu" and "," in hosts:  # multi-worker TPU slice: auto-detected cluster
        jax.distributed.initialize()
        return True
    return False


def to_host(tree: Any) -> Any:
    """Numpy copy of a pytree of (replicated or host-addressable) arrays."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)


def local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of an array sharded along its first axis (in order)."""
    if x.is_fully_addressable:
        return np.asarray(x)
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, rows = set(), []
    for s in shards:
        start = s.index[0].start or 0
        if start not in seen:
            seen.add(start)
            rows.append(np.asarray(s.data))
    return np.concatenate(rows)


def all_sum(tree: Any) -> Any:
    """Sum of host-side numpy values over processes."""
    if jax.process_count() == 1:
        return tree
    gathered = multihost_utils.process_allgather(tree)
    return jax.tree_util.tree_map(lambda x: np.asarray(x).sum(0), gathered)


def any_process(flag: bool) -> bool:
    """True on every process if ``flag`` is true on any (e.g. preemption notice)."""
    if jax.process_count() == 1:
        return flag
    return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).max())


class Parallel:
    """Places state and batches and compiles the steps for one parallelism mode.

    ``pixel_stats`` ``(mean, std)``: the compiled steps normalise uint8 image batches with them
    (:func:`train.steps.device_images`); float batches are taken as normalised.
    """

    def __init__(self, mode: str = "jit", devices: list | None = None,
                 pixel_stats: tuple[Any, Any] | None = None):
        self._stats = {} if pixel_stats is None else {"mean": tuple(pixel_stats[0]), "std": tuple(pixel_stats[1])}
        if mode not in ("jit", "pmap"):
            raise ValueError(f"unknown parallel mode {mode!r}; use 'jit' or 'pmap'")
        self.mode = mode
        if mode == "jit":
            self.devices = devices or jax.devices()
            self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
            self.replicated = NamedSharding(self.mesh, P())
            self.sharded = NamedSharding(self.mesh, P(AXIS))
        else:
            # pmap over all local devices (its collectives then span every process).
            self.devices = devices or jax.local_devices()
        self._pmap_devices = devices  # None → pmap's default, required for multi-process
        self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
        self.num_devices = len(self.devices) if mode == "jit" else len(self.local_devices) * jax.process_count()

    def check_batch_size(self, global_batch: int) -> None:
        """Refuse a global batch that the devices cannot split evenly."""
        if global_batch % self.num_devices:
            raise ValueError(f"batch size {global_batch} is not divisible by the {self.num_devices} devices")

    # --- placement -----------------------------------------------------------------
    def put_state(self, state: Any) -> Any:
        """Host (numpy) state → replicated device state."""
        if self.mode == "pmap":
            n = len(self.local_devices)
            stacked = jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * n), state)
            return jax.pmap(lambda t: t, devices=self._pmap_devices)(stacked)

        def put(x):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self.replicated, lambda idx: x[idx])

        return jax.tree_util.tree_map(put, state)

    def host_state(self, state: Any) -> Any:
        """Device state → host numpy state (one replica)."""
        if self.mode == "pmap":
            state = jax.tree_util.tree_map(lambda x: x[0], state)
        return to_host(state)

    def put_batch(self, batch: dict) -> dict:
        """This process's numpy batch → device batch (global array or per-device split)."""
        if self.mode == "pmap":
            n = len(self.local_devices)

            def split(x):
                x = np.asarray(x)
                if x.shape[0] % n:
                    raise ValueError(f"host batch {x.shape[0]} not divisible by {n} local devices")
                return x.reshape(n, x.shape[0] // n, *x.shape[1:])  # pmap shards numpy inputs

            return jax.tree_util.tree_map(split, batch)
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self.sharded, np.asarray(x)), batch)

    def local_output(self, x: jax.Array) -> np.ndarray:
        """Per-example device output → this process's rows on the host."""
        if self.mode == "pmap":
            x = np.asarray(x)
            return x.reshape(-1, *x.shape[2:])
        return local_rows(x)

    def scalars(self, tree: Any) -> Any:
        """Replicated scalar metrics → host floats."""
        if self.mode == "pmap":
            tree = jax.tree_util.tree_map(lambda x: x[0], tree)
        return jax.tree_util.tree_map(lambda x: float(np.asarray(to_host(x))), tree)

    # --- compiled steps ---------------------------------------------------------------
    def train_step(self, compiler_options: dict | None = None, **kwargs: Any) -> Callable:
        """Compiled ``(state, batch, rng) → (state, metrics)``; the state is donated.
        ``compiler_options``: XLA options for this step (jit mode; ``jax.pmap`` takes none)."""
        if self.mode == "pmap":
            fn = functools.partial(steps.train_step, axis_name=AXIS, **self._stats, **kwargs)
            pm = jax.pmap(fn, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,),
                          devices=self._pmap_devices)
            return pm
        fn = functools.partial(steps.train_step, **self._stats, **kwargs)
        return jax.jit(fn, donate_argnums=(0,), out_shardings=(self.replicated, self.replicated),
                       compiler_options=compiler_options or None)

    def eval_step(self, apply_fn: Callable | None = None) -> Callable:
        """Compiled ``(state, batch) → masked metric sums``."""
        if self.mode == "pmap":
            fn = functools.partial(steps.eval_step, axis_name=AXIS, apply_fn=apply_fn, **self._stats)
            return jax.pmap(fn, axis_name=AXIS, devices=self._pmap_devices)
        fn = functools.partial(steps.eval_step, apply_fn=apply_fn, **self._stats)
        return jax.jit(fn, out_shardings=self.replicated)

    def batch_moments_step(self, ema: bool = False) -> Callable:
        """Compiled ``(state, batch) → per-BatchNorm batch moments`` of the global batch
        (:func:`train.steps.batch_moments_step`), replicated."""
        if self.mode == "pmap":
            fn = functools.partial(steps.batch_moments_step, axis_name=AXIS, ema=ema, **self._stats)
            return jax.pmap(fn, axis_name=AXIS, devices=self._pmap_devices)
        fn = functools.partial(steps.batch_moments_step, ema=ema, **self._stats)
        return jax.jit(fn, out_shardings=self.replicated)

    def probs_step(self, apply_fn: Callable | None = None) -> Callable:
        """Compiled ``(state, batch) → per-example probabilities`` (sharded like the batch)."""
        fn = functools.partial(steps.probs_step, apply_fn=apply_fn, **self._stats)
        if self.mode == "pmap":
            return jax.pmap(fn, devices=self._pmap_devices)
        return jax.jit(fn, out_shardings=self.sharded)
