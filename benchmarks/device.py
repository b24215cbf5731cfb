"""Accelerator checks for issue 13, in priority order (a short loan still yields the headline).

    python benchmarks/device.py            # every section, in order (~15 min on an H200)
    python benchmarks/device.py headline table   # ResNet-50, then the flax table (~9 min)
    python benchmarks/device.py headline   # only ResNet-50 bf16 training
    python benchmarks/device.py --smoke    # every section, tiny, on any machine (CPU: ~minutes)
    python benchmarks/device.py table --models googlenet,seresnet50   # only these models (table, torch)

Sections (each prints its rows as it goes; results also go to ``$OUT/device.json`` if set):
  headline  ResNet-50 bf16 train/eval step, batch 256: img/s, MFU, peak memory, compile s.
  torch     the torch twins of the family representatives, bf16 autocast, channels_last, the same
            batches (a child process, so JAX's allocations do not share its timing).
  digits    the trainer's jitted steps on the embedded digits (its stratified split) fed from
            numpy uint8 arrays: fp32 on CPU vs bf16 on the accelerator; loss curves (every 10
            steps) and test accuracies side by side.
  densenet  DenseNet-121 bf16 train step with and without ``memory_efficient`` (peak memory).
  pmap      the trainer's own train step (``train.parallel``: uint8 batches normalised on the
            device, prefetched two ahead) for ResNet-50 bf16 under ``jax.jit`` vs ``jax.pmap``.
  table     every family representative (bench.py's list) in bf16, batch 128 (nasnetalarge 32),
            last because it is the longest: its rows are saved one by one.

Memory per row is XLA's buffer assignment of the compiled step (``train_xla_mb``: arguments +
outputs + temporaries − aliased), which is the step's own; the allocator's peak
(``process_peak_mb``) only grows over the process. JAX does not preallocate here
(``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless set), so the torch child finds the memory free.

``--smoke`` runs every section with tiny batches, 2 timed steps, small inputs, two table models,
a CIFAR DenseNet, fp32 and a few digits steps: it exercises every code path so that a real
accelerator run does not die on a bug. Only jax, flax, optax, numpy and scikit-learn are
imported (the accelerator machine has no TensorFlow, tfds or ml_collections); the script
checks that at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import REPRESENTATIVES, bench_jax, peak_flops  # noqa: E402

import flaxnets  # noqa: E402

RESULTS: dict = {}
# What a real run uses; --smoke replaces it with SMOKE.
FULL = {"dtype": "bfloat16", "steps": 10, "headline_steps": 20, "size": None, "headline_batch": 256, "table_batch": 128,
        "small_batch": 32, "table_models": None, "densenet": "densenet121", "densenet_batch": 128,
        "pmap_model": "resnet50", "pmap_batch": 256, "digits_epochs": 6, "digits_max_steps": None}
SMOKE = {"dtype": "float32", "steps": 2, "headline_steps": 2, "size": 64, "headline_batch": 2, "table_batch": 2,
         "small_batch": 2, "table_models": ("resnet18", "squeezenet1_1"), "densenet": "densenet40_k12",
         "densenet_batch": 2, "pmap_model": "resnet18", "pmap_batch": 2, "digits_epochs": 1, "digits_max_steps": 3}
CFG = dict(FULL)
# Packages the accelerator machine lacks: nothing here may import them.
ABSENT_THERE = ("tensorflow", "tensorflow_datasets", "ml_collections")


def _trainer_modules():
    """``train.parallel`` and ``train.steps`` without the ``train`` package's ``__init__``, which
    refuses to load without the trainer's whole stack (TensorFlow, tfds, ml_collections); the
    steps themselves need only jax, flax, optax and numpy."""
    import types

    if "train" not in sys.modules:
        pkg = types.ModuleType("train")
        pkg.__path__ = [str(ROOT / "train")]
        sys.modules["train"] = pkg
    from train import parallel, steps

    return parallel, steps


def _save() -> None:
    out = os.environ.get("OUT")
    if out:
        Path(out, "device.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def _size(name: str) -> int:
    native = _native(name)
    return min(native, CFG["size"]) if CFG["size"] else native


def _row(name: str, batch: int, steps: int | None = None, **kw) -> dict:
    size, dtype, steps = _size(name), CFG["dtype"], steps or CFG["steps"]
    ev = bench_jax(name, batch, size, steps, False, dtype, kw or None)
    tr = bench_jax(name, batch, size, steps, True, dtype, kw or None)
    peak = peak_flops(jax.devices()[0].device_kind)
    mfu = 3 * ev["gflops"] * 1e9 * tr["img_s"] / peak if peak and ev.get("gflops") else None
    row = {"model": name, "batch": batch, "size": size, "dtype": dtype, **kw, "eval_img_s": ev["img_s"],
           "train_img_s": tr["img_s"], "eval_compile_s": ev["compile_s"], "train_compile_s": tr["compile_s"],
           "train_xla_mb": tr["total_mb"], "process_peak_mb": tr["peak_mb"], "gflops_per_img": ev["gflops"],
           "mfu": mfu}
    print(json.dumps(row), flush=True)
    return row


def _table_batch(name: str) -> int:
    return CFG["small_batch"] if REPRESENTATIVES.get(name) else CFG["table_batch"]


def _table_models() -> tuple[str, ...]:
    """The representatives, NASNet-A Large last (the longest compile)."""
    return CFG["table_models"] or tuple(sorted(REPRESENTATIVES, key=lambda n: n == "nasnetalarge"))


def headline() -> None:
    RESULTS["headline"] = _row("resnet50", CFG["headline_batch"], CFG["headline_steps"])


def table() -> None:
    """Every representative. ResNet-50's row is the headline's (batch 256) and DenseNet-121's the
    densenet section's plain row, when those ran: the same step, not compiled twice."""
    RESULTS["table"] = []
    for name in _table_models():
        if name == "resnet50" and "headline" in RESULTS:
            continue
        if name == CFG["densenet"] and "densenet" in RESULTS:
            RESULTS["table"].append(RESULTS["densenet"][0])
            continue
        RESULTS["table"].append(_row(name, _table_batch(name)))
        _save()


