"""Registry-wide tests, parametrized over every registered model.

Shapes, parameter counts and the anatomy (pooled features, classifier paths, feature maps)
use ``jax.eval_shape`` (no compilation). The behavioural test compiles two small functions per
structure group (``tests/structure_groups.py``: models that differ only in depth or width run
the same code; the anatomy test pins each model's group; compiled with every repeat count cut
to 2, which keeps the group's signature), train and eval, at the smallest input the architecture
allows, and checks: logits shape and finiteness, a non-zero gradient for every
parameter (auxiliary heads included, through their losses), batch statistics that move in train mode and stay
put in eval mode, and bfloat16 compute with float32 params and statistics.
"""

from __future__ import annotations

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import structure_groups
from flax import traverse_util

import flaxnets
from conftest import FAST_COMPILE, random_variables, small_input_size
from flaxnets import layers
from flaxnets.registry import TOP1_PROTOCOLS
from flaxnets.summary import count_params

ALL = flaxnets.list_models()

# Models whose train-step compilation does not fit a 2-core, 24 GB CI machine (with
# FLAXNETS_HEAVY_TESTS=1, which runs the behaviour test for every model, e.g. on an accelerator host).
_HEAVY = {
    "resnet1202": "XLA CPU compile of the 1202-layer train step took >15 min and >18 GB; "
                  "resnet20…110 are the same module",
}
STRUCTURE = structure_groups.load()
REPRESENTATIVES = frozenset(structure_groups.representatives(STRUCTURE, lambda n: flaxnets.model_info(n).family))


def _behaviour_params():
    """One model per structure group (every model with FLAXNETS_HEAVY_TESTS=1): a deeper or
    wider sibling compiles the same modules for longer (densenet264 93 s against densenet121's
    ~20 s) and can only fail where the group's member fails."""
    if os.environ.get("FLAXNETS_HEAVY_TESTS") == "1":
        return ALL
    names = sorted(REPRESENTATIVES)
    return [pytest.param(n, marks=[pytest.mark.skip(reason=_HEAVY[n])] if n in _HEAVY else []) for n in names]


@pytest.mark.parametrize("name", ALL)
def test_info_is_complete(name: str) -> None:
    info = flaxnets.model_info(name)
    assert info.name == name and info.family and info.paper and 1989 <= info.year <= 2024
    assert len(info.input_size) == 3 and len(info.mean) == len(info.std) == info.input_size[2]
    assert info.params is not None, "every model states its reference (twin, paper or derived) count"
    doc = flaxnets.create_model(name).__class__.__doc__ or ""
    module_doc = __import__(type(flaxnets.create_model(name)).__module__, fromlist=["x"]).__doc__ or ""
    assert doc and module_doc, "family module and model class document their paper"
    # Anatomy: what weight loading, feature extraction and the trainer read instead of probing.
    assert info.num_features and info.num_features > 0
    assert info.classifier and info.first_conv and info.feature_info
    reductions = [f.reduction for f in info.feature_info]
    assert reductions == sorted(reductions) and reductions[0] >= 1
    assert len({f.module for f in info.feature_info}) == len(info.feature_info), "feature names are unique"
    assert 0 < info.crop_pct <= 1 and info.interpolation in ("bilinear", "bicubic", "nearest")
    assert info.aux_loss_weight >= 0 and info.has_aux == (info.aux_loss_weight > 0)
    if info.top1 is not None:
        assert info.top1_protocol, "a published top-1 states how it was measured"
    if info.top1_protocol is not None:
        kind, _, size = info.top1_protocol.rpartition(" ")
        assert kind in TOP1_PROTOCOLS and size.isdigit(), info.top1_protocol


def _param_paths(variables) -> dict[str, tuple]:
    return {"/".join(p[:-1]): v.shape for p, v in traverse_util.flatten_dict(variables["params"]).items()}


def _odd_size(info) -> tuple[int, int]:
    h, w, _ = info.input_size
    return (h + 1 if h % 2 == 0 else h + 2, w + 3 if w % 2 == 0 else w + 2)


