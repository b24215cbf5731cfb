"""Datasets the trainer reads: names, metadata and their TFDS builders.

Every dataset goes through the same TFDS → ``tf.data`` path:

* ``digits`` — embedded and offline: the 1,797 real 8×8 handwritten digits of
  scikit-learn's ``load_digits`` (UCI "Optical Recognition of Handwritten Digits"),
  pixel values 0–16 scaled to uint8 0–255, one channel, 10 classes. :class:`Digits` is a
  ``tfds.core.GeneratorBasedBuilder`` prepared into ``data_dir`` on first use. The split is
  fixed: a stratified 1,437 / 360 train / test split by
  ``sklearn.model_selection.train_test_split(test_size=360, stratify=y, random_state=0)``.
* ``mnist``, ``cifar10``, ``cifar100`` — the TFDS datasets (``tfds build <name>
  --data_dir=DIR`` downloads and prepares them).
* ``imagenet2012`` — TFDS ``imagenet2012`` prepared from the manual download:
  ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` in the manual dir
  (``<data_dir>/downloads/manual`` by default), then
  ``tfds build imagenet2012 --data_dir=DIR [--manual_dir=MANUAL]``.
* ``folder:<root>`` — an image folder ``root/<split>/<class>/*.jpg`` read with
  ``tfds.ImageFolder`` (splits ``train`` and one of ``validation``/``val``/``test``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "cifar100", "imagenet2012", "folder:<root>")

FOLDER_PREFIX = "folder:"
_FOLDER_EVAL_SPLITS = ("validation", "val", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the trainer needs to know about a dataset (counts are global, before sharding)."""

    name: str
    num_classes: int
    train_split: str
    eval_split: str
    num_train: int
    num_eval: int
    image_size: int  # native / typical side
    channels: int  # native channels
    default_epochs: float  # a sensible budget when the recipe's is too long
    data_dir: str | None = None  # TFDS data dir the splits were found in


# name: (num_classes, train split, eval split, num_train, num_eval, image_size, channels, epochs)
_KNOWN: dict[str, tuple[int, str, str, int, int, int, int, float]] = {
    "digits": (10, "train", "test", 1437, 360, 8, 1, 30.0),
    "mnist": (10, "train", "test", 60_000, 10_000, 28, 1, 10.0),
    "cifar10": (10, "train", "test", 50_000, 10_000, 32, 3, 30.0),
    "cifar100": (100, "train", "test", 50_000, 10_000, 32, 3, 30.0),
    "imagenet2012": (1000, "train", "validation", 1_281_167, 50_000, 224, 3, 90.0),
}
_FOLDER_DEFAULTS = dict(image_size=224, channels=3, default_epochs=30.0)

DIGITS_NUM_TEST = 360
DIGITS_SPLIT_SEED = 0


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8×8 handwritten digits as a TFDS dataset (offline, no download)."""

    VERSION = tfds.core.Version("1.0.0")
    # Where TFDS looks for checksums/metadata next to the code; set explicitly because
    # importlib.resources cannot resolve it for editable installs of this repository.
    code_path = epath.Path(__file__)
    RELEASE_NOTES = {"1.0.0": "Stratified 1,437 / 360 split, random_state=0."}

    def _log_download_bytes(self) -> None:  # TFDS would print "Unknown size" download sizes
        print(f"preparing the embedded digits in {self.data_dir} (once)", flush=True)

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="1,797 8x8 handwritten digits (sklearn.datasets.load_digits), 0-16 → 0-255.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # embedded: nothing to download
        train_idx, test_idx = digits_split_indices()
        return {"train": self._generate_examples(train_idx), "test": self._generate_examples(test_idx)}

    def _generate_examples(self, indices):
        images, labels = _digits_arrays()
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 (N, 8, 8, 1) images (0–16 scaled to 0–255) and int labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int64)


def digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified (train, test) indices into ``load_digits`` (1,437 / 360), sorted."""
    from sklearn.model_selection import train_test_split

    _, labels = _digits_arrays()
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=DIGITS_NUM_TEST,
                                           stratify=labels, random_state=DIGITS_SPLIT_SEED)
    return np.sort(train_idx), np.sort(test_idx)


