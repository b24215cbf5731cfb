"""Subprocess worker for tests/test_multihost.py.

Usage: python _multihost_worker.py OUT.npz WORKDIR [COORDINATOR NUM_PROCESSES PROCESS_ID]
Trains resnet20 (8×8 inputs) for 4 steps on deterministic synthetic global batches; each
process feeds its slice of every global batch. After 2 steps the state is checkpointed,
restored from disk into a fresh state on every process, and training goes on. Process 0
writes the losses and final parameters.
"""

import sys

import jax

from train import parallel

if len(sys.argv) > 3:
    parallel.initialize_distributed(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), platform="cpu")

import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

import flaxnets  # noqa: E402
from train import checkpoint, optim, steps  # noqa: E402
from train.configs.default import get_config  # noqa: E402

GLOBAL_BATCH, SHAPE = 16, (8, 8, 3)


def global_batch(i: int) -> dict:
    rng = np.random.default_rng(100 + i)
    return {"image": rng.standard_normal((GLOBAL_BATCH, *SHAPE)).astype(np.float32),
            "label": rng.integers(0, 10, GLOBAL_BATCH).astype(np.int32)}


def main(out: str, workdir: str) -> None:
    cfg = get_config()
    cfg.batch_size, cfg.learning_rate = GLOBAL_BATCH, 0.05
    model = flaxnets.create_model("resnet20", num_classes=10)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *SHAPE), np.float32)))
    tx, _ = optim.make_optimizer(cfg, shapes["params"], steps_per_epoch=10, total_steps=100)
    fresh = steps.init_state(model, tx, SHAPE, seed=0)
    par = parallel.Parallel("jit")
    step = par.train_step(num_classes=10)
    n, pi = jax.process_count(), jax.process_index()
    per = GLOBAL_BATCH // n
    state, losses = par.put_state(fresh), []
    ckpt = checkpoint.Checkpointer(workdir, keep=2)
    for i in range(4):
        if i == 2:  # save on every host, then restore from disk into a fresh state
            ckpt.save(2, par.host_state(state), {"arch": "resnet20"})
            ckpt.wait()
            restored, _ = ckpt.restore(fresh, "resnet20")
            assert int(restored.step) == 2
            state = par.put_state(restored)
        local = {k: v[pi * per:(pi + 1) * per] for k, v in global_batch(i).items()}
        state, metrics = step(state, par.put_batch(local), jax.random.PRNGKey(0))
        losses.append(par.scalars(metrics)["loss"])
    ckpt.close()
    host = par.host_state(state)
    if pi == 0:
        flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(
            {"params": host.params, "batch_stats": host.batch_stats}).items()}
        np.savez(out, losses=np.asarray(losses), **flat)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
