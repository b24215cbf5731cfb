"""The registry API: names, globbing, metadata, close-match errors, overrides."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import flaxnets
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