def _close_matches(name: str) -> str:
    names = [n for n in DATASETS if not n.startswith(FOLDER_PREFIX)] + ["folder"]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def check_name(name: str) -> None:
    """Raise a one-line ValueError unless ``name`` is a supported dataset name."""
    if name in _KNOWN or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX)):
        return
    raise ValueError(f"Unknown dataset {name!r}; supported: {', '.join(DATASETS)}."
                     + _close_matches(name))


def is_prepared(name: str, data_dir: str | None) -> bool:
    """Whether the TFDS dataset ``name`` is prepared in ``data_dir`` (None → TFDS default)."""
    try:
        return tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # noqa: BLE001 (a missing/unknown dataset is simply not prepared)
        return False


def resolve_dataset(name: str, data_dir: str | None) -> str:
    """``""`` → ``imagenet2012`` if prepared in ``data_dir``, else ``digits`` (says which, why)."""
    if name:
        check_name(name)
        return name
    where = data_dir or "the TFDS default data dir"
    if is_prepared("imagenet2012", data_dir):
        print(f"dataset: imagenet2012 (no dataset given; imagenet2012 is prepared in {where})")
        return "imagenet2012"
    print(f"dataset: digits (no dataset given and imagenet2012 is not prepared in {where}; "
          "using the embedded 8x8 digits)")
    return "digits"


def _not_prepared_message(name: str, builder: tfds.core.DatasetBuilder, data_dir: str | None) -> str:
    root = data_dir or os.path.dirname(os.path.dirname(builder.data_dir))
    if name == "imagenet2012":
        manual = os.path.join(root, "downloads", "manual")
        return (f"imagenet2012 is not prepared in {root} (expected {builder.data_dir}): put "
                f"ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in {manual} (or any --manual_dir) "
                f"and run `tfds build imagenet2012 --data_dir={root} --manual_dir={manual}`.")
    return (f"{name} is not prepared in {root} (expected {builder.data_dir}): run "
            f"`tfds build {name} --data_dir={root}` on a machine with internet, or pass --config.data_dir.")


def get_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared TFDS builder of ``name`` (prepares ``digits`` offline on first use).

    Raises FileNotFoundError with a one-line explanation when the data is missing; never
    downloads.
    """
    check_name(name)
    if name.startswith(FOLDER_PREFIX):
        root = os.path.expanduser(name[len(FOLDER_PREFIX):])
        if not os.path.isdir(os.path.join(root, "train")):
            raise FileNotFoundError(f"Image folder {root!r} has no train/ split: expected "
                                    f"{root}/train/<class>/*.jpg and {root}/<validation|val|test>/<class>/*.jpg.")
        check_image_folder(root)
        return tfds.ImageFolder(root)
    if name == "digits":
        builder = Digits(data_dir=data_dir)
        if not builder.is_prepared():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        return builder
    builder = tfds.builder(name, data_dir=data_dir)
    if not is_prepared_builder(builder):
        raise FileNotFoundError(_not_prepared_message(name, builder, data_dir))
    return builder


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # what tfds.ImageFolder reads
FULL_DECODE_LIMIT = 20_000  # folders up to this many images are fully decoded at start


def check_image_folder(root: str) -> int:
    """Check an image folder before training; return its number of images.

    Policy for bad files: the run fails at start, naming the file, rather than mid-run. Every
    split folder must hold images; each image is decoded with PIL (folders of up to
    ``FULL_DECODE_LIMIT`` images; larger ones get PIL's header check, and the input pipeline
    skips a file that still fails to decode, with a warning).
    """
    from PIL import Image

    files = []
    for split in sorted(os.listdir(root)):
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            continue
        found = [os.path.join(d, f) for d, _, names in os.walk(split_dir) for f in sorted(names)
                 if f.lower().endswith(IMAGE_SUFFIXES)]
        if not found:
            raise FileNotFoundError(f"Image folder {root!r}: {split}/ holds no {'/'.join(IMAGE_SUFFIXES)} images "
                                    f"(expected {split}/<class>/<image>)")
        files += found
    full = len(files) <= FULL_DECODE_LIMIT
    for path in files:
        try:
            with Image.open(path) as img:
                img.load() if full else img.verify()
        except Exception as e:  # noqa: BLE001 - any decoder error: name the file
            raise ValueError(f"Image folder {root!r}: {path} cannot be decoded ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:80] if str(e) else ''}); remove or replace it") from None
    return len(files)


def is_prepared_builder(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether ``builder``'s files exist (a seam tests replace under ``tfds.testing.mock_data``)."""
    return builder.is_prepared()


