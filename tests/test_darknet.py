"""DarkNet-53: derived parameter count, Table 1 layout and the leaky-ReLU slope option."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from conftest import build_twin, random_input, random_variables
from flaxnets.models.darknet import DarkNet, darknet_param_count
from flaxnets.summary import count_params


def test_count_is_timm_count_and_model_count() -> None:
    assert darknet_param_count() == 41_609_928  # timm darknet53
    model = flaxnets.create_model("darknet53_paper")
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    assert count_params(shapes["params"]) == darknet_param_count()
    small = dict(depths=(1, 2), widths=(16, 32), stem_width=8, num_classes=5)
    m = DarkNet(**small)
    shapes = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))))
    assert count_params(shapes["params"]) == darknet_param_count(**small)


def test_table1_layout() -> None:
    model = flaxnets.create_model("darknet53")
    p = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))["params"]
    assert p["stem.conv1"]["conv"]["kernel"].shape == (3, 3, 3, 32)
    widths = (64, 128, 256, 512, 1024)
    for i, (depth, c) in enumerate(zip((1, 2, 8, 8, 4), widths, strict=True)):
        assert p[f"stages.{i}.conv_down"]["conv"]["kernel"].shape == (3, 3, c // 2, c)
        blocks = [k for k in p if k.startswith(f"stages.{i}.blocks.")]
        assert len(blocks) == depth
        assert p[f"stages.{i}.blocks.0"]["conv1"]["conv"]["kernel"].shape == (1, 1, c, c // 2)
        assert p[f"stages.{i}.blocks.0"]["conv2"]["conv"]["kernel"].shape == (3, 3, c // 2, c)
    assert p["head.fc"]["kernel"].shape == (1024, 1000)
    # 53 convolutional layers: 52 convs + the connected layer (Table 1).
    kernels = [leaf for leaf in jax.tree_util.tree_leaves(p) if leaf.ndim == 4]
    assert len(kernels) == 52
    assert flaxnets.create_model("darknet53").negative_slope == 0.01
    assert flaxnets.create_model("darknet53_paper").negative_slope == 0.1
    # timm's init for the twin (models/cspnet.py:726, :918); Darknet's γ = 1 for the paper's net.
    twin_model, paper_model = flaxnets.create_model("darknet53"), flaxnets.create_model("darknet53_paper")
    assert (twin_model.zero_init_last, twin_model.head_init_std) == (True, 0.01)
    assert (paper_model.zero_init_last, paper_model.head_init_std) == (False, None)
    # Darknet's [0, 1] pixels, no mean/std (src/image.c); the timm twin keeps timm's mean/std.
    paper, twin = flaxnets.model_info("darknet53_paper"), flaxnets.model_info("darknet53")
    assert (paper.mean, paper.std) == ((0.0,) * 3, (1.0,) * 3) and twin.std != paper.std


def test_zero_init_last_and_head_init() -> None:
    """zero_init_last zeros only conv2's BN scale (each block starts as the identity); the head
    init is N(0, std²) where set, the dense default otherwise."""
    cfg = dict(depths=(1, 2), widths=(16, 32), stem_width=8, num_classes=256)
    x = jnp.zeros((1, 16, 16, 3))
    p = DarkNet(zero_init_last=True, head_init_std=0.01, **cfg).init(jax.random.PRNGKey(0), x)["params"]
    q = DarkNet(**cfg).init(jax.random.PRNGKey(0), x)["params"]
    for block in ("stages.0.blocks.0", "stages.1.blocks.1"):
        assert not np.any(p[block]["conv2"]["bn"]["scale"]) and np.all(p[block]["conv1"]["bn"]["scale"] == 1)
        assert np.all(q[block]["conv2"]["bn"]["scale"] == 1)
    assert abs(float(jnp.std(p["head.fc"]["kernel"])) - 0.01) < 1e-3
    assert abs(float(jnp.std(q["head.fc"]["kernel"])) - 1 / np.sqrt(3 * 32)) < 0.01  # U(±1/√32)


def test_leaky_slope_is_the_only_nonlinearity() -> None:
    """In eval mode, slope 1 makes the whole net affine; 0.1 and 0.01 do not (and differ)."""
    cfg = dict(depths=(1, 1), widths=(8, 16), stem_width=4, num_classes=3)
    rng = np.random.default_rng(0)
    x1, x2 = (jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32) for _ in range(2))
    variables = random_variables(DarkNet(**cfg), x1)

    @jax.jit
    def run(v):
        out = {}
        for slope in (1.0, 0.1, 0.01):
            f = lambda x, s=slope: DarkNet(negative_slope=s, **cfg).apply(v, x)  # noqa: E731
            zero = f(jnp.zeros_like(x1))
            out[slope] = f(x1 + x2) - zero - (f(x1) - zero) - (f(x2) - zero), f(x1)
        return out

    out = run(variables)
    np.testing.assert_allclose(out[1.0][0], 0.0, atol=1e-4)
    assert float(jnp.max(jnp.abs(out[0.1][0]))) > 1e-2
    assert not np.allclose(out[0.1][1], out[0.01][1])


@pytest.mark.parity
@pytest.mark.slow
def test_logits_match_timm_relative() -> None:
    """Same weights → same logits as timm's darknet53, relative to the logit scale.

    The residual stream is never normalised, so with random weights the stage-5
    activations reach ~1e4 and logits ~1e3, where one float32 ulp is already ~1e-4; the
    shared parity test's absolute 1e-4 cannot be met by any fp32 implementation there.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    torch.set_num_threads(2)
    twin = build_twin("darknet53")
    variables = flaxnets.from_torch("darknet53", twin.state_dict())
    model = flaxnets.create_model("darknet53")
    apply = jax.jit(lambda v, x: model.apply(v, x))
    for i, (h, w) in enumerate(((64, 64), (65, 97))):
        x = random_input((2, 3, h, w), seed=i)
        with torch.no_grad():
            expected = twin(torch.from_numpy(x)).numpy()
        got = np.asarray(apply(variables, x.transpose(0, 2, 3, 1)))
        scale = max(1.0, float(np.max(np.abs(expected))))
        assert float(np.max(np.abs(got - expected))) <= 1e-5 * scale
