"""SENet: SE placement and reduction. (SENet-154 parity runs in tests/test_parity.py: the
twin's BN scales in [0.5, 1) keep it contractive, so it matches to 1e-4 there.)"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import flaxnets
from flaxnets import layers
from flaxnets.models.resnet import Bottleneck
from flaxnets.models.senet import se_layer, se_reduced


def test_every_block_has_se_with_reduction_16() -> None:
    model = flaxnets.create_model("seresnet50")
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    blocks = [k for k in v["params"] if k.startswith("layer")]
    assert len(blocks) == 16
    for k in blocks:
        c = v["params"][k]["conv3"]["kernel"].shape[-1]
        assert v["params"][k]["se"]["fc1"]["kernel"].shape == (1, 1, c, c // 16)
        assert v["params"][k]["se"]["fc2"]["kernel"].shape == (1, 1, c // 16, c)
    assert se_reduced(64) == 8  # timm rounds 64/16 = 4 up to 8 (SE-ResNet-18/34 first stage)
    plain = flaxnets.create_model("resnet50")
    # timm's ResNet zero-inits each block's last BN scale; torchvision's (resnet50) does not.
    assert model.zero_init_last and flaxnets.create_model("senet154").zero_init_last
    assert not plain.zero_init_last
    pv = jax.eval_shape(lambda: plain.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    assert "se" not in pv["params"]["layer1.0"]


def test_se_scales_the_residual_branch_before_the_add() -> None:
    """A closed SE gate (σ → 0) leaves only the shortcut: block(x) = relu(x)."""
    norm = layers.batch_norm(False)
    block = Bottleneck(8, conv=layers.make_conv(), norm=norm, attn=functools.partial(se_layer, dtype=jnp.float32))
    x = jax.nn.relu(jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 5, 32)), jnp.float32))
    v = block.init(jax.random.PRNGKey(0), x, False)
    open_out = block.apply(v, x, False)
    params = jax.tree_util.tree_map(lambda a: a, v["params"])
    params["se"]["fc2"]["bias"] = jnp.full((32,), -100.0)
    closed = block.apply({**v, "params": params}, x, False)
    np.testing.assert_allclose(np.asarray(closed), np.asarray(x), atol=1e-6)
    assert not np.allclose(np.asarray(open_out), np.asarray(x), atol=1e-3)