def split_size(builder: tfds.core.DatasetBuilder, split) -> int | None:
    """Number of examples in ``split`` (subsplits allowed) from the builder's metadata, or None."""
    try:
        n = builder.info.splits[split].num_examples
    except Exception:  # noqa: BLE001 (unknown split metadata, e.g. under mock_data)
        return None
    return int(n) if n else None


def dataset_info(name: str, data_dir: str | None = None) -> DatasetInfo:
    """Metadata of dataset ``name``; prepares ``digits`` on first use, errors clearly if missing."""
    builder = get_builder(name, data_dir)
    if name.startswith(FOLDER_PREFIX):
        splits = list(builder.info.splits.keys())
        eval_split = next((s for s in _FOLDER_EVAL_SPLITS if s in splits), None)
        if eval_split is None:
            raise FileNotFoundError(f"Image folder {name[len(FOLDER_PREFIX):]!r} has no evaluation split "
                                    f"(one of {', '.join(_FOLDER_EVAL_SPLITS)}); found {splits}.")
        return DatasetInfo(name=name, num_classes=builder.info.features["label"].num_classes,
                           train_split="train", eval_split=eval_split,
                           num_train=split_size(builder, "train"), num_eval=split_size(builder, eval_split),
                           data_dir=data_dir, **_FOLDER_DEFAULTS)
    classes, train, evals, n_train, n_eval, size, channels, epochs = _KNOWN[name]
    return DatasetInfo(name=name, num_classes=classes, train_split=train, eval_split=evals,
                       num_train=split_size(builder, train) or n_train,
                       num_eval=split_size(builder, evals) or n_eval,
                       image_size=size, channels=channels, default_epochs=epochs, data_dir=data_dir)


def shard_bounds(num_examples: int, index: int, count: int) -> tuple[int, int]:
    """[start, end) of shard ``index`` of ``count`` contiguous shards (``tfds.even_splits``'s rule)."""
    per, rest = divmod(num_examples, count)
    start = per * index + min(index, rest)
    return start, start + per + (1 if index < rest else 0)


def read_split(builder: tfds.core.DatasetBuilder, split: str, process_index: int,
               process_count: int) -> tuple[tf.data.Dataset, int]:
    """This process's contiguous shard of ``split`` with images left encoded, and its size.

    Examples come in the builder's fixed order (no file shuffling) so the stream is
    deterministic; each is ``{"image": encoded bytes, "label": int}``.
    """
    decoders = {"image": tfds.decode.SkipDecoding()}
    read_config = tfds.ReadConfig(shuffle_seed=0, try_autocache=False)
    if isinstance(builder, tfds.ImageFolder):  # no subsplit support: skip/take
        ds = builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)
        total = split_size(builder, split)
        start, end = shard_bounds(total, process_index, process_count)
        ds = ds.skip(start).take(end - start)
    else:
        sub = split if process_count == 1 else tfds.split_for_jax_process(
            split, process_index=process_index, process_count=process_count)
        ds = builder.as_dataset(split=sub, decoders=decoders, shuffle_files=False, read_config=read_config)
    ds = ds.map(lambda ex: {"image": ex["image"], "label": ex["label"]})
    n = int(ds.cardinality())
    if n < 0:
        n = int(ds.reduce(np.int64(0), lambda c, _: c + 1))
    return ds, n