@pytest.mark.parametrize("name", ALL)
def test_param_count_and_anatomy(name: str) -> None:
    """Count and dtypes, logits in float32 and bfloat16, then (shapes only) pooled features, the
    classifier paths and the feature maps. Python tracing of the deep nets is the cost, so each
    trace does double duty: ``init_with_output`` gives the bfloat16 logits (and the pooled
    features) with the variables, and the pooled model's trace collects the feature maps at the
    default size, the maps that ``features_only`` returns (it is that model, stopped early)."""
    info = flaxnets.model_info(name)
    h, w, c = info.input_size
    key = jax.random.PRNGKey(0)
    model_bf16 = flaxnets.create_model(name, dtype=jnp.bfloat16)
    init, calls = structure_groups.recorded(lambda: model_bf16.init_with_output(key, jnp.zeros((3, h, w, c))))
    out, variables = jax.eval_shape(_native(init))
    assert out.shape == (3, model_bf16.num_classes)
    # Its structure group (which sibling's behaviour test covers it): `python tests/structure_groups.py`.
    assert [calls.signature(), len(jax.tree_util.tree_leaves(variables["params"]))] == STRUCTURE[name], (
        "module structure changed: refresh tests/structure_groups.json (python tests/structure_groups.py)")
    assert count_params(variables["params"]) == info.params
    for leaf in jax.tree_util.tree_leaves(variables):  # params and BN stats stay float32
        assert leaf.dtype == jnp.float32
    # A structure group's deeper or wider siblings run the member's code (the signature above):
    # they check their own metadata (count, pooled features, classifier, feature maps) on the
    # two init traces; the apply-only traces of code paths (float32 eval, features_only at an
    # odd size, out_indices) run for the member (~40 % of the siblings' 146 s of tracing).
    member = name in REPRESENTATIVES
    model = flaxnets.create_model(name)
    if member:
        out = jax.eval_shape(_native(lambda v: model.apply(v, jnp.zeros((3, h, w, c)), train=False)), variables)
        assert out.shape == (3, model.num_classes) and out.dtype == jnp.float32
    # num_classes=0: the pooled pre-logit features; exactly the classifier modules go.
    pooled = flaxnets.create_model(name, num_classes=0)
    taps = [f.module for f in info.feature_info]

    def pooled_init():
        with layers.collect_features(taps) as maps:
            out, pooled_vars = pooled.init_with_output(key, jnp.zeros((2, h, w, c)))
        return out, pooled_vars, dict(maps)

    out, pooled_vars, maps = jax.eval_shape(_native(pooled_init))
    assert out.shape == (2, info.num_features)
    full, kept = _param_paths(variables), _param_paths(pooled_vars)
    assert all(full.get(p) == s for p, s in kept.items()), "num_classes=0 only removes modules"
    gone = set(full) - set(kept)
    under = {p for p in full if layers.path_matches(p, info.classifier)}
    assert gone == under, f"removed {sorted(gone - under)[:5]}, classifier-only {sorted(under - gone)[:5]}"
    assert all(any(layers.path_matches(p, [c]) for p in gone) for c in info.classifier)
    # classifier[0] outputs the logits (weight loading reads the class count from it).
    assert any(s[-1] == info.num_classes for p, s in full.items() if layers.path_matches(p, info.classifier[:1]))
    # The trainer's class-logit layers (head_lr_mult): classifier[0]'s logit leaves, every one num_classes wide.
    from train.optim import head_mask, param_path

    leaves = {param_path(p): leaf.shape for p, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])}
    marked = {param_path(p) for p, m in jax.tree_util.tree_leaves_with_path(head_mask(variables["params"], name)) if m}
    logits = {p for p, s in leaves.items() if layers.path_matches(p, info.classifier[:1]) and s[-1] == info.num_classes}
    assert logits and logits <= marked and all(leaves[p][-1] == info.num_classes for p in marked), sorted(marked)
    kernel = full.get(info.first_conv)
    assert kernel is not None and len(kernel) == 4 and kernel[2] == c, f"first_conv {info.first_conv}: {kernel}"
    # The stated channels and reductions: at the default size from the pooled trace, and from
    # features_only with the classifier model's variables at an odd non-square size (at the
    # default size where the model takes only that), on the default conv path: on CPU that
    # traces both formulations (lax.platform_dependent), which must agree on every shape.
    _check_maps(info, [maps[t] for t in taps if t in maps], h, w)
    if not member:
        return
    feats = flaxnets.create_model(name, features_only=True)
    hh, ww = (h, w) if info.fixed_size else _odd_size(info)
    _check_maps(info, jax.eval_shape(lambda v: feats.apply(v, jnp.zeros((1, hh, ww, c))), variables), hh, ww)
    first = flaxnets.create_model(name, features_only=True, out_indices=(0,))  # stops after the first map
    (m,) = jax.eval_shape(lambda v: first.apply(v, jnp.zeros((1, h, w, c))), pooled_vars)
    assert m.shape[-1] == info.feature_info[0].channels


