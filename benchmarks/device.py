"""Accelerator checks for issue 13, in priority order (a short loan still yields the headline).

    python benchmarks/device.py            # every section, in order
    python benchmarks/device.py headline   # only ResNet-50 bf16 training

Sections (each prints its rows as it goes; results also go to ``$OUT/device.json`` if set):
  headline  ResNet-50 bf16 train/eval step, batch 256: img/s, MFU, peak memory, compile s.
  table     every family representative (bench.py's list) in bf16, batch 128 (nasnetalarge 32).
  densenet  DenseNet-121 bf16 train step with and without ``memory_efficient`` (peak memory).
  pmap      ResNet-50 bf16 train step under ``jax.jit`` vs ``jax.pmap`` over the local devices.
  digits    the trainer's jitted ``train.steps.train_step`` on the embedded digits from numpy
            arrays (no TensorFlow/tfds needed): fp32 on CPU vs bf16 on the accelerator; the
            loss curves and test accuracies side by side.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import REPRESENTATIVES, bench_jax, peak_flops  # noqa: E402

import flaxnets  # noqa: E402

RESULTS: dict = {}


def _save() -> None:
    out = os.environ.get("OUT")
    if out:
        Path(out, "device.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def _row(name: str, batch: int, dtype: str = "bfloat16", **kw) -> dict:
    size = flaxnets.model_info(name).input_size[0]
    ev = bench_jax(name, batch, size, 10, False, dtype, kw or None)
    tr = bench_jax(name, batch, size, 10, True, dtype, kw or None)
    peak = peak_flops(jax.devices()[0].device_kind)
    mfu = 3 * ev["gflops"] * 1e9 * tr["img_s"] / peak if peak and ev.get("gflops") else None
    row = {"model": name, "batch": batch, "dtype": dtype, **kw, "eval_img_s": ev["img_s"], "train_img_s": tr["img_s"],
           "train_compile_s": tr["compile_s"], "train_peak_mb": tr["peak_mb"], "gflops_per_img": ev["gflops"],
           "mfu": mfu}
    print(json.dumps(row), flush=True)
    return row


def headline() -> None:
    RESULTS["headline"] = _row("resnet50", 256)


def table() -> None:
    RESULTS["table"] = []
    for name, small in REPRESENTATIVES.items():
        RESULTS["table"].append(_row(name, 32 if small else 128))
        _save()


def densenet() -> None:
    RESULTS["densenet"] = [_row("densenet121", 128, memory_efficient=m) for m in (False, True)]


def pmap() -> None:
    """Same per-device batch: one jitted step vs the pmapped step (pmean'd grads) on every local device."""
    name, per_dev, n = "resnet50", 256, jax.local_device_count()
    model = flaxnets.create_model(name, dtype=jnp.bfloat16)
    tx = optax.sgd(0.01, momentum=0.9)
    x = jnp.zeros((per_dev, 224, 224, 3))
    y = jnp.zeros((per_dev,), jnp.int32)
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])

    def step(p, s, o, x, y, axis=None):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": s}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new
        (loss, new), g = jax.value_and_grad(loss_fn, has_aux=True)(p)
        if axis:
            g = jax.lax.pmean(g, axis)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), new["batch_stats"], o

    out = {}
    for kind in ("jit", "pmap"):
        args = (v["params"], v["batch_stats"], tx.init(v["params"]))
        if kind == "jit":
            fn, data = jax.jit(step), (x, y)
        else:
            fn = jax.pmap(lambda *a: step(*a, axis="d"), axis_name="d")
            args = jax.device_put_replicated(args, jax.local_devices())
            data = (jnp.stack([x] * n), jnp.stack([y] * n))
        t0 = time.perf_counter()
        args = fn(*args, *data)
        jax.block_until_ready(args)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(10):
            args = fn(*args, *data)
        jax.block_until_ready(args)
        imgs = per_dev * (n if kind == "pmap" else 1) * 10
        out[kind] = {"img_s": imgs / (time.perf_counter() - t0), "first_step_s": compile_s, "devices": n}
        print(kind, json.dumps(out[kind]), flush=True)
    RESULTS["pmap"] = out


def digits(epochs: int = 6, batch: int = 64) -> None:
    """The trainer's train_step on digits (upsampled 4× to 32²) from numpy: CPU fp32 vs accelerator bf16."""
    from train import steps

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("device.py digits: scikit-learn is needed for the embedded digits (pip install scikit-learn)")
    d = load_digits()
    img = (np.round(d.images * (255 / 16)) / 255.0).astype(np.float32)[..., None]
    img = img.repeat(4, 1).repeat(4, 2)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(img))
    train_i, test_i = order[:1437], order[1437:]
    mean, std = img[train_i].mean(), img[train_i].std()
    img = (img - mean) / std
    runs = {}
    for label, dev, dtype in (("cpu-fp32", jax.devices("cpu")[0], jnp.float32),
                              ("accel-bf16", jax.devices()[0], jnp.bfloat16)):
        with jax.default_device(dev):
            model = flaxnets.create_model("resnet18", num_classes=10, dtype=dtype)
            spe = len(train_i) // batch
            tx = optax.sgd(optax.cosine_decay_schedule(0.05, epochs * spe), momentum=0.9)
            state = jax.device_put(steps.init_state(model, tx, (32, 32, 1)), dev)
            step = jax.jit(lambda s, b, r: steps.train_step(s, b, r, num_classes=10))
            losses = []
            for ep in range(epochs):
                perm = np.random.default_rng(ep).permutation(train_i)
                for k in range(spe):
                    idx = perm[k * batch:(k + 1) * batch]
                    state, m = step(state, {"image": img[idx], "label": d.target[idx]}, jax.random.PRNGKey(0))
                    losses.append(float(m["loss"]))
            logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, img[test_i], train=False)
            acc = float((np.asarray(logits).argmax(-1) == d.target[test_i]).mean())
            runs[label] = {"device": str(dev), "loss_every_10": losses[::10], "final_loss": losses[-1],
                           "test_acc": acc}
            print(label, json.dumps(runs[label]), flush=True)
    runs["acc_gap_points"] = 100 * abs(runs["cpu-fp32"]["test_acc"] - runs["accel-bf16"]["test_acc"])
    RESULTS["digits"] = runs


SECTIONS = {"headline": headline, "table": table, "densenet": densenet, "pmap": pmap, "digits": digits}


def main(argv: list[str] | None = None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or list(SECTIONS)
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        sys.exit(f"device.py: unknown section(s) {bad}; choose from {list(SECTIONS)}")
    print(f"devices: {jax.devices()}", flush=True)
    for n in names:
        t0 = time.perf_counter()
        try:
            SECTIONS[n]()
        except Exception as e:  # noqa: BLE001 - a failing section must not cost the later ones
            RESULTS[f"{n}_error"] = repr(e)
            print(f"{n} failed: {e!r}", flush=True)
        print(f"[{n}: {time.perf_counter() - t0:.0f} s]", flush=True)
        _save()


if __name__ == "__main__":
    main()