def torch_peers() -> None:
    """The torch twins, run in a child process (``device.py _torch``) so that the two frameworks'
    allocators and threads stay apart; its rows land in RESULTS["torch"]."""
    out = subprocess.run([sys.executable, __file__, "_torch", json.dumps(CFG)], capture_output=True, text=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    print(out.stdout, end="", flush=True)
    RESULTS["torch"] = rows
    if out.returncode:
        raise RuntimeError(f"torch child exited {out.returncode}: {out.stderr.strip().splitlines()[-1:]}")


def _torch_child(cfg: dict) -> None:
    """Eval and train img/s of each representative's twin: bf16 autocast, channels_last, cuDNN
    autotuning on, SGD with momentum, the JAX rows' batch and size. First steps untimed."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import build_twin

    CFG.update(cfg)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    bf16 = cfg["dtype"] == "bfloat16"
    for name in ("resnet50", *(n for n in _table_models() if n != "resnet50")):
        info = flaxnets.model_info(name)
        if not info.twin:
            continue
        batch = cfg["headline_batch"] if name == "resnet50" else _table_batch(name)
        size, steps = _size(name), cfg["steps"]
        row = {"model": name, "batch": batch, "size": size, "dtype": cfg["dtype"], "framework": "torch"}
        try:
            model = build_twin(name).to(dev).to(memory_format=torch.channels_last)
            x = torch.randn(batch, info.input_size[2], size, size, device=dev).to(memory_format=torch.channels_last)
            y = torch.zeros(batch, dtype=torch.long, device=dev)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def step(train: bool, model=model, opt=opt, x=x, y=y) -> None:
                with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                    if train:
                        opt.zero_grad(set_to_none=True)
                        out = model(x)
                        out = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
                        torch.nn.functional.cross_entropy(out.float(), y).backward()
                        opt.step()
                    else:
                        with torch.no_grad():
                            model(x)

            for mode in ("eval", "train"):
                model.train(mode == "train")
                if dev == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for _ in range(2):
                    step(mode == "train")
                if dev == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(steps):
                    step(mode == "train")
                if dev == "cuda":
                    torch.cuda.synchronize()
                row[f"{mode}_img_s"] = batch * steps / (time.perf_counter() - t0)
                if dev == "cuda":
                    row[f"{mode}_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            del model, opt, x
            if dev == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 - one twin failing must not cost the others
            row["error"] = repr(e)
        print(json.dumps(row), flush=True)


def densenet() -> None:
    RESULTS["densenet"] = [_row(CFG["densenet"], CFG["densenet_batch"], memory_efficient=m) for m in (False, True)]


def pmap() -> None:
    """The trainer's train step (uint8 batches, device normalisation, prefetch) under jit and
    under pmap over every local device, the same batch per device."""
    parallel, steps = _trainer_modules()
    name, per_dev, n = CFG["pmap_model"], CFG["pmap_batch"], jax.local_device_count()
    info = flaxnets.model_info(name)
    size = _size(name)
    shape = (size, size, info.input_size[2])
    model = flaxnets.create_model(name, dtype=jnp.dtype(CFG["dtype"]))
    host_state = steps.init_state(model, optax.sgd(0.01, momentum=0.9), shape)
    out = {}
    for kind in ("jit", "pmap"):
        par = parallel.Parallel(kind, pixel_stats=(info.mean, info.std))
        b = per_dev * (n if kind == "pmap" else 1)
        rng = np.random.default_rng(0)  # the same batches for both (one device: the same losses)
        host = [{"image": rng.integers(0, 256, (b, *shape), np.uint8),
                 "label": rng.integers(0, info.num_classes, b).astype(np.int32)} for _ in range(2)]
        batches = steps.prefetch_to_device((host[i % 2] for i in range(CFG["steps"] + 2)), par.put_batch)
        state, fn, key = par.put_state(host_state), par.train_step(num_classes=info.num_classes), jax.random.PRNGKey(0)
        t0 = time.perf_counter()
        state, m = fn(state, next(batches), key)
        jax.block_until_ready(m)
        first = time.perf_counter() - t0
        state, m = fn(state, next(batches), key)  # a second untimed step: any re-trace (output placement)
        jax.block_until_ready(m)
        t0 = time.perf_counter()
        for batch in batches:
            state, m = fn(state, batch, key)
        loss = par.scalars(m)["loss"]
        out[kind] = {"img_s": b * CFG["steps"] / (time.perf_counter() - t0), "first_step_s": first, "devices": n,
                     "batch": b, "size": size, "dtype": CFG["dtype"], "final_loss": loss}
        print(kind, json.dumps(out[kind]), flush=True)
        if not np.isfinite(loss):
            raise RuntimeError(f"{kind}: non-finite loss {loss}")
    RESULTS["pmap"] = out


def digits(batch: int = 64) -> None:
    """The trainer's steps on the digits (its stratified 1,437 / 360 split, 0–16 → 0–255 uint8,
    upsampled 4× to 32², grey tiled to RGB) fed from numpy: CPU fp32 vs accelerator bf16."""
    parallel, steps = _trainer_modules()
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise RuntimeError("device.py digits: scikit-learn is needed for the embedded digits") from e
    d = load_digits()
    # As train.data.builders._digits_arrays / digits_split_indices (that module needs TensorFlow).
    img = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    img = np.repeat(img.repeat(4, 1).repeat(4, 2), 3, axis=-1)
    labels = d.target.astype(np.int32)
    train_i, test_i = (np.sort(i) for i in train_test_split(np.arange(len(labels)), test_size=360, stratify=labels,
                                                            random_state=0))
    name, epochs = "resnet18", CFG["digits_epochs"]
    info = flaxnets.model_info(name)
    spe = len(train_i) // batch
    total = epochs * spe if CFG["digits_max_steps"] is None else min(epochs * spe, CFG["digits_max_steps"])
    runs = {}
    accel = jax.devices()[0]
    for label, dev, dtype in (("cpu-fp32", jax.devices("cpu")[0], jnp.float32), (f"{accel.platform}-bf16", accel,
                                                                                  jnp.bfloat16)):
        model = flaxnets.create_model(name, num_classes=10, dtype=dtype)
        tx = optax.sgd(optax.cosine_decay_schedule(0.05, epochs * spe), momentum=0.9)
        par = parallel.Parallel("jit", devices=[dev], pixel_stats=(info.mean, info.std))
        state = par.put_state(steps.init_state(model, tx, (32, 32, 3)))
        train_fn, eval_fn = par.train_step(num_classes=10), par.eval_step()

        def host_batches():
            for ep in range(epochs):
                perm = np.random.default_rng(ep).permutation(train_i)
                for k in range(spe):
                    idx = perm[k * batch:(k + 1) * batch]
                    yield {"image": img[idx], "label": labels[idx]}

        losses, t0 = [], time.perf_counter()
        for k, b in enumerate(steps.prefetch_to_device(host_batches(), par.put_batch)):
            if k == total:
                break
            state, m = train_fn(state, b, jax.random.PRNGKey(0))
            losses.append(par.scalars(m)["loss"])
        train_s = time.perf_counter() - t0
        pad = (-len(test_i)) % batch
        idx = np.concatenate([test_i, test_i[:pad]])
        mask = np.concatenate([np.ones(len(test_i)), np.zeros(pad)]).astype(np.float32)
        sums = None
        for k in range(0, len(idx), batch):
            out = eval_fn(state, par.put_batch({"image": img[idx[k:k + batch]], "label": labels[idx[k:k + batch]],
                                                "mask": mask[k:k + batch]}))
            sums = out if sums is None else jax.tree_util.tree_map(lambda a, c: a + c, sums, out)
        s = par.scalars(sums)
        runs[label] = {"device": str(dev), "steps": len(losses), "train_s": train_s,
                       "loss_every_10": losses[::10], "final_loss": losses[-1], "test_acc": s["top1"] / s["count"]}
        print(label, json.dumps(runs[label]), flush=True)
    cpu, acc = runs["cpu-fp32"], runs[f"{accel.platform}-bf16"]
    runs["acc_gap_points"] = 100 * abs(cpu["test_acc"] - acc["test_acc"])
    runs["max_loss_gap_every_10"] = float(np.max(np.abs(np.subtract(cpu["loss_every_10"], acc["loss_every_10"]))))
    print("digits", json.dumps({k: runs[k] for k in ("acc_gap_points", "max_loss_gap_every_10")}), flush=True)
    RESULTS["digits"] = runs


SECTIONS = {"headline": headline, "torch": torch_peers, "digits": digits, "densenet": densenet, "pmap": pmap,
            "table": table}


def _forward_gflops() -> dict[str, float]:
    """Forward GFLOPs per image at each model's default size (flaxnets/data/flops.json: XLA's
    count on the lowered HLO, the same on every backend)."""
    return json.loads((ROOT / "flaxnets" / "data" / "flops.json").read_text())["gflops"]


def render(paths: list[str]) -> str:
    """The markdown table of one or more ``device.json`` files (later files win per row):
    flax vs torch img/s and ratios, compile s, step memory, MFU from flops.json."""
    flax: dict[tuple, dict] = {}
    torch_rows: dict[str, dict] = {}
    kind = ""
    for path in paths:
        res = json.loads(Path(path).read_text())
        kind = res.get("config", {}).get("device_kind", kind)
        for row in [res.get("headline")] + list(res.get("table") or []) + list(res.get("densenet") or []):
            if row and row.get("train_img_s"):
                flax[(row["model"], bool(row.get("memory_efficient")))] = row
        for row in res.get("torch") or []:
            if "error" not in row:
                torch_rows[row["model"]] = row
    peak, gflops = peak_flops(kind), _forward_gflops()
    head = ("| model | batch | eval flax | eval torch | eval ratio | train flax | train torch | train ratio "
            "| train compile s | train MB flax / torch | GFLOPs/img | MFU |")
    lines = [head, "|" + "---|" * 12]

    def num(v, fmt=",.0f"):
        return "–" if v is None else format(v, fmt)

    for (name, eff), r in sorted(flax.items(), key=lambda kv: (list(REPRESENTATIVES).index(kv[0][0])
                                                               if kv[0][0] in REPRESENTATIVES else 99, kv[0][1])):
        t = {} if eff else torch_rows.get(name, {})
        g = gflops.get(name)
        mfu = 3 * g * 1e9 * r["train_img_s"] / peak if g and peak and r["size"] == _native(name) else None
        ratio = {m: r[f"{m}_img_s"] / t[f"{m}_img_s"] if t.get(f"{m}_img_s") else None for m in ("eval", "train")}
        lines.append(" | ".join([
            f"| {name}" + (", `memory_efficient`" if eff else ""), str(r["batch"]), num(r["eval_img_s"]),
            num(t.get("eval_img_s")), f"**{ratio['eval']:.2f}**" if ratio["eval"] else "–", num(r["train_img_s"]),
            num(t.get("train_img_s")), f"**{ratio['train']:.2f}**" if ratio["train"] else "–",
            num(r["train_compile_s"], ".1f"), f"{num(r.get('train_xla_mb'))} / {num(t.get('train_peak_mb'))}",
            num(g, ".2f"), f"{100 * mfu:.1f} %" if mfu else "–"]) + " |")
    missing = [n for n in torch_rows if not any(k[0] == n for k in flax)]
    if missing:
        lines += ["", "Torch twins measured, flax rows not yet: " + ", ".join(
            f"{n} ({num(torch_rows[n]['eval_img_s'])} / {num(torch_rows[n]['train_img_s'])} img/s eval / train, "
            f"batch {torch_rows[n]['batch']})" for n in missing) + "."]
    return "\n".join(lines) + "\n"


def _native(name: str) -> int:
    return flaxnets.model_info(name).input_size[0]


def write_rendered(paths: list[str], doc: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the text between ``<!-- bench:gpu start -->`` and ``<!-- bench:gpu end -->``."""
    text = doc.read_text()
    start, end = "<!-- bench:gpu start -->", "<!-- bench:gpu end -->"
    if start not in text or end not in text:
        sys.exit(f"device.py: {doc} has no {start} … {end} block")
    cmd = "python benchmarks/device.py --render " + " ".join(str(Path(p).relative_to(ROOT)) if Path(p).is_absolute()
                                                              else p for p in paths)
    block = f"{start}\n`{cmd}`\n\n{render(paths)}{end}"
    doc.write_text(text[:text.index(start)] + block + text[text.index(end) + len(end):])