def _native(f):
    """``f`` traced on the native conv path: the earlier traces only need shapes, and the CPU
    formulations' shifted multiply-adds trace 2x slower (nasnetamobile: 1.5 vs 3.2 s CPU)."""
    def traced(*args):
        with layers.conv_impl("native"):
            return f(*args)
    return traced


def _check_maps(info, maps: list, hh: int, ww: int) -> None:
    """One map per ``feature_info`` entry, with its channels and ``size / reduction`` up to borders."""
    assert len(maps) == len(info.feature_info)
    for m, f in zip(maps, info.feature_info, strict=True):
        assert m.shape[-1] == f.channels, f"{f.module}: {m.shape} vs {f}"
        for size, got in ((hh, m.shape[1]), (ww, m.shape[2])):  # stride r: size/r up to borders
            assert abs(got - size / f.reduction) <= max(1.0, 0.25 * size / f.reduction), (f, hh, ww, m.shape)


def _aux_logits(state) -> list:
    return jax.tree_util.tree_leaves(state.get(flaxnets.AUX_COLLECTION, {}))


# Convolution path of the behaviour test. Every model runs it on the native path (XLA's
# conv: the GPU/TPU code path, which CPU compiles 2-5x faster than the CPU formulations:
# nasnetamobile's train step 25 s vs 127 s of CPU time). One model per CPU formulation runs it
# on the CPU path too: depthwise + 1x1 (mobilenet_v2), many groups (resnext50_32x4d), few
# groups (alexnet_paper), depthwise (strides 1 and 2) with its own gradient (ghostnet_050). The
# formulations equal lax's conv op by op (tests/test_layers.py), and every twin's parity runs
# on the default (CPU) path (tests/test_parity.py).
_CPU_PATH = ("mobilenet_v2", "resnext50_32x4d", "alexnet_paper", "ghostnet_050")


@pytest.mark.parametrize("name", _behaviour_params())
def test_train_and_eval_behaviour(name: str) -> None:
    """Two compiles per model: grads and BN updates; eval logits and bfloat16 logits."""
    with layers.conv_impl("native"):
        _check_behaviour(name)


@pytest.mark.parametrize("name", _CPU_PATH)
def test_train_and_eval_behaviour_cpu_conv(name: str) -> None:
    with layers.conv_impl("cpu"):
        _check_behaviour(name)


# Repeat counts a structure group's member may be compiled at: every repeat above 2 becomes 2
# (2 keeps the "many" kind, so the signature, i.e. the code run, is the member's; the test checks
# it). XLA's compile time grows with the unrolled blocks (senet154's 50 blocks, nasnetalarge's 18
# cells) and a repeat adds no code, so the group's deeper siblings can fail only where this does.
_DEPTH_FIELDS = ("stage_sizes", "block_config", "depths", "num_cells")


