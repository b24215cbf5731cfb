"""NASNet-A: parameter count derived from the cell structure (Fig. 2/4, Appendix A), the
mobile 4@1056 network, TF "SAME" padding, and the generic widths against timm's code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import FAST_COMPILE
from flaxnets.models.nasnet import tf_same_pads
from flaxnets.summary import count_params


def _bn(c: int) -> int:
    return 2 * c


def _sep(cin: int, cout: int, k: int, stem: bool = False) -> int:
    """(ReLU, depthwise k×k, pointwise, BN) twice; the stem variant widens in the first."""
    mid = cout if stem else cin
    return cin * k * k + cin * mid + _bn(mid) + mid * k * k + mid * cout + _bn(cout)


def _adjust(cin: int, cout: int) -> int:  # ReLU-1×1-BN
    return cin * cout + _bn(cout)


def _factorized(cin: int, cout: int) -> int:  # two 1×1 paths of cout/2 + BN
    return 2 * cin * (cout // 2) + _bn(cout)


def derived_params(n: int, penultimate: int, stem: int, classes: int = 1000) -> int:
    """Parameters of NASNet-A (N @ penultimate) from the paper's cell description."""
    c = penultimate // 24
    total = 3 * 3 * 3 * stem + _bn(stem)
    # Stem cell 0: adjust the stem conv to c/4; sep 5/7/7/5 (stride 2, three of them on the
    # raw stem output, widening to c/4) and sep 3; 4 combinations concatenated.
    f = c // 4
    total += _adjust(stem, f) + _sep(f, f, 5) + 2 * _sep(stem, f, 7, True) + _sep(stem, f, 5, True)
    total += _sep(f, f, 3)
    prev, cur = stem, 4 * f
    # Stem cell 1 (reduction, previous-previous input = the stem conv via factorized path).
    f = c // 2
    total += _adjust(cur, f) + _factorized(prev, f) + 2 * _sep(f, f, 5) + 2 * _sep(f, f, 7) + _sep(f, f, 3)
    prev, cur = cur, 4 * f
    for stage in range(3):
        f = c * 2**stage
        if stage:  # reduction cell: two adjusts, sep 5/7/7/5 stride 2 and sep 3
            total += _adjust(prev, f) + _adjust(cur, f) + 2 * _sep(f, f, 5) + 2 * _sep(f, f, 7)
            total += _sep(f, f, 3)
            # The next cell's x_prev is the reduction cell's own x_prev (large) or its input
            # (mobile): both are normal-cell outputs of the previous stage, 6 × f/2 wide.
            cur = 4 * f
        for j in range(n):
            # normal cell: adjust both inputs (factorized when x_prev is twice as large),
            # sep 5/3 (comb 0), sep 5/3 (comb 1), sep 3 (comb 4); pools and identities are free.
            total += (_factorized if j == 0 else _adjust)(prev, f) + _adjust(cur, f)
            total += 2 * _sep(f, f, 5) + 3 * _sep(f, f, 3)
            prev, cur = cur, 6 * f
    assert cur == penultimate
    return total + penultimate * classes + classes


def _count(name: str, size: int = 64, **kw) -> int:
    model = flaxnets.create_model(name, **kw)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return count_params(shapes["params"])


def test_derivation_reproduces_the_large_twin() -> None:
    assert derived_params(6, 4032, 96) == 88_753_150 == flaxnets.model_info("nasnetalarge").params


def test_mobile_count_is_derived_and_near_paper() -> None:
    n = derived_params(4, 1056, 32)
    assert n == flaxnets.model_info("nasnetamobile").params == _count("nasnetamobile")
    assert abs(n - 5.3e6) < 0.05e6  # paper Table 3: 5.3M


def test_mobile_structure_and_feature_sizes() -> None:
    model = flaxnets.create_model("nasnetamobile")
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3))))
    params = shapes["params"]
    cells = sorted(k for k in params if k.startswith("cell_") and not k.startswith("cell_stem"))
    assert len(cells) == 12 and {"reduction_cell_0", "reduction_cell_1"} <= set(params)
    assert params["conv0.conv"]["kernel"].shape == (3, 3, 3, 32)
    assert params["last_linear"]["kernel"].shape == (1056, 1000)
    # The first cell of each stage reduces its previous-previous input (factorized path).
    assert "path_1.conv" in params["cell_4"] and "conv_prev_1x1" in params["cell_5"]
    _, state = jax.eval_shape(lambda: model.apply(
        jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), jnp.zeros((1, 224, 224, 3)),
        capture_intermediates=lambda mdl, _: mdl.name in ("cell_3", "cell_7", "cell_11"),
        mutable=["intermediates"]))
    got = {k: v["__call__"][0].shape for k, v in state["intermediates"].items()}
    assert got == {"cell_3": (1, 28, 28, 264), "cell_7": (1, 14, 14, 528), "cell_11": (1, 7, 7, 1056)}


