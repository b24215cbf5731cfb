"""Warm starts, fine-tuning and weight averaging (train/warmstart.py, optim freeze/lr_mult, EMA).

Fast tests work on parameter trees and one tiny model; the two end-to-end runs (a converted
twin fine-tuned on digits, a run started from another run's workdir) are marked slow.
"""

from __future__ import annotations

import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

import flaxnets
from flaxnets import layers
from train import optim, steps, warmstart
from train.configs.default import get_config


def _constant_tree(shapes, first: int = 0) -> tuple[dict, dict]:
    """Zero-copy arrays of ``shapes`` (broadcast views: a VGG costs no memory), each filled with
    its own id; returns the tree and ``{path: id}``."""
    flat = traverse_util.flatten_dict(shapes)
    ids = {k: first + i for i, k in enumerate(sorted(flat))}
    tree = {k: np.broadcast_to(np.float32(ids[k]), flat[k].shape) for k in flat}
    return traverse_util.unflatten_dict(tree), {"/".join(k): v for k, v in ids.items()}


def _shapes(name: str) -> dict:
    model = flaxnets.create_model(name)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def test_vgg_a_to_d_init_maps_the_stated_layers_and_leaves_the_rest() -> None:
    """VGG Sec. 3.1: D's conv1_1, conv2_1, conv3_1, conv3_2 and fc6–fc8 come from A, the rest stays."""
    from train.configs import vgg_from_a

    cfg = vgg_from_a.get_config("vgg16")
    src, src_ids = _constant_tree(_shapes("vgg11"), first=1000)
    tgt, tgt_ids = _constant_tree(_shapes("vgg16"))
    source = warmstart.Source(src, "vgg11", 1000, "net A")
    out, rep = warmstart.match(tgt, source, arch="vgg16", num_classes=1000,
                               mapping=warmstart.parse_map(cfg.init_map))
    pairs = {"features.0": "features.0", "features.5": "features.3", "features.10": "features.6",
             "features.12": "features.8", "classifier.0": "classifier.0", "classifier.3": "classifier.3",
             "classifier.6": "classifier.6"}
    expect = {f"params/{d}/{leaf}": f"params/{s}/{leaf}" for d, s in pairs.items() for leaf in ("kernel", "bias")}
    assert sorted(rep.loaded) == sorted(expect) and rep.reset == [] and rep.unused == []
    assert len(rep.random) == len(tgt_ids) - len(expect) == 18
    for name, value in traverse_util.flatten_dict(out, sep="/").items():
        want = src_ids[expect[name]] if name in expect else tgt_ids[name]
        assert np.all(value == want), name
    # Without the map only the identically named, same-shaped tensors load (conv1 and the FCs).
    _, plain = warmstart.match(tgt, source, arch="vgg16", num_classes=1000)
    assert {n.split("/")[1] for n in plain.loaded} == {"features.0", "classifier.0", "classifier.3", "classifier.6"}


def test_init_map_precedence_and_bad_entries() -> None:
    mapping = warmstart.parse_map(("layer1=stage1", "layer1/0=first", "*=", "fc=head"))
    assert warmstart.map_module("layer1/0/conv1", mapping) == "first/conv1"  # longest prefix
    assert warmstart.map_module("layer1/1/conv1", mapping) == "stage1/1/conv1"
    assert warmstart.map_module("fc", mapping) == "head"  # exact beats the "*" glob
    assert warmstart.map_module("conv1", mapping) is None  # dropped
    assert warmstart.map_module("conv1", []) == "conv1"
    with pytest.raises(warmstart.WarmStartError, match="SOURCE=TARGET"):
        warmstart.parse_map(("features.3",))


