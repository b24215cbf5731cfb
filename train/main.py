"""Command line: flags → config → :func:`train.loop.train_and_evaluate`.

    python -m train.main                                   # resnet20 on the embedded digits, CPU
    python -m train.main --arch=densenet121 --platform=tpu # ImageNet with the paper recipe
    python -m train.main --arch=vgg16 --config.batch_size=64 --config.eval_modes='("dense",)'

``--config`` is an ml_collections config file (default ``train/configs/default.py``);
``--config.<field>=value`` overrides a field and wins over the arch's recipe. Every bad
input ends with a one-line ``error: ...`` on stderr and a non-zero exit status.
Multi-host: pass ``--coordinator_address``, ``--num_processes``, ``--process_id`` (or the
``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` variables) on every
host; multi-worker TPU slices are detected automatically.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from absl import app, flags
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")
PLATFORMS = ("cpu", "gpu", "tpu")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Training configuration file.",
                                lock_config=False)
flags.DEFINE_string("arch", None, "Registry name of the model (overrides config.arch).")
flags.DEFINE_string("dataset", None, "Dataset name (overrides config.dataset): digits, mnist, cifar10, "
                    "cifar100, imagenet2012 or folder:<root>.")
flags.DEFINE_string("workdir", None, "Checkpoints and logs; default ./runs/<arch>_<dataset>.")
flags.DEFINE_string("platform", None, "cpu, gpu or tpu (default: JAX's choice).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: index of this process.")

EXIT_ERROR = 1
EXIT_PREEMPTED = 143  # 128 + SIGTERM, as if killed, so schedulers restart the job


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print a one-line error and exit."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(code)


def select_platform(platform: str | None) -> None:
    """Make JAX use ``platform`` (before its backends start)."""
    if not platform:
        return
    if platform not in PLATFORMS:
        fail(f"--platform={platform!r} is not one of {', '.join(PLATFORMS)}")
    os.environ["JAX_PLATFORMS"] = platform
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_platforms", platform)


def check_platform(platform: str | None) -> None:
    """Fail with a clear message if ``platform`` has no devices here."""
    import jax

    try:
        devices = jax.devices()
    except RuntimeError as e:
        fail(f"platform {platform or 'default'!r} is not available on this machine "
             f"({str(e).splitlines()[0][:200]})")
    if platform and devices[0].platform != platform:
        fail(f"platform {platform!r} is not available on this machine (found {devices[0].platform})")


def explicit_fields() -> set[str]:
    """Config fields set on the command line (``--config.<field>=...``, ``--arch``, ``--dataset``)."""
    fields = {k.split(".")[0] for k in config_flags.get_override_values(FLAGS["config"])}
    if FLAGS.arch:
        fields.add("arch")
    if FLAGS.dataset:
        fields.add("dataset")
    return fields


def config_from_flags(argv: list[str], example: str = "--arch=NAME") -> Any:
    """The config with ``--arch``/``--dataset`` applied and the platform selected (shared by
    ``train.main`` and ``train.evaluate``); stray positional arguments fail in one line."""
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]} (flags look like {example})")
    from train import progress

    progress.quiet_console()  # the trainer's lines; libraries' warnings in one line each
    config = FLAGS.config
    if FLAGS.arch:
        config.arch = FLAGS.arch
    if FLAGS.dataset:
        config.dataset = FLAGS.dataset
    select_platform(FLAGS.platform)
    return config


def main(argv: list[str]) -> None:
    """Entry point after absl parsed the flags."""
    config = config_from_flags(argv)

    import flaxnets

    try:
        flaxnets.model_info(config.arch)
    except ValueError as e:
        fail(e)
    from train import parallel

    try:
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                                        platform=FLAGS.platform)
    except Exception as e:  # noqa: BLE001
        fail(f"multi-host initialisation failed: {e}")
    check_platform(FLAGS.platform)

    from train import loop
    from train.checkpoint import CheckpointError

    workdir = FLAGS.workdir or os.path.join("runs", f"{config.arch}_{config.dataset or 'default'}")
    try:
        metrics = loop.train_and_evaluate(config, workdir, explicit=explicit_fields())
    except loop.Preempted as e:
        fail(e, EXIT_PREEMPTED)
    except (ValueError, FileNotFoundError, loop.TrainingError, CheckpointError) as e:
        fail(e)
    from train import progress

    if progress.is_main_process():
        shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in metrics.items()}
        print(f"final: {shown}")
        if "top1" in metrics:
            print(f"test accuracy (top-1): {metrics['top1']:.2f}%")


def run() -> None:
    """``python -m train.main`` entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
