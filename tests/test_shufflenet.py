"""ShuffleNet v1 (paper-only: derived counts, Table 1 widths, Table 2 complexity) and v2 units."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import flaxnets
from conftest import cheap_jit, random_variables
from flaxnets import layers
from flaxnets.models.shufflenet import V1_CHANNELS, V1_REPEATS, ShuffleV2Unit, v1_widths
from flaxnets.summary import count_params

GROUPS = (1, 2, 3, 4, 8)
SCALES = {1.0: "", 0.5: "_x0_5", 0.25: "_x0_25"}


def _params(name: str, size: int = 224, **kw):
    model = flaxnets.create_model(name, **kw)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return v["params"]


def _v1_count(g: int, stem: int, widths: tuple[int, int, int]) -> int:
    """Closed form: conv+BN stem, ShuffleNet units (Fig. 2 b/c), FC (BN adds 2 per channel)."""
    total = 27 * stem + 2 * stem
    cin = stem
    for i, (c, n) in enumerate(zip(widths, V1_REPEATS, strict=True)):
        for j in range(n):
            mid = c // 4
            g1 = 1 if (i, j) == (0, 0) else g
            out = c - cin if j == 0 else c
            total += cin * mid // g1 + 2 * mid + 9 * mid + 2 * mid + mid * out // g + 2 * out
            cin = c
    return total + cin * 1000 + 1000


def test_v1_table1_widths_at_1x() -> None:
    for g in GROUPS:
        assert v1_widths(g, 1.0) == (24, V1_CHANNELS[g])


@pytest.mark.parametrize("g", GROUPS)
@pytest.mark.parametrize("scale", list(SCALES))
def test_v1_derived_param_counts(g: int, scale: float) -> None:
    name = f"shufflenet_v1_g{g}{SCALES[scale]}"
    stem, widths = v1_widths(g, scale)
    # Every grouped layer must split evenly into g groups.
    assert all(c % (4 * g) == 0 for c in widths) and stem % g == 0 and (widths[0] - stem) % g == 0
    expected = _v1_count(g, stem, widths)
    assert flaxnets.model_info(name).params == expected
    assert count_params(_params(name)) == expected


def test_v1_grouping_and_stride2_concat() -> None:
    p = traverse_util.flatten_dict(_params("shufflenet_v1_g3"))
    # Stage 2's first pointwise layer is not grouped (24 → 60 dense), the rest are.
    assert p[("stage2.0", "gconv1", "kernel")].shape == (1, 1, 24, 60)
    assert p[("stage2.1", "gconv1", "kernel")].shape == (1, 1, 240 // 3, 60)
    # Stride-2 unit: residual branch gives c_out - c_in channels, the pooled input the rest.
    assert p[("stage2.0", "gconv2", "kernel")].shape == (1, 1, 60 // 3, 240 - 24)
    assert p[("stage3.0", "gconv2", "kernel")].shape == (1, 1, 120 // 3, 480 - 240)
    assert p[("stage3.0", "dwconv", "kernel")].shape == (3, 3, 1, 120)


def test_v1_complexity_close_to_table2() -> None:
    # Table 2: ~140 MFLOPs (mult-adds) at 1× for every g. XLA counts mul and add separately
    # and includes BN/ReLU/pooling, so allow a few percent.
    for g in (1, 3, 8):
        macs = flaxnets.summary(f"shufflenet_v1_g{g}", (224, 224, 3)).flops / 2
        assert abs(macs / 140e6 - 1) < 0.08, (g, macs)
    macs = flaxnets.summary("shufflenet_v1_g3_x0_5", (224, 224, 3)).flops / 2
    assert abs(macs / 38e6 - 1) < 0.15, macs


def test_v1_channel_shuffle_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing the shuffle by identity must change the output of a grouped network."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 32, 32, 3)), jnp.float32)
    model = flaxnets.create_model("shufflenet_v1_g3_x0_25", num_classes=4)
    variables = random_variables(model, x)
    a = cheap_jit(model.apply)(variables, x)
    monkeypatch.setattr(layers, "channel_shuffle", lambda y, groups: y)
    b = cheap_jit(model.apply)(variables, x)  # a new jit: traced with the identity
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_v1_init_is_the_authors() -> None:
    """megvii ShuffleNetV1 ``_initialize_weights``: conv σ = 1 / (inputs per group), stem conv
    and classifier σ = 0.01 (not the project's He fan-out: depthwise σ would be √(2/(9·C)))."""
    model = flaxnets.create_model("shufflenet_v1_g3_x0_25", num_classes=10)
    p = traverse_util.flatten_dict(cheap_jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"])
    std = {"/".join(k[:-1]): float(np.std(v)) for k, v in p.items() if k[-1] == "kernel"}
    assert std["conv1.0"] == pytest.approx(0.01, rel=0.2) and std["fc"] == pytest.approx(0.01, rel=0.1)
    kernel = p[("stage3.1", "gconv1", "kernel")]  # 1×1 conv, 3 groups: 120 / 3 inputs per group
    assert kernel.shape[-2] == 40 and std["stage3.1/gconv1"] == pytest.approx(1 / 40, rel=0.1)
    assert std["stage4.1/dwconv"] == pytest.approx(1.0, rel=0.1)  # depthwise: one input per group


def test_v2_unit_channel_split_passes_half_through() -> None:
    """Stride-1 v2 unit: the first half is untouched and lands on the even channels."""
    conv = layers.make_conv()
    norm = layers.batch_norm(False)
    unit = ShuffleV2Unit(16, 1, conv=conv, norm=norm)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, 7, 16)), jnp.float32)
    variables = random_variables(unit, x)
    y = np.asarray(unit.apply(variables, x))
    np.testing.assert_array_equal(y[..., 0::2], np.asarray(x[..., :8]))
    assert not np.allclose(y[..., 1::2], np.asarray(x[..., 8:]))


def test_v2_table5_widths() -> None:
    p = traverse_util.flatten_dict(_params("shufflenet_v2_x1_0"))
    assert p[("stage2.0", "branch1.2", "kernel")].shape == (1, 1, 24, 58)
    assert p[("stage3.1", "branch2.0", "kernel")].shape == (1, 1, 116, 116)
    assert p[("conv5.0", "kernel")].shape == (1, 1, 464, 1024)
    assert {k[0] for k in p if k[0].startswith("stage")} == {
        f"stage{s}.{j}" for s, n in zip((2, 3, 4), (4, 8, 4), strict=True) for j in range(n)}