def main(argv: list[str] | None = None) -> None:
    args = list(argv if argv is not None else sys.argv[1:])
    if args[:1] == ["_torch"]:
        _torch_child(json.loads(args[1]))
        return
    if args[:1] == ["--render"]:  # --render FILE... [--write]: the table of earlier runs
        files = [a for a in args[1:] if a != "--write"]
        if not files or not all(Path(f).is_file() for f in files):
            sys.exit(f"device.py --render: give existing device.json files, got {files}")
        if "--write" in args:
            write_rendered(files)
        else:
            print(render(files), end="")
        return
    smoke = "--smoke" in args
    models = None
    if "--models" in args:
        i = args.index("--models")
        models = tuple(m for m in args.pop(i + 1).split(",") if m) if i + 1 < len(args) else ()
        args.pop(i)
        if not models:
            sys.exit("device.py: --models needs a comma-separated list of registered names")
        unknown = [m for m in models if m not in flaxnets.list_models()]
        if unknown:
            sys.exit(f"device.py: --models: unknown model(s) {unknown}")
    names = [a for a in args if a != "--smoke"] or list(SECTIONS)
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        sys.exit(f"device.py: unknown section(s) or option(s) {bad}; "
                 f"choose from {list(SECTIONS)}, --smoke and --models")
    CFG.clear()
    CFG.update(SMOKE if smoke else FULL)
    if models:
        CFG["table_models"] = models
    RESULTS["config"] = {"smoke": smoke, **CFG, "devices": [str(d) for d in jax.devices()],
                         "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__}
    print(f"devices: {jax.devices()}" + (" (smoke)" if smoke else ""), flush=True)
    failed = []
    for n in names:
        t0 = time.perf_counter()
        try:
            SECTIONS[n]()
        except Exception as e:  # noqa: BLE001 - a failing section must not cost the later ones
            RESULTS[f"{n}_error"] = repr(e)
            failed.append(n)
            print(f"{n} failed: {e!r}", flush=True)
        print(f"[{n}: {time.perf_counter() - t0:.0f} s]", flush=True)
        _save()
    leaked = [m for m in ABSENT_THERE if m in sys.modules]
    if leaked:
        print(f"device.py imported {leaked}, which the accelerator machine lacks", flush=True)
    if failed or leaked:
        sys.exit(1)


if __name__ == "__main__":
    main()
