"""Input-pipeline rate: the trainer's own training transform on real JPEGs of ImageNet-like size.

Makes a folder of JPEGs from scikit-learn's two sample photos (random crops, rescales to
ImageNet-like sides of ~300–500 px, re-encoded at JPEG quality 75–95), then times the
trainer's ``train_example_fn`` (decode + random-resized crop + flip + normalise, default
config) through ``tf.data`` with 1 thread and with every core: images per wall second and
per CPU second (the per-core rate, robust to other load on a shared machine).

    python benchmarks/pipeline.py --images 256 --size 224
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JPEGs of ImageNet-like size (shorter side 300–500 px) cut from the sklearn samples."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two 427×640 RGB photos
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img = Image.fromarray(src[top:top + ch, left:left + cw])
        short = int(rng.integers(300, 501))  # ImageNet train images: mostly ~400×350, shorter side ≤ 500
        scale = short / min(ch, cw)
        img = img.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
        path = folder / f"img_{i:05d}.jpg"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def rate(paths: list[Path], size: int, threads: int, epochs: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) of the trainer's train
    transform over ``paths`` with ``threads`` tf.data threads. The CPU-second rate is the
    per-core rate, and holds on a machine shared with other load, where wall time does not."""
    import tensorflow as tf

    from train.data.builders import DatasetInfo
    from train.data.pipeline import train_example_fn

    info = DatasetInfo("folder:bench", 1000, "train", "validation", len(paths), 0, 256, 3, 1.0)
    fn = train_example_fn({}, info, image_size=size, channels=3, mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225), seed=0)
    data = [p.read_bytes() for p in paths]
    ds = tf.data.Dataset.from_tensor_slices({"image": data, "label": np.zeros(len(data), np.int64)})
    ds = ds.enumerate().repeat(epochs + 1)
    ds = ds.map(lambda i, ex: fn(tf.constant(0, tf.int64), i, ex), num_parallel_calls=threads, deterministic=False)
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = threads
    opts.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(opts).batch(32).prefetch(2)
    it = iter(ds)
    for _ in range(len(data) // 32):  # warm-up: one pass
        next(it)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    for batch in it:
        n += int(batch["image"].shape[0])
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=2, help="timed passes over the folder")
    p.add_argument("--folder", default=None, help="where to write the JPEGs (default: a temp dir)")
    a = p.parse_args(argv)
    if a.images < 32 or a.size < 8:
        sys.exit("pipeline: --images must be ≥ 32 and --size ≥ 8")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(a.folder or tmp), a.images)
        sides = [min(__import__("PIL.Image").Image.open(q).size) for q in paths[:64]]
        print(f"{len(paths)} JPEGs, shorter side {min(sides)}–{max(sides)} px, "
              f"mean {np.mean([q.stat().st_size for q in paths]) / 1024:.0f} KiB")
        cores = os.cpu_count() or 1
        for threads in sorted({1, cores}):
            wall, cpu = rate(paths, a.size, threads, a.epochs)
            print(f"threads {threads}: {wall:.0f} images/s wall, {cpu:.0f} images per CPU-second (per core)")


if __name__ == "__main__":
    main()