def _shallow_overrides(name: str) -> dict:
    """``create_model`` overrides that cut each repeat count of ``name`` above 2 down to 2."""
    model = flaxnets.create_model(name)
    cut = {}
    for field in _DEPTH_FIELDS:
        value = getattr(model, field, None)
        if isinstance(value, int) and value > 2:
            cut[field] = 2
        elif isinstance(value, tuple) and any(isinstance(v, int) and v > 2 for v in value):
            cut[field] = tuple(min(v, 2) for v in value)
    return cut


def _check_behaviour(name: str) -> None:
    num_classes = 7
    shallow = _shallow_overrides(name)
    model = flaxnets.create_model(name, num_classes=num_classes, **shallow)
    model_bf16 = flaxnets.create_model(name, num_classes=num_classes, dtype=jnp.bfloat16, **shallow)
    size = small_input_size(name)
    if shallow:  # the same code as the registered member: its structure signature
        init, calls = structure_groups.recorded(lambda: model_bf16.init(jax.random.PRNGKey(0), jnp.zeros((1, *size))))
        jax.eval_shape(_native(init))
        assert calls.signature() == STRUCTURE[name][0], f"{name} with {shallow} runs other code"
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, *size)), jnp.float32)
    labels = jnp.array([1, 3])
    # BN scales below 1 keep deep residual nets contractive in eval mode (running statistics
    # (0, 1) do not normalise there): with scales 1, random senet154 is chaotic (a 1e-3 input
    # change moves its logits by ~40 %), and comparing bfloat16 with float32 says nothing.
    variables = random_variables(model, x, bn_scale=(0.4, 0.7))
    params = variables["params"]
    stats = variables.get("batch_stats", {})

    # Two jits, train and eval: XLA's compile time grows faster than the program, so two halves
    # compile faster than one whole (resnet152_v1: 8.0 + 1.75 s against 12.2 s).
    @jax.jit(compiler_options=FAST_COMPILE)
    def train(params, stats):
        def loss_fn(p):
            logits, state = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True,
                mutable=["batch_stats", flaxnets.AUX_COLLECTION], rngs={"dropout": jax.random.PRNGKey(2)},
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            for aux in _aux_logits(state):
                loss += optax.softmax_cross_entropy_with_integer_labels(aux, labels).mean()
            return loss, (logits, state)

        (loss, (logits, state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, logits, state.get("batch_stats", {}), grads

    @jax.jit(compiler_options=FAST_COMPILE)
    def evaluate(params, stats):
        eval_logits, eval_state = model.apply(
            {"params": params, "batch_stats": stats}, x, train=False, mutable=["batch_stats"])
        bf16 = model_bf16.apply({"params": params, "batch_stats": stats}, x, train=False)
        return eval_logits, eval_state, bf16

    loss, logits, new_stats, grads = train(params, stats)
    eval_logits, eval_state, bf16 = evaluate(params, stats)
    assert logits.shape == eval_logits.shape == (2, num_classes)
    chex.assert_tree_all_finite((loss, logits, eval_logits, grads, new_stats))
    zero = [jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
            if not np.any(np.asarray(g))]
    assert not zero, f"parameters with zero gradient: {zero[:10]}"
    if stats:
        moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                       stats, new_stats)
        assert all(jax.tree_util.tree_leaves(moved)), "every BatchNorm statistic moves in train mode"
        chex.assert_trees_all_equal(eval_state.get("batch_stats", stats), stats)
    assert bf16.dtype in (jnp.bfloat16, jnp.float32) and bf16.shape == (2, num_classes)
    chex.assert_tree_all_finite(bf16)
    scale = float(np.max(np.abs(eval_logits)))
    err = float(np.max(np.abs(np.asarray(bf16, np.float32) - eval_logits)))
    assert err <= 0.1 * scale, f"bfloat16 logits within 10 % of the float32 range (error {err:.3g}, range {scale:.3g})"

