"""The registry API: names, globbing, metadata, close-match errors, overrides."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from flaxnets import layers
from flaxnets.registry import register_model


def test_list_models_is_sorted_and_globs() -> None:
    names = flaxnets.list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    resnets = flaxnets.list_models("resnet*")
    assert "resnet50" in resnets and all(n.startswith("resnet") for n in resnets)
    assert flaxnets.list_models("no_such_family_*") == []


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50"):
        flaxnets.create_model("resnet5")
    with pytest.raises(ValueError, match="resnet18"):
        flaxnets.model_info("resnet_18")
    with pytest.raises(ValueError, match="list_models"):
        flaxnets.create_model("qqqqqqqqqqqqqq")


def test_model_info_fields() -> None:
    info = flaxnets.model_info("resnet50")
    assert info.family == "resnet" and info.year == 2016
    assert info.input_size == (224, 224, 3) and len(info.mean) == 3
    assert info.params == 25_557_032 and info.twin == "torchvision:resnet50"
    assert flaxnets.model_info("resnet20").num_classes == 10


def test_create_model_overrides_and_dtype() -> None:
    model = flaxnets.create_model("resnet20", num_classes=3, dtype=jnp.bfloat16, zero_init_last=True)
    assert model.num_classes == 3 and model.dtype == jnp.bfloat16 and model.zero_init_last
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    out = jax.eval_shape(lambda v: model.apply(v, x), variables)
    assert out.shape == (1, 3) and out.dtype == jnp.float32
    with pytest.raises(TypeError):
        flaxnets.create_model("resnet20", not_a_field=1)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_model("resnet18", lambda **kw: None, family="x", paper="x", year=2000)


def test_cli_table_and_bad_name(capsys) -> None:
    from flaxnets.__main__ import main

    assert main(["resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "resnet50" not in out
    assert main(["--summary", "resnet5"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_features_only_stops_early_and_takes_classifier_variables() -> None:
    """features_only init stops at the last requested map; the classifier's variables apply as they are."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 32, 32, 3)), jnp.float32)
    model = flaxnets.create_model("resnet20")
    variables = model.init(jax.random.PRNGKey(0), x)
    feats = flaxnets.create_model("resnet20", features_only=True, out_indices=(0, 2))
    own = jax.eval_shape(lambda: feats.init(jax.random.PRNGKey(0), x))
    assert "layer2.0" in own["params"] and "layer3.0" not in own["params"] and "fc" not in own["params"]
    stem, layer2 = feats.apply(variables, x)
    assert stem.shape == (2, 32, 32, 16) and layer2.shape == (2, 16, 16, 32)
    with layers.collect_features() as maps:  # the same maps inside the classifier's own forward
        logits = model.apply(variables, x)
    np.testing.assert_allclose(np.asarray(maps["layer2"]), np.asarray(layer2), rtol=1e-6, atol=1e-6)
    pooled = flaxnets.create_model("resnet20", num_classes=0).apply(variables, x)
    fc = variables["params"]["fc"]
    np.testing.assert_allclose(np.asarray(pooled @ fc["kernel"] + fc["bias"]), np.asarray(logits), atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        flaxnets.create_model("resnet20", features_only=True, out_indices=(7,))
    with pytest.raises(ValueError, match="features_only"):
        flaxnets.create_model("resnet20", out_indices=(1,))


def test_frozen_batch_norm_per_module() -> None:
    """BatchNorms under the frozen globs use and keep their running statistics in training."""
    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 32, 32, 3)), jnp.float32)
    model = flaxnets.create_model("resnet20")
    variables = model.init(jax.random.PRNGKey(0), x)
    stats = variables["batch_stats"]
    with layers.frozen_batch_norm(["bn1", "layer1*"]):
        _, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
    new = upd["batch_stats"]
    chex.assert_trees_all_equal(new["bn1"], stats["bn1"])
    chex.assert_trees_all_equal(new["layer1.2"], stats["layer1.2"])
    assert np.any(np.asarray(new["layer2.0"]["bn1"]["mean"]) != np.asarray(stats["layer2.0"]["bn1"]["mean"]))
    # Frozen: the stem's output is the eval-mode output (running statistics), not batch statistics.
    with layers.frozen_batch_norm(["bn1"]), layers.collect_features(["relu"]) as frozen:
        model.apply(variables, x, train=True, mutable=["batch_stats"])
    with layers.collect_features(["relu"]) as evald:
        model.apply(variables, x, train=False)
    with layers.collect_features(["relu"]) as trained:
        model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(np.asarray(frozen["relu"]), np.asarray(evald["relu"]))
    assert not np.allclose(np.asarray(trained["relu"]), np.asarray(evald["relu"]))
