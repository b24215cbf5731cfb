"""SE-Inception compositions (Hu et al., "Squeeze-and-Excitation Networks", Figs. 2-3, Table 2):
``se_inception_v3``, ``se_inception_resnet_v2``, ``se_bn_inception``.

Checks: with the SE option off the parameter tree is exactly the existing twin's; with it
on, SE blocks sit exactly on the intended modules; the derived counts (recomputed here from
branch widths, not from the model) equal the models' counts; and the SE gate really gates
(per-channel, input-dependent, in (0, 1)), on the residual branch before the addition for
Inception-ResNet.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from flaxnets import layers
from flaxnets.models import googlenet as gn
from flaxnets.models import inception_v3 as v3
from flaxnets.models import inception_v4 as v4
from flaxnets.summary import count_params

SE_MODELS = {  # SE name: (plain twin, input side)
    "se_inception_v3": ("inception_v3", 299),
    "se_bn_inception": ("bn_inception", 224),
    "se_inception_resnet_v2": ("inception_resnet_v2", 299),
}


def _shapes(name: str, size: int, **kw) -> dict:
    model = flaxnets.create_model(name, **kw)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


def _flat(tree: dict) -> dict[str, tuple[int, ...]]:
    return {jax.tree_util.keystr(p): leaf.shape for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


# --- parameter trees ------------------------------------------------------------------

@pytest.mark.parametrize("se_name", sorted(SE_MODELS))
def test_se_off_is_exactly_the_twin(se_name: str) -> None:
    base, size = SE_MODELS[se_name]
    off, plain = _shapes(se_name, size, se_reduction=None), _shapes(base, size)
    assert set(off) == set(plain)
    for col in plain:
        assert _flat(off[col]) == _flat(plain[col]), col


def _expected_se_modules(se_name: str) -> list[str]:
    if se_name == "se_inception_v3":
        return ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    if se_name == "se_bn_inception":
        return [f"inception{s}{m}" for s, ms in (("3", "abc"), ("4", "abcde"), ("5", "ab")) for m in ms]
    return (["mixed_5b"] + [f"repeat.{i}" for i in range(10)] + ["mixed_6a"]
            + [f"repeat_1.{i}" for i in range(20)] + ["mixed_7a"] + [f"repeat_2.{i}" for i in range(9)]
            + ["block8"])


@pytest.mark.parametrize("se_name", sorted(SE_MODELS))
def test_se_on_adds_only_se_blocks_on_every_module(se_name: str) -> None:
    base, size = SE_MODELS[se_name]
    on, plain = _flat(_shapes(se_name, size)["params"]), _flat(_shapes(base, size)["params"])
    added = {k: v for k, v in on.items() if k not in plain}
    assert {k: on[k] for k in plain} == plain  # everything else unchanged
    owners = sorted({k.split("['se']")[0] for k in added})
    assert all("['se']" in k for k in added)
    assert owners == sorted(f"['{m}']" for m in _expected_se_modules(se_name))
    for owner in owners:  # FC1 C → C/16 and FC2 C/16 → C, both with biases
        c = on[f"{owner}['se']['fc2']['bias']"][0]
        assert on[f"{owner}['se']['fc1']['kernel']"] == (1, 1, c, c // 16)
        assert on[f"{owner}['se']['fc1']['bias']"] == (c // 16,)
        assert on[f"{owner}['se']['fc2']['kernel']"] == (1, 1, c // 16, c)
    assert not any("Aux" in k for k in added)


# --- derived counts ---------------------------------------------------------------------

def _se_blocks(widths: list[int], r: int = 16) -> int:
    return sum(c * (c // r) + c // r + (c // r) * c + c for c in widths)


def _v3_widths() -> list[int]:
    # Branch output widths of torchvision's Inception3 modules (Szegedy et al. 2016, Figs. 5-7,
    # 10); a max-pool branch passes its input's channels through.
    a = [64 + 64 + 96 + pf for pf in (32, 64, 64)]  # Mixed_5b..5d: 1×1 | 5×5 | 3×3dbl | pool proj
    red_a = 384 + 96 + a[-1]  # Mixed_6a
    c = [192 * 4] * 4  # Mixed_6b..6e
    red_b = 320 + 192 + c[-1]  # Mixed_7a
    e = [320 + 2 * 384 + 2 * 384 + 192] * 2  # Mixed_7b, 7c
    return a + [red_a] + c + [red_b] + e


def _irv2_widths() -> list[int]:
    # Released Inception-ResNet-v2: mixed_5b 96 | 64 | 96 | 64; residual blocks keep their
    # input width; reductions concatenate with a max-pool pass-through.
    c35 = 96 + 64 + 96 + 64
    c17 = 384 + 384 + c35
    c8 = 384 + 288 + 320 + c17
    return [c35] * (1 + 10) + [c17] * (1 + 20) + [c8] * (1 + 9 + 1)


def _bn_inception_widths() -> list[int]:
    # BN paper Figure 5 branch widths (#1×1 + #3×3 + double #3×3 + pool proj, or the pass-through
    # input for the stride-2 modules 3c, 4e). Its printed "output size" column says 576 for
    # 4c/4d and 1024 for 4e, which the branch widths (and the authors' SE-BN-Inception) do not.
    w = [64 + 64 + 96 + 32, 64 + 96 + 96 + 64]
    w.append(160 + 96 + w[-1])
    w += [224 + 96 + 128 + 128, 192 + 128 + 128 + 128, 160 + 160 + 160 + 128, 96 + 192 + 192 + 128]
    w.append(192 + 256 + w[-1])
    w += [352 + 320 + 224 + 128, 352 + 320 + 224 + 128]
    return w


def test_channel_tables() -> None:
    assert _v3_widths() == [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048]
    assert _bn_inception_widths() == [256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024]
    assert len(_irv2_widths()) == 43 and _irv2_widths()[-1] == 2080


@pytest.mark.parametrize("se_name,widths", [
    ("se_inception_v3", _v3_widths()),
    ("se_bn_inception", _bn_inception_widths()),
    ("se_inception_resnet_v2", _irv2_widths()),
])
def test_derived_count_matches_model(se_name: str, widths: list[int]) -> None:
    base, size = SE_MODELS[se_name]
    derived = flaxnets.model_info(base).params + _se_blocks(widths)
    assert count_params(_shapes(se_name, size)["params"]) == derived == flaxnets.model_info(se_name).params


def test_se_inception_v3_count_without_aux() -> None:
    got = count_params(_shapes("se_inception_v3", 299, aux_logits=False)["params"])
    assert got == 23_834_568 + _se_blocks(_v3_widths())


# --- the gate ---------------------------------------------------------------------------

_UNIT = functools.partial(layers.ConvBNAct, conv=layers.make_conv(), norm=layers.batch_norm(False, epsilon=1e-3),
                          padding=0)
_UNIT_BN = functools.partial(layers.ConvBNAct, conv=layers.make_conv(), norm=layers.batch_norm(False))

# (module builder taking se_reduction, input channels): plain and reduction modules of each family.
MODULES = {
    "v3_InceptionA": (lambda se: v3.InceptionA(32, _UNIT, se), 32),
    "v3_InceptionB_reduction": (lambda se: v3.InceptionB(_UNIT, se), 16),
    "v3_InceptionD_reduction": (lambda se: v3.InceptionD(_UNIT, se), 16),
    "v4_Mixed5b": (lambda se: v4.Mixed5b(_UNIT, se), 16),
    "v4_ReductionSplit": (lambda se: v4.ReductionSplit(v4.V2_RED_A, _UNIT, se), 16),
    "bn_inception_3a": (lambda se: gn.BNInceptionModule(*gn.BN_INCEPTION_TABLE["inception3a"], unit=_UNIT_BN,
                                                        se_reduction=se), 32),
    "bn_inception_3c_stride2": (lambda se: gn.BNInceptionModule(*gn.BN_INCEPTION_TABLE["inception3c"],
                                                                unit=_UNIT_BN, strides=2, se_reduction=se), 64),
}


def _gate(with_se: np.ndarray, without: np.ndarray, floor: float = 1e-3, rtol: float = 1e-4) -> np.ndarray:
    """Per (sample, channel) ratio with_se / without (where |without| > floor), checked
    constant over H, W."""
    mask = np.abs(without) > floor
    ratio = np.where(mask, with_se / np.where(mask, without, 1.0), np.nan)
    seen = mask.any(axis=(1, 2))
    gate = np.where(seen, np.nanmean(np.where(seen[:, None, None], ratio, 1.0), axis=(1, 2)), np.nan)
    np.testing.assert_allclose(ratio[mask], np.broadcast_to(gate[:, None, None], ratio.shape)[mask],
                               rtol=rtol, atol=1e-5)
    return gate


@pytest.mark.parametrize("key", sorted(MODULES))
def test_se_gates_module_output(key: str) -> None:
    build, cin = MODULES[key]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, cin)), jnp.float32)
    variables = build(16).init(jax.random.PRNGKey(1), x)
    assert "se" in variables["params"]
    plain_vars = {**variables, "params": {k: v for k, v in variables["params"].items() if k != "se"}}
    with_se = np.asarray(build(16).apply(variables, x))
    without = np.asarray(build(None).apply(plain_vars, x))
    assert with_se.shape == without.shape and with_se.shape[-1] % 16 == 0
    assert not np.allclose(with_se, without, atol=1e-3), "SE must change the module output"
    gate = _gate(with_se, without)
    valid = ~np.isnan(gate)
    assert valid.mean() > 0.5
    g = gate[valid]
    assert np.all(g > 0) and np.all(g < 1), "a sigmoid gate lies in (0, 1)"
    assert np.nanmax(np.abs(gate[0] - gate[1])) > 1e-3, "the gate depends on the input"


def test_residual_se_sits_on_the_branch_before_scaling_and_addition() -> None:
    conv = layers.make_conv(use_bias=True)
    scale = 0.17

    def block(se):
        return v4.ResidualInception(v4.V2_A, scale, _UNIT, conv, activate=False, se_reduction=se)

    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 7, 7, 32)), jnp.float32)
    variables = block(16).init(jax.random.PRNGKey(1), x)
    plain_vars = {**variables, "params": {k: v for k, v in variables["params"].items() if k != "se"}}
    branch_se = (np.asarray(block(16).apply(variables, x)) - np.asarray(x)) / scale
    branch = (np.asarray(block(None).apply(plain_vars, x)) - np.asarray(x)) / scale
    # SE on the branch: out = x + scale·g⊙y, so the branch ratio is a per-channel constant
    # gate in (0, 1). (SE after the addition would scale x too and break this.) The branch is
    # recovered as (out - x) / scale: float32 cancellation, hence the floor and rtol.
    gate = _gate(branch_se, branch, floor=0.05, rtol=2e-3)
    assert np.all(gate > 0) and np.all(gate < 1)
    assert np.max(np.abs(gate - 1)) > 1e-2


def test_se_width_must_divide() -> None:
    class M(v3.nn.Module):
        @v3.nn.compact
        def __call__(self, x):
            return layers.inception_se(x, 16)

    with pytest.raises(ValueError, match="does not divide"):
        M().init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 24)))


# --- registry / CLI ---------------------------------------------------------------------

def test_metadata_and_cli(capsys) -> None:
    from flaxnets.__main__ import main

    v3i, irv2, bni = (flaxnets.model_info(n) for n in ("se_inception_v3", "se_inception_resnet_v2",
                                                        "se_bn_inception"))
    assert v3i.top1 is None and v3i.twin is None and v3i.input_size == (299, 299, 3)
    assert irv2.top1 == pytest.approx(100 - 19.80) and irv2.input_size == (299, 299, 3) and irv2.twin is None
    assert bni.top1 == pytest.approx(100 - 24.23) and bni.input_size == (224, 224, 3)
    assert {i.paper for i in (v3i, irv2, bni)} == {"Squeeze-and-Excitation Networks"}
    assert {i.year for i in (v3i, irv2, bni)} == {2018}
    assert main(["se_*inception*"]) == 0
    out = capsys.readouterr().out
    for info in (v3i, irv2, bni):
        assert info.name in out and f"{info.params:,}" in out
    assert "3 models" in out