class _Tiny(nn.Module):
    """Conv + BatchNorm + Dense: the smallest model with every kind of variable the EMA averages."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3), name="conv")(x)
        x = layers.batch_norm(train)(name="bn")(x)
        return nn.Dense(3, name="fc")(jnp.mean(nn.relu(x), axis=(1, 2)))


def test_ema_equals_hand_computed_average() -> None:
    """Params and BatchNorm statistics: ema_t = d_t·ema_{t−1} + (1 − d_t)·w_t, d_t = min(d, (1+t)/(10+t))."""
    model, decay, warmup = _Tiny(), 0.9, "tf"
    state = steps.init_state(model, optax.sgd(0.5, 0.9), (6, 6, 2), seed=0, ema=True)
    fn = jax.jit(lambda s, b, r: steps.train_step(s, b, r, num_classes=3, ema_decay=decay, ema_warmup=warmup))
    rng = np.random.default_rng(0)
    ema = {"params": state.params, "batch_stats": state.batch_stats}
    for t in range(4):
        batch = {"image": rng.standard_normal((4, 6, 6, 2)).astype(np.float32), "label": np.arange(4) % 3}
        state, _ = fn(state, batch, jax.random.PRNGKey(1))
        d = min(decay, (1 + t) / (10 + t))
        ema = jax.tree_util.tree_map(lambda e, w, d=d: d * np.asarray(e) + (1 - d) * np.asarray(w), ema,
                                     {"params": state.params, "batch_stats": state.batch_stats})
    got = {"params": state.ema_params, "batch_stats": state.ema_batch_stats}
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ema), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(state.ema_params["fc"]["kernel"], state.params["fc"]["kernel"])
    np.testing.assert_allclose(steps.ema_decay_at(5, 0.9999, "none"), 0.9999)
    np.testing.assert_allclose(steps.ema_decay_at(0, 0.9999, "timm"), 0.0)  # timm: a copy at first
    np.testing.assert_allclose(steps.ema_decay_at(999, 0.9999, "timm"), 1 - 1000 ** -0.75, rtol=1e-6)


class _BNDropBN(nn.Module):
    """BatchNorm → dropout 0.5 → ×2 + 1 → BatchNorm: what the second one sees depends on
    whether dropout runs (the network trained) or not (the network evaluated)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = layers.batch_norm(train)(name="bn1")(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        x = layers.batch_norm(train)(name="bn2")(2.0 * x + 1.0)
        return nn.Dense(3, name="fc")(jnp.mean(x, axis=(1, 2)))


def test_precise_bn_gives_population_statistics_of_the_evaluated_network() -> None:
    """PreciseBN over two batches of different means: bn1 gets the mean and variance of their
    union (not the mean of the batch variances), bn2 those of 2·bn1(x) + 1 with bn1 normalising
    each batch by its own statistics and no dropout (mean 1, var 4·v/(v + eps)); the EMA weights
    get theirs; an unknown sample count is refused."""
    from types import SimpleNamespace

    from train import loop, parallel, validate

    state = steps.init_state(_BNDropBN(), optax.sgd(0.1), (4, 4, 2), seed=0, ema=True)
    rng = np.random.default_rng(0)
    images = [rng.normal(m, s, (6, 4, 4, 2)).astype(np.float32) for m, s in ((0.0, 1.0), (3.0, 2.0))]
    batches = [{"image": x, "label": np.arange(6) % 3} for x in images]
    run = SimpleNamespace(state=state, par=parallel.Parallel("jit"), precise_batches=lambda step: iter(batches))
    fns = [run.par.batch_moments_step(), run.par.batch_moments_step(ema=True)]
    loop.precise_batch_stats(run, 0, fns)
    union = np.concatenate(images)
    for stats in (run.state.batch_stats, run.state.ema_batch_stats):
        np.testing.assert_allclose(stats["bn1"]["mean"], union.mean((0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(stats["bn1"]["var"], union.var((0, 1, 2)), rtol=1e-5)
        v = np.stack([x.var((0, 1, 2)) for x in images])
        np.testing.assert_allclose(stats["bn2"]["mean"], np.ones(2), rtol=1e-5)
        np.testing.assert_allclose(stats["bn2"]["var"], (4 * v / (v + 1e-5)).mean(0), rtol=1e-4)
    assert loop.precise_bn_batches(SimpleNamespace(get=lambda k: 8192), 64, 22, state.batch_stats) == 22
    assert loop.precise_bn_batches(SimpleNamespace(get=lambda k: 512), 64, 22, state.batch_stats) == 8
    assert loop.precise_bn_batches(SimpleNamespace(get=lambda k: 512), 64, 22, {}) == 0
    cfg = get_config()
    cfg.precise_bn_samples = -1
    assert any("precise_bn_samples=-1" in p for p in validate.finetune_problems(cfg))


def test_bn_freeze_phase_keeps_every_batchnorm_as_it_is() -> None:
    """bn_freeze_epochs: the last 5 % of 100 steps start at 95; in that phase a step leaves BN
    statistics, scale and bias bit-identical while the conv still trains."""
    from train import loop

    cfg = get_config()
    cfg.bn_freeze_epochs = 0.05
    assert loop.bn_freeze_step(cfg, 10, 100) == 95
    cfg.bn_freeze_epochs = 2.0
    assert loop.bn_freeze_step(cfg, 10, 100) == 80
    state = steps.init_state(_Tiny(), optax.sgd(0.5, 0.9), (6, 6, 2), seed=0)
    batch = {"image": np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype(np.float32),
             "label": np.arange(4) % 3}
    new, _ = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.PRNGKey(0), num_classes=3, frozen_bn=("*",),
                                                   freeze_bn_affine=True))(state, batch)
    for a, b in zip(jax.tree_util.tree_leaves([state.params["bn"], state.batch_stats]),
                    jax.tree_util.tree_leaves([new.params["bn"], new.batch_stats]), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(state.params["conv"]["kernel"], new.params["conv"]["kernel"])


def test_lr_mult_scales_exactly_the_matching_leaves_and_freeze_keeps_no_state() -> None:
    params = {"backbone": {"conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)}},
              "bn": {"scale": jnp.ones(4), "bias": jnp.zeros(4)}, "fc": {"kernel": jnp.ones((4, 3))}}
    grads = jax.tree_util.tree_map(lambda p: jnp.full(p.shape, 0.3), params)

    def updates(**fields):
        c = get_config()
        c.weight_decay, c.momentum = 0.0, 0.9
        for k, v in fields.items():
            setattr(c, k, v)
        tx, _ = optim.make_optimizer(c, params, 10, 100)
        state, total = tx.init(params), jax.tree_util.tree_map(jnp.zeros_like, params)
        for _ in range(3):
            u, state = tx.update(grads, state, params)
            total = jax.tree_util.tree_map(jnp.add, total, u)
        return traverse_util.flatten_dict(total, sep="/"), state

    base, _ = updates()
    mult, _ = updates(lr_mult=("backbone=0.1", "backbone/conv/bias=5"))  # first match wins
    for name in base:
        scale = 0.1 if name.startswith("backbone") else 1.0
        np.testing.assert_allclose(mult[name], scale * base[name], rtol=1e-6, err_msg=name)
    # head_lr_mult scales resnet18's class-logit layer ("fc", 3 outputs) on top of lr_mult.
    head, _ = updates(arch="resnet18", head_lr_mult=0.5, lr_mult=("backbone=0.1", "fc=3"))
    for name in base:
        scale = 0.1 if name.startswith("backbone") else 1.5 if name.startswith("fc") else 1.0
        np.testing.assert_allclose(head[name], scale * base[name], rtol=1e-6, err_msg=name)
    frozen, state = updates(freeze=("backbone", "bn"), weight_decay=1e-2)
    assert all(np.all(frozen[n] == 0) for n in frozen if not n.startswith("fc"))
    assert np.all(frozen["fc/kernel"] != 0)
    # Frozen leaves have no optimiser state (momentum traces only for what trains).
    traces = [x for x in jax.tree_util.tree_leaves(state) if getattr(x, "ndim", 0) > 0]
    assert sorted(x.shape for x in traces) == [(4, 3)]


def test_pattern_that_matches_nothing_is_one_error() -> None:
    from train import validate

    cfg = get_config()
    cfg.arch, cfg.freeze, cfg.lr_mult = "lenet5", ("C1", "nope*"), ("C5=0.1", "x=2")
    params = jax.eval_shape(lambda: flaxnets.create_model("lenet5").init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1))))["params"]
    problems = validate.param_pattern_problems(cfg, params)
    assert len(problems) == 2 and "'nope*'" in problems[0] and "'x'" in problems[1], problems
    cfg.lr_mult, cfg.ema_decay, cfg.init_map = ("fc=-1",), 1.0, ("features.3",)
    bad = " ".join(validate.finetune_problems(cfg))
    assert "lr_mult entry 'fc=-1'" in bad and "ema_decay=1.0" in bad and "init_map entry" in bad


def _digits_config(arch: str, **fields):
    cfg = get_config()
    cfg.arch, cfg.dataset, cfg.recipe = arch, "digits", False
    cfg.batch_size, cfg.learning_rate, cfg.lr_batch_denom = 8, 0.02, 0
    cfg.log_every_steps, cfg.eval_every_epochs, cfg.tensorboard = 100, 100, False
    cfg.steps_per_eval, cfg.max_steps, cfg.compilation_cache = 2, 2, ""
    for k, v in fields.items():
        setattr(cfg, k, v)
    return cfg


def _restore(workdir: pathlib.Path) -> dict:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(str(workdir / "checkpoints"), item_names=("state", "meta")) as mgr:
        return mgr.restore(mgr.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]


@pytest.mark.slow
def test_finetune_converted_twin_with_new_head_freeze_and_lr_mult(tmp_path: pathlib.Path, capsys) -> None:
    """resnet18 from a torchvision state_dict (random weights) on digits: 10-class head reset,
    the frozen stem bit-identical (BatchNorm statistics too), lr_mult 0 keeps layer4 as loaded."""
    torch = pytest.importorskip("torch")
    from conftest import build_twin
    from train import loop

    pth = tmp_path / "resnet18.pth"
    torch.save(build_twin("resnet18").state_dict(), pth)
    cfg = _digits_config("resnet18", init_from=str(pth), freeze=("conv1", "bn1", "layer1.*"),
                         lr_mult=("layer4.*=0",), export_weights="auto", max_steps=3)
    loop.train_and_evaluate(cfg, str(tmp_path / "run"))
    out = capsys.readouterr().out
    total = len(jax.tree_util.tree_leaves(flaxnets.load_weights("resnet18", str(pth), verbose=False)))
    assert f"{total - 2} tensors loaded, 0 kept random, 2 reset" in out, out
    src = traverse_util.flatten_dict(flaxnets.load_weights("resnet18", str(pth), verbose=False), sep="/")
    got = traverse_util.flatten_dict(flaxnets.load_weights("resnet18", str(tmp_path / "run" / "resnet18.safetensors"),
                                                           verbose=False), sep="/")
    frozen = [k for k in src if k.split("/")[1] in ("conv1", "bn1") or k.split("/")[1].startswith("layer1.")]
    assert frozen and all(np.array_equal(src[k], got[k]) for k in frozen)
    layer4 = [k for k in src if k.startswith("params/layer4.")]
    assert all(np.array_equal(src[k], got[k]) for k in layer4)
    assert any(not np.array_equal(src[k], got[k]) for k in src if k.startswith("batch_stats/layer4."))
    trained = [k for k in src if k.startswith("params/layer2.")]
    assert all(not np.array_equal(src[k], got[k]) for k in trained)
    assert got["params/fc/kernel"].shape == (512, 10)


@pytest.mark.slow
def test_run_started_from_another_run_loads_everything_and_resume_never_reinits(
        tmp_path: pathlib.Path, capsys, request) -> None:
    """VGG's multi-scale procedure at tiny scale: a run at another training size started from a
    finished run's workdir loads every tensor (strict); rerun, it resumes its own checkpoint
    (no init line, the source may be gone) and its train step comes from the compilation cache.
    The second run keeps PreciseBN statistics (raw and EMA) before its evaluations."""
    import shutil

    from train import loop

    old = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # cache even fast compiles
    request.addfinalizer(lambda: jax.config.update("jax_persistent_cache_min_compile_time_secs", old))
    a, b = tmp_path / "s256", tmp_path / "s384"
    loop.train_and_evaluate(_digits_config("resnet20", image_size=32), str(a))
    capsys.readouterr()
    cfg = _digits_config("resnet20", image_size=40, init_from=str(a), init_strict=True,
                         compilation_cache=str(tmp_path / "cache"), ema_decay=0.9, precise_bn_samples=16)
    loop.train_and_evaluate(cfg, str(b))
    out = capsys.readouterr().out
    assert "PreciseBN: BatchNorm statistics from 2 training batches (16 images)" in out, out
    src = _restore(a)
    n = len(jax.tree_util.tree_leaves(src["params"])) + len(jax.tree_util.tree_leaves(src["batch_stats"]))
    assert f"init_from {a} (step 2, latest): {n} tensors loaded, 0 kept random, 0 reset" in out, out
    first = _restore(b)
    shutil.rmtree(a)
    cfg.max_steps = 3
    loop.train_and_evaluate(cfg, str(b))
    out = capsys.readouterr().out
    assert "init_from" not in out and "resumed at step 2" in out, out
    assert "loaded from the compilation cache" in out, out
    second = _restore(b)
    assert int(second["step"]) == 3
    # The EMA went on from b's own step-2 checkpoint: ema_3 = d·ema_2 + (1 − d)·w_3, d = min(0.9, 3/12).
    d = min(0.9, 3 / 12)
    leaves = jax.tree_util.tree_leaves
    for e2, e3, w3 in zip(leaves(first["ema_params"]), leaves(second["ema_params"]), leaves(second["params"]),
                          strict=True):
        np.testing.assert_allclose(e3, d * np.asarray(e2) + (1 - d) * np.asarray(w3), rtol=1e-5, atol=1e-6)
