"""Inception family: derived parameter counts, the aux-classifier contract, paper options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flaxnets
from conftest import cheap_jit, random_variables
from flaxnets import layers
from flaxnets.models import googlenet as gn
from flaxnets.models import inception_v4 as v4
from flaxnets.summary import count_params


def _params(name: str, size: int, **kw) -> int:
    model = flaxnets.create_model(name, **kw)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return count_params(shapes["params"])


def _shapes(name: str, size: int, **kw) -> dict:
    model = flaxnets.create_model(name, **kw)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


# --- parameter counts -------------------------------------------------------------------

@pytest.mark.parametrize("name,size,with_aux,without_aux", [
    ("googlenet", 224, 13_004_888, 6_624_904),
    ("inception_v3", 299, 27_161_264, 23_834_568),
])
def test_twin_counts_with_and_without_aux(name: str, size: int, with_aux: int, without_aux: int) -> None:
    assert _params(name, size) == with_aux
    assert _params(name, size, aux_logits=False) == without_aux


def test_googlenet_table_formula_reproduces_torchvision() -> None:
    # The Table-1 formula, in torchvision's form, gives torchvision's exact counts: it is a
    # faithful reading of the table, so its paper form is trusted for googlenet_paper.
    assert gn.googlenet_param_count(paper=False, aux=True) == 13_004_888
    assert gn.googlenet_param_count(paper=False, aux=False) == 6_624_904


def test_googlenet_paper_derived_count() -> None:
    no_aux = gn.googlenet_param_count(paper=True, aux=False)
    assert _params("googlenet_paper", 224, aux_logits=False) == no_aux == 6_998_552
    assert _params("googlenet_paper", 224) == gn.googlenet_param_count(paper=True, aux=True)
    # The paper's Table 1 column sums to ≈6.8M (weights only, rounded per layer).
    weights_only = no_aux - sum(c for c in (64, 64, 192)) - 1000 - sum(
        sum(cfg) for cfg in gn.GOOGLENET_TABLE.values())
    assert abs(weights_only - 6.8e6) / 6.8e6 < 0.03


def test_googlenet_paper_has_no_batchnorm_and_biased_convs() -> None:
    model = flaxnets.create_model("googlenet_paper")
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3))))
    assert "batch_stats" not in shapes
    assert shapes["params"]["inception3a"]["branch3.1"]["conv"]["kernel"].shape == (5, 5, 16, 32)
    assert shapes["params"]["conv1"]["conv"]["bias"].shape == (64,)


def test_bn_inception_derived_count() -> None:
    assert _params("bn_inception", 224) == gn.bn_inception_param_count() == 11_285_224
    # Figure 5 output depths: 3c → 576, 4e → 1056, 5b → 1024.
    model = flaxnets.create_model("bn_inception")
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3))))
    p = shapes["params"]
    assert p["inception4a"]["branch1"]["conv"]["kernel"].shape[2] == 576
    assert p["inception5a"]["branch1"]["conv"]["kernel"].shape[2] == 1056
    assert p["fc"]["kernel"].shape == (1024, 1000)


def test_inception_resnet_v1_derived_count() -> None:
    assert _params("inception_resnet_v1", 299) == v4.inception_resnet_v1_param_count()
    assert flaxnets.model_info("inception_resnet_v1").params == v4.inception_resnet_v1_param_count()


def test_stage_shapes_follow_the_papers() -> None:
    # Inception-ResNet-v1 (Fig. 15): 35×35×256, 17×17×896, 8×8×1792 at 299.
    model = flaxnets.create_model("inception_resnet_v1")
    x = jnp.zeros((1, 299, 299, 3))
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    _, state = jax.eval_shape(lambda v: model.apply(v, x, capture_intermediates=True,
                                                    mutable=["intermediates"]), shapes)
    inter = state["intermediates"]
    assert inter["repeat.4"]["__call__"][0].shape == (1, 35, 35, 256)
    assert inter["repeat_1.9"]["__call__"][0].shape == (1, 17, 17, 896)
    assert inter["repeat_2.4"]["__call__"][0].shape == (1, 8, 8, 1792)


# --- auxiliary classifiers --------------------------------------------------------------

def test_aux_loss_weights_are_the_papers() -> None:
    assert flaxnets.create_model("googlenet").aux_loss_weight == 0.3
    assert flaxnets.create_model("googlenet_paper").aux_loss_weight == 0.3
    assert flaxnets.create_model("inception_v3").aux_loss_weight == 0.4


@pytest.mark.parametrize("name,heads", [
    ("googlenet", ("aux1", "aux2")), ("googlenet_paper", ("aux1", "aux2")),
    ("inception_v3", ("AuxLogits",)), ("se_inception_v3", ("AuxLogits",)),
])
def test_aux_heads_declared_and_dropped_without_classes(name: str, heads: tuple[str, ...]) -> None:
    info, model = flaxnets.model_info(name), flaxnets.create_model(name)
    assert info.aux_loss_weight == model.aux_loss_weight and info.has_aux
    assert set(heads) < set(info.classifier)
    size = info.input_size[0]
    assert all(h in _shapes(name, size)["params"] for h in heads)
    assert not any(h in _shapes(name, size, num_classes=0)["params"] for h in heads)


def test_no_aux_models_have_no_aux_weight() -> None:
    for name in ("bn_inception", "se_bn_inception", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"):
        assert not flaxnets.model_info(name).has_aux


def test_aux_loss_weight_changes_the_gradient() -> None:
    model = flaxnets.create_model("googlenet", num_classes=5)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 32, 32, 3)), jnp.float32)
    labels = jnp.array([1, 4])
    variables = random_variables(model, x)

    @cheap_jit
    def grads(w: float):
        def loss_fn(p):
            logits, state = model.apply({"params": p, "batch_stats": variables["batch_stats"]}, x, train=True,
                                        mutable=["batch_stats", flaxnets.AUX_COLLECTION],
                                        rngs={"dropout": jax.random.PRNGKey(0)})
            aux = state[flaxnets.AUX_COLLECTION]
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            for head in ("aux1", "aux2"):
                (a,) = aux[head]["logits"]
                loss += w * optax.softmax_cross_entropy_with_integer_labels(a, labels).mean()
            return loss

        return jax.grad(loss_fn)(variables["params"])

    g0, g3 = grads(0.0), grads(model.aux_loss_weight)
    for head in ("aux1", "aux2"):
        assert all(not np.any(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(g0[head]))
        assert all(np.any(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(g3[head]))
    # The aux losses also reach the trunk below the heads.
    k0 = np.asarray(g0["inception3a"]["branch1"]["conv"]["kernel"])
    k3 = np.asarray(g3["inception3a"]["branch1"]["conv"]["kernel"])
    assert not np.allclose(k0, k3)
    # The main head's gradient does not depend on the aux weight.
    np.testing.assert_allclose(np.asarray(g0["fc"]["kernel"]), np.asarray(g3["fc"]["kernel"]), rtol=1e-5)


def _perturb(tree):
    return jax.tree_util.tree_map(lambda a: a + 1.0, tree)


@pytest.mark.parametrize("name,size", [("googlenet", 32), ("inception_v3", 75)])
def test_eval_logits_ignore_aux_params(name: str, size: int) -> None:
    model = flaxnets.create_model(name, num_classes=5)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, size, size, 3)), jnp.float32)
    variables = random_variables(model, x)
    heads = ("aux1", "aux2") if name == "googlenet" else ("AuxLogits",)
    other = {**variables, "params": {**variables["params"], **{h: _perturb(variables["params"][h])
                                                              for h in heads}}}
    apply = jax.jit(lambda v: model.apply(v, x, train=False, mutable=[flaxnets.AUX_COLLECTION]))
    (a, state_a), (b, _) = apply(variables), apply(other)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not state_a, "nothing is sown in eval mode"
    # Perturbing a trunk parameter does change the logits (the comparison can fail).
    trunk = {**variables, "params": {**variables["params"], "fc": _perturb(variables["params"]["fc"])}}
    assert not np.allclose(np.asarray(apply(trunk)[0]), np.asarray(a))


def test_inception_v3_aux_sown_in_train_only() -> None:
    model = flaxnets.create_model("inception_v3")
    x = jnp.zeros((2, 299, 299, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    rngs = {"dropout": jax.random.PRNGKey(0)}
    _, train_state = jax.eval_shape(lambda v: model.apply(
        v, x, train=True, rngs=rngs, mutable=["batch_stats", flaxnets.AUX_COLLECTION]), v)
    assert train_state[flaxnets.AUX_COLLECTION]["aux"][0].shape == (2, 1000)
    _, eval_state = jax.eval_shape(lambda v: model.apply(v, x, train=False,
                                                         mutable=[flaxnets.AUX_COLLECTION]), v)
    assert not eval_state
    with pytest.raises(ValueError, match="17"):  # torchvision cannot train its aux head at 75 either
        small = jnp.zeros((2, 75, 75, 3))
        jax.eval_shape(lambda v: model.apply(v, small, train=True, rngs=rngs, mutable=True), v)


def test_googlenet_paper_aux_needs_4x4_map() -> None:
    model = flaxnets.create_model("googlenet_paper")
    with pytest.raises(ValueError, match="4a"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 160, 160, 3))))
    no_aux = flaxnets.create_model("googlenet_paper", aux_logits=False)
    shapes = jax.eval_shape(lambda: no_aux.init(jax.random.PRNGKey(0), jnp.zeros((1, 160, 160, 3))))
    assert "aux1" not in shapes["params"]


@pytest.mark.parametrize("name", [n for n in flaxnets.list_models() if flaxnets.model_info(n).min_size_no_aux])
def test_min_size_no_aux_trains_without_the_heads(name: str) -> None:
    """``min_size_no_aux`` (what the trainer uses on small images, aux heads off) builds and
    takes a training step's forward there; with the heads it is refused (they need min_size)."""
    info = flaxnets.model_info(name)
    side = info.min_size_no_aux
    assert side < info.min_size
    x = jnp.zeros((1, side, side, 3))
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    model = flaxnets.create_model(name, num_classes=10, aux_logits=False)
    out, _ = jax.eval_shape(lambda: model.init_with_output(rngs, x, train=True))
    assert out.shape == (1, 10)
    with pytest.raises(ValueError, match="aux_logits=False"):
        jax.eval_shape(lambda: flaxnets.create_model(name, num_classes=10).init(rngs, x, train=True))


