"""Input-pipeline rate: the trainer's own training transform on real JPEGs of ImageNet-like size.

Makes a folder of JPEGs from scikit-learn's two sample photos (random crops, rescales to
ImageNet-like sides of ~300–500 px, re-encoded at JPEG quality 75–95), then times the
trainer's ``train_example_fn`` (decode of the crop window + random-resized crop + flip, default
config) through ``tf.data`` with 1 thread and with every core: images per wall second and
per CPU second (the per-core rate, robust to other load on a shared machine). Three variants:
what the trainer runs (uint8 out, normalised on the device, plain bilinear resize), the same
normalised to float32 on the host, and the antialiased resize (``train_resize_antialias``).

    python benchmarks/pipeline.py --images 256 --size 224

``--trainer-wait ARCH`` instead runs the trainer's own pieces (train iterator over an image
folder of those JPEGs, uint8 batches, device prefetch, the jitted train step) for a few steps
and reports how long each step waited for its batch against how long the step took.

    python benchmarks/pipeline.py --trainer-wait resnet50 --batch 16 --steps 6
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


def rate(paths: list[Path], size: int, threads: int, epochs: int, normalize: bool = False,
         antialias: bool = False) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) of the trainer's train
    transform over ``paths`` with ``threads`` tf.data threads. The CPU-second rate is the
    per-core rate, and holds on a machine shared with other load, where wall time does not.
    ``normalize``: float32 normalised on the host instead of uint8; ``antialias``: the
    antialiased resize."""
    import tensorflow as tf

    from train.data.builders import DatasetInfo
    from train.data.pipeline import train_example_fn

    info = DatasetInfo("folder:bench", 1000, "train", "validation", len(paths), 0, 256, 3, 1.0)
    fn = train_example_fn({"train_resize_antialias": antialias}, info, image_size=size, channels=3,
                          mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), seed=0, normalize=normalize)
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


def trainer_wait(folder: Path, arch: str, batch: int, steps: int, size: int | None) -> None:
    """Time the trainer's step loop pieces on ``folder`` (an image folder): per step, the wait
    for the next device batch (tf.data + prefetch) and the step itself (dispatch to done)."""
    import jax

    import flaxnets
    from train import parallel
    from train import steps as st
    from train.configs.default import get_config
    from train.data import dataset_info, train_iterator
    from train.optim import make_optimizer

    info = dataset_info(f"folder:{folder}")
    mi = flaxnets.model_info(arch)
    size = size or mi.input_size[0]
    config = get_config()
    config.arch, config.batch_size = arch, batch
    model = flaxnets.create_model(arch, num_classes=info.num_classes)
    shape = (size, size, mi.input_size[2])
    par = parallel.Parallel("jit", pixel_stats=(mi.mean, mi.std))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *shape), np.float32),
                                                  train=False))
    tx, _ = make_optimizer(config, variables["params"], 100, 1000)
    state = par.put_state(st.init_state(model, tx, shape))
    step_fn = par.train_step(num_classes=info.num_classes)
    it = train_iterator(config, info, image_size=size, channels=shape[2], mean=mi.mean, std=mi.std,
                        global_batch_size=batch, seed=0, normalize=False)
    batches = st.prefetch_to_device(it, par.put_batch)
    rng = jax.random.PRNGKey(0)
    t = time.perf_counter()
    state, m = step_fn(state, next(batches), rng)
    jax.block_until_ready(m)
    print(f"{arch} batch {batch} at {size}px: first step (compile) {time.perf_counter() - t:.1f} s", flush=True)
    waits, runs = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        b = next(batches)
        t1 = time.perf_counter()
        state, m = step_fn(state, b, rng)
        jax.block_until_ready(m)
        waits.append(t1 - t0)
        runs.append(time.perf_counter() - t1)
    print(f"{steps} steps: waited for data {1e3 * np.mean(waits):.1f} ms/step (max {1e3 * max(waits):.1f}), "
          f"step {1e3 * np.mean(runs):.0f} ms/step; data wait {100 * sum(waits) / (sum(waits) + sum(runs)):.2f} % "
          f"of the loop; {batch / np.mean(runs):.1f} img/s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=2, help="timed passes over the folder")
    p.add_argument("--folder", default=None, help="where to write the JPEGs (default: a temp dir)")
    p.add_argument("--trainer-wait", metavar="ARCH", default=None,
                   help="time the trainer's data wait against its train step for ARCH instead")
    p.add_argument("--batch", type=int, default=16, help="--trainer-wait: batch size")
    p.add_argument("--steps", type=int, default=6, help="--trainer-wait: timed steps after the first")
    a = p.parse_args(argv)
    if a.images < 32 or a.size < 8 or a.batch < 1 or a.steps < 1:
        sys.exit("pipeline: --images must be ≥ 32, --size ≥ 8, --batch and --steps ≥ 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.folder or tmp)
        if a.trainer_wait:
            import flaxnets

            if a.trainer_wait not in flaxnets.list_models():
                sys.exit(f"pipeline: unknown model {a.trainer_wait!r}")
            for split, n in (("train", a.images), ("val", 32)):
                for c in range(2):
                    make_jpegs(root / split / f"c{c}", n // 2, seed=c + (0 if split == "train" else 10))
            trainer_wait(root, a.trainer_wait, a.batch, a.steps, a.size if a.size != 224 else None)
            return
        paths = make_jpegs(root, a.images)
        sides = [min(__import__("PIL.Image").Image.open(q).size) for q in paths[:64]]
        print(f"{len(paths)} JPEGs, shorter side {min(sides)}–{max(sides)} px, "
              f"mean {np.mean([q.stat().st_size for q in paths]) / 1024:.0f} KiB")
        cores = os.cpu_count() or 1
        variants = (("trainer: uint8 out (normalised on device), bilinear", False, False),
                    ("float32 normalised on the host, bilinear", True, False),
                    ("uint8 out, antialiased resize", False, True))
        for name, normalize, antialias in variants:
            for threads in sorted({1, cores}):
                wall, cpu = rate(paths, a.size, threads, a.epochs, normalize, antialias)
                print(f"{name}, threads {threads}: {wall:.0f} images/s wall, "
                      f"{cpu:.0f} images per CPU-second (per core)", flush=True)


if __name__ == "__main__":
    main()
