"""Subprocess worker for tests/test_multihost.py.

Usage: python _multihost_worker.py DATA_DIR PLAN_JSON [COORDINATOR NUM_PROCESSES PROCESS_ID]

PLAN_JSON is a list of ``[workdir, max_steps]``: each entry is one call of the trainer
(``train.loop.train_and_evaluate``: LeNet-5 on the embedded digits in DATA_DIR, 12 steps in
all, loss logged every step), which resumes from the workdir's checkpoint when it has one. A
call with ``max_steps`` below 12 stops there with its checkpoint saved, as a killed run
whose last checkpoint is at that step. With a coordinator, every process runs the plan, and
process 0 (the coordinator) writes the addresses its port listens on to DATA_DIR/listen.json.
"""

import json
import os
import sys

from train import parallel

if len(sys.argv) > 3:
    parallel.initialize_distributed(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), platform="cpu")

from train import loop  # noqa: E402
from train.configs.default import get_config  # noqa: E402


def listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} spell them) of sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for row in open(table).read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                addr, hex_port = local.rsplit(":", 1)
                if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                    found.append(addr)
    return found


def config(data_dir: str, max_steps: int):
    cfg = get_config()
    cfg.arch, cfg.dataset, cfg.data_dir, cfg.recipe = "lenet5", "digits", data_dir, False
    cfg.batch_size, cfg.learning_rate, cfg.steps_per_epoch, cfg.num_epochs = 16, 0.05, 6, 2.0
    cfg.max_steps, cfg.log_every_steps, cfg.checkpoint_every_steps = max_steps, 1, 1000
    cfg.eval_every_epochs, cfg.steps_per_eval, cfg.tensorboard = 100, 1, False
    return cfg


def main(data_dir: str, plan: str) -> None:
    if len(sys.argv) > 3 and int(sys.argv[5]) == 0:
        with open(os.path.join(data_dir, "listen.json"), "w") as f:
            json.dump(listening(int(sys.argv[3].rsplit(":", 1)[1])), f)
    for workdir, max_steps in json.loads(plan):
        loop.train_and_evaluate(config(data_dir, int(max_steps)), workdir)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
