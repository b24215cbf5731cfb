"""Subprocess worker for tests/test_parallel.py: a few train steps in each parallel mode.

Usage: python _parallel_worker.py OUT_DIR [MODE:NDEV ...] (MODE: jit | pmap). XLA_FLAGS must give
the host platform at least the largest NDEV devices. Writes MODE-NDEV.npz per run: the per-step
losses and final params. One process for every run: a Python start with JAX's import is ~6 s.
"""

import sys

import jax
import numpy as np
from flax import traverse_util

import flaxnets
from train import optim, parallel, steps
from train.configs.default import get_config


def main(mode: str, ndev: int, out: str) -> None:
    cfg = get_config()
    cfg.batch_size = 16
    cfg.learning_rate = 0.05
    model = flaxnets.create_model("resnet20", num_classes=10)
    rng = np.random.default_rng(0)
    shape = (8, 8, 3)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *shape), np.float32)))
    tx, _ = optim.make_optimizer(cfg, variables["params"], steps_per_epoch=10, total_steps=100)
    state = steps.init_state(model, tx, shape, seed=0)
    par = parallel.Parallel(mode, devices=jax.devices()[:ndev] if mode == "jit" else None)
    assert par.num_devices == ndev, (par.num_devices, ndev)
    state = par.put_state(state)
    step = par.train_step(num_classes=10)
    losses = []
    key = jax.random.PRNGKey(0)
    for _ in range(4):
        batch = {"image": rng.standard_normal((16, *shape)).astype(np.float32),
                 "label": rng.integers(0, 10, 16).astype(np.int32)}
        state, metrics = step(state, par.put_batch(batch), key)
        losses.append(par.scalars(metrics)["loss"])
    # PreciseBN moments of one more batch: global-batch statistics in every mode too.
    moments = par.batch_moments_step()(state, par.put_batch(
        {"image": rng.standard_normal((16, *shape)).astype(np.float32), "label": np.zeros(16, np.int32)}))
    host = par.host_state(state)
    precise = par.host_state(state.replace(batch_stats=moments)).batch_stats
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(
        {"params": host.params, "batch_stats": host.batch_stats, "precise": precise}).items()}
    np.savez(out, losses=np.asarray(losses), **flat)


if __name__ == "__main__":
    for run in sys.argv[2:]:
        mode, ndev = run.split(":")
        main(mode, int(ndev), f"{sys.argv[1]}/{mode}-{ndev}.npz")