# --- paper options ----------------------------------------------------------------------

def _grid_before_pool(low_res: int, size: int) -> tuple[int, ...]:
    model = flaxnets.create_model("inception_v3", low_res=low_res, aux_logits=False)
    x = jnp.zeros((1, size, size, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    _, state = jax.eval_shape(lambda v: model.apply(v, x, capture_intermediates=True,
                                                    mutable=["intermediates"]), v)
    return state["intermediates"]["Mixed_7c"]["__call__"][0].shape


def test_inception_v3_low_resolution_stems() -> None:
    # Sec. 7: 151×151 with stride 1 first, 79×79 with stride 1 and no first pool reach the
    # same 8×8 final grid as the 299 network; the standard stem shrinks them further.
    assert _grid_before_pool(0, 299) == (1, 8, 8, 2048)
    assert _grid_before_pool(151, 151) == (1, 8, 8, 2048)
    assert _grid_before_pool(79, 79) == (1, 8, 8, 2048)
    assert _grid_before_pool(0, 151)[1] < 8 and _grid_before_pool(0, 79)[1] < 8
    assert _params("inception_v3", 79, low_res=79) == _params("inception_v3", 299)
    with pytest.raises(ValueError, match="low_res"):
        _params("inception_v3", 299, low_res=100)


def test_residual_scaling() -> None:
    unit = v4._unit(False, jnp.float32)
    conv = layers.make_conv(jnp.float32, use_bias=True)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 5, 5, 16)), jnp.float32)

    def run(scale: float, activate: bool = True):
        block = v4.ResidualInception(v4.V1_A, scale, unit, conv, activate=activate)
        v = block.init(jax.random.PRNGKey(0), x)
        v = {**v, "params": {**v["params"], "conv2d": {**v["params"]["conv2d"],
                                                       "bias": jnp.ones(16)}}}
        return np.asarray(block.apply(v, x))

    np.testing.assert_allclose(run(0.0), np.maximum(np.asarray(x), 0.0))
    np.testing.assert_allclose(run(0.0, activate=False), np.asarray(x))
    assert not np.allclose(run(0.17), run(0.0))
    model = flaxnets.create_model("inception_resnet_v2")
    assert model.scales == (0.17, 0.10, 0.20)
