"""flaxnets trainer: one ``train_and_evaluate(config, workdir)`` for every registered model."""

import importlib.util as _util

# The trainer's stack is the [train] extra (``pip install flaxnets`` is the models only): say so
# in one line instead of a traceback from deep inside the first import that fails.
_MISSING = [m for m in ("absl", "ml_collections", "optax", "orbax", "tensorflow", "tensorflow_datasets", "sklearn")
            if _util.find_spec(m) is None]
if _MISSING:
    raise ImportError(f"the trainer needs {', '.join(_MISSING)}: pip install 'flaxnets[train]' "
                      "('flaxnets[train-base]' where TensorFlow is already installed, e.g. Colab)")
