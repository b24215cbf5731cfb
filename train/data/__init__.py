"""Input pipelines of the trainer: TFDS datasets → deterministic, sharded numpy batches.

``builders`` (dataset names, metadata, the embedded ``digits`` TFDS builder),
``preprocess`` (pure TF image ops) and ``pipeline`` (train / eval iterators). TensorFlow is
only used on the host: it is hidden from GPUs/TPUs so that JAX owns accelerator memory.
"""

import tensorflow as tf

for _kind in ("GPU", "TPU"):
    try:
        tf.config.set_visible_devices([], _kind)
    except (RuntimeError, ValueError):  # already initialised, or no such device type
        pass

from train.data.builders import (  # noqa: E402
    DATASETS,
    DatasetInfo,
    Digits,
    dataset_info,
    digits_split_indices,
    resolve_dataset,
)
from train.data.pipeline import eval_iterator, train_iterator  # noqa: E402

__all__ = ["DATASETS", "DatasetInfo", "Digits", "dataset_info", "digits_split_indices", "eval_iterator",
           "resolve_dataset", "train_iterator"]