def _reference_wiring(cells_per_stage: int, skip_reduction_layer_input: bool) -> dict[str, tuple[str, str]]:
    """(input, previous-previous input) of every cell, traced with the list logic of TF-slim's
    ``_imagenet_stem`` and ``_build_nasnet_base`` (research/slim/nets/nasnet/nasnet.py) and
    ``nasnet_utils.calc_reduction_layers``; names are ours, "conv0" is the stem conv."""
    num_cells = 3 * cells_per_stage  # TF-slim counts the normal cells of all stages
    reduction_indices = [int(p / 3 * num_cells) for p in (1, 2)]
    wiring, outputs, net = {}, [None, "conv0"], "conv0"
    for i in range(2):
        wiring[f"cell_stem_{i}"] = (net, outputs[-2])
        net = f"cell_stem_{i}"
        outputs.append(net)
    prev_layer = None
    for cell_num in range(num_cells):
        if skip_reduction_layer_input:
            prev_layer = outputs[-2]
        if cell_num in reduction_indices:
            name = f"reduction_cell_{reduction_indices.index(cell_num)}"
            wiring[name] = (net, outputs[-2])
            net = name
            outputs.append(net)
        if not skip_reduction_layer_input:
            prev_layer = outputs[-2]
        wiring[f"cell_{cell_num}"] = (net, prev_layer)
        net = f"cell_{cell_num}"
        outputs.append(net)
    return wiring


@pytest.mark.parametrize("name,skip", [("nasnetalarge", True), ("nasnetamobile", False)])
def test_cell_wiring_matches_tf_slim(name: str, skip: bool) -> None:
    """Each cell's two inputs are the tensors TF-slim feeds it: the registered large model uses
    ``skip_reduction_layer_input=1`` and the mobile one 0 (``large_/mobile_imagenet_config``).
    A small instance (2 cells per stage) keeps the registered wiring; inputs are identified as
    the very tensors the stem conv and the cells returned."""
    import flax.linen as nn

    from flaxnets.models.nasnet import NormalCell, ReductionCell

    model = flaxnets.create_model(name, num_classes=10, num_cells=2, penultimate_filters=192, stem_filters=8)
    seen: dict[str, tuple] = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and isinstance(context.module, (NormalCell, ReductionCell)):
            seen[context.module.name] = (tuple(args) + (None,))[:2], out
        return out

    def trace(x):  # abstract trace: tensors are identified by object identity, nothing runs
        variables = model.init(jax.random.PRNGKey(1), x)
        seen.clear()
        with nn.intercept_methods(record):
            model.apply(variables, x)
        outputs = {k: out for k, (_, out) in seen.items()}
        outputs["conv0"] = seen["cell_stem_0"][0][0]  # the stem conv output feeds stem cell 0

        def which(a) -> str | None:
            hits = [k for k, v in outputs.items() if v is a]
            assert len(hits) <= 1 and (hits or a is None), hits
            return hits[0] if hits else None

        got.update({k: (which(a), which(b)) for k, ((a, b), _) in seen.items()})
        return x

    got: dict[str, tuple] = {}
    jax.eval_shape(trace, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    expected = _reference_wiring(2, skip)
    assert got == expected
    # The two settings differ exactly at the first normal cell after each reduction.
    other = _reference_wiring(2, not skip)
    assert {k for k in expected if expected[k] != other[k]} == {"cell_2", "cell_4"}


def test_tf_same_pads() -> None:
    for size in range(5, 40):
        for k in (3, 5, 7):
            lo, hi = tf_same_pads(size, k, 2)
            assert (size + lo + hi - k) // 2 + 1 == -(-size // 2)  # output ceil(n/2)
            assert hi - lo in (0, 1)  # extra pixel at the end
    assert tf_same_pads(165, 5, 2) == (2, 2) and tf_same_pads(42, 3, 2) == (0, 1)


def test_generic_widths_match_timm_code() -> None:
    """timm's NASNet class built at 6 @ 1056 with a 32-filter stem (the mobile widths; its
    cell count is fixed to 6) gives the same logits as ours with the same settings."""
    torch = pytest.importorskip("torch")
    nasnet = pytest.importorskip("timm.models.nasnet")
    torch.manual_seed(0)
    twin = nasnet.NASNetALarge(num_classes=10, stem_size=32, num_features=1056).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    kw = dict(num_classes=10, num_cells=6, skip_reduction_layer_input=True)  # timm: the large wiring
    variables = flaxnets.from_torch("nasnetamobile", twin.state_dict(), **kw)
    assert count_params(variables["params"]) == sum(p.numel() for p in twin.parameters())
    x = np.random.default_rng(0).standard_normal((2, 3, 45, 51)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    model = flaxnets.create_model("nasnetamobile", **kw)
    # One jit with the cheap-compile options (tests/conftest.py): op-by-op dispatch of the ~2,000
    # ops took 61 s of a CI worker; the options keep every op's semantics.
    apply = jax.jit(lambda v, x: model.apply(v, x), compiler_options=FAST_COMPILE)
    got = apply(variables, x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)


def test_recipe() -> None:
    from train.configs.recipes import recipe_for

    for name in ("nasnetalarge", "nasnetamobile"):
        r = recipe_for(name)
        assert r["optimizer"] == "rmsprop" and r["rmsprop_eps"] == 1.0 and r["label_smoothing"] == 0.1
