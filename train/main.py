"""Command line: flags → config → :func:`train.loop.train_and_evaluate`.

    python -m train.main                                   # resnet20 on the embedded digits, CPU
    python -m train.main --arch=densenet121 --platform=tpu # ImageNet with the paper recipe
    python -m train.main --arch=vgg16 --config.batch_size=64 --config.eval_modes='("dense",)'

``--config`` is an ml_collections config file (default ``train/configs/default.py``);
``--config.<field>=value`` overrides a field and wins over the arch's recipe;
``--config.model_overrides.NAME=VALUE`` sets one model constructor field (e.g.
``drop_path_rate=0.1``) and keeps the recipe's other overrides. Every bad
input ends with a one-line ``error: ...`` on stderr and a non-zero exit status.
Multi-host: pass ``--coordinator_address``, ``--num_processes``, ``--process_id`` (or the
``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` variables) on every
host; multi-worker TPU slices are detected automatically.
"""

from __future__ import annotations

import ast
import difflib
import os
import sys
from typing import Any

from absl import app, flags
from ml_collections import config_flags

EXIT_ERROR = 1
EXIT_PREEMPTED = 143  # 128 + SIGTERM, as if killed, so schedulers restart the job
OVERRIDES_FLAG = "--config.model_overrides."
# ``--config.model_overrides.NAME=VALUE`` pairs taken out of argv by :func:`parse_argv`.
_model_overrides: dict[str, Any] = {}

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")
PLATFORMS = ("cpu", "gpu", "tpu")


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print a one-line error and exit."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(code)


def _literal(text: str) -> Any:
    """A flag value as Python: ``0.1``, ``True``, ``(1, 2)``; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_argv(argv: list[str]) -> list[str]:
    """``argv`` without its ``--config.model_overrides.NAME=VALUE`` flags, which are kept for
    :func:`config_from_flags` (model constructor fields are open-ended, so the config cannot
    declare them as flags); an unknown ``--config.<field>`` fails in one line here instead of
    as a traceback from the flag parser."""
    from train.configs.default import get_config

    # A config file of one's own (--config=FILE) may declare other fields: the flag parser checks those.
    known = None if any(a.startswith("--config=") for a in argv) else get_config()
    rest = []
    _model_overrides.clear()
    for arg in argv:
        if arg.startswith(OVERRIDES_FLAG):
            name, eq, value = arg[len(OVERRIDES_FLAG):].partition("=")
            if not eq or not name.isidentifier():
                fail(f"{arg!r}: write model overrides as {OVERRIDES_FLAG}NAME=VALUE")
            _model_overrides[name] = _literal(value)
            continue
        if known is not None and arg.startswith("--config."):
            field = arg[len("--config."):].partition("=")[0].split(".")[0]
            if field not in known:
                close = difflib.get_close_matches(field, list(known), n=3)
                fail(f"unknown config field {field!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                           " (see train/configs/default.py)"))
        rest.append(arg)
    return rest


# Before the config flag is defined: ml_collections reads sys.argv's overrides right then.
sys.argv[:] = parse_argv(sys.argv)

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
    """Config fields set on the command line (``--config.<field>=...``, ``--arch``, ``--dataset``);
    a model override counts as ``model_overrides.NAME``, so the recipe's other overrides stay."""
    fields = {k.split(".")[0] for k in config_flags.get_override_values(FLAGS["config"])}
    fields |= {f"model_overrides.{name}" for name in _model_overrides}
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
    if _model_overrides:
        config.model_overrides = dict(config.model_overrides, **_model_overrides)
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
