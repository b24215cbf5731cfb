"""from_torch: generic conversion, error reporting, no torch import for numpy input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import flaxnets


def _numpy_state_dict(name: str) -> dict[str, np.ndarray]:
    """A state dict in torch layout built from the flax shapes (no torch needed)."""
    import jax
    import jax.numpy as jnp
    from flax import traverse_util

    model = flaxnets.create_model(name)
    h, w, c = flaxnets.model_info(name).input_size
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, h, w, c))))
    names = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    rng = np.random.default_rng(0)
    out = {}
    for path, s in traverse_util.flatten_dict(shapes).items():
        shape = s.shape
        if path[-1] == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape[::-1]
        out[".".join(path[1:-1]) + "." + names[path[-1]]] = rng.standard_normal(shape).astype(np.float32)
    return out


def test_numpy_state_dict_roundtrip_layouts() -> None:
    sd = _numpy_state_dict("resnet20")
    variables = flaxnets.from_torch("resnet20", sd)
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], sd["fc.weight"].T)
    np.testing.assert_array_equal(variables["batch_stats"]["bn1"]["var"], sd["bn1.running_var"])
    np.testing.assert_array_equal(variables["params"]["layer2.0"]["bn2"]["scale"], sd["layer2.0.bn2.weight"])


def test_errors_list_missing_unexpected_and_misshaped_keys() -> None:
    sd = _numpy_state_dict("resnet20")
    del sd["layer1.0.conv1.weight"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["fc.bias"] = np.zeros(11, np.float32)
    sd["bn1.num_batches_tracked"] = np.zeros((), np.int64)  # ignored, as in torch checkpoints
    with pytest.raises(ValueError) as err:
        flaxnets.from_torch("resnet20", sd)
    msg = str(err.value)
    assert "missing (1): layer1.0.conv1.weight" in msg
    assert "unexpected (1): extra.weight" in msg
    assert "fc.bias: torch (11,) vs flax (10,)" in msg


def test_num_classes_override_for_finetuned_twins() -> None:
    sd = _numpy_state_dict("resnet20")
    sd["fc.weight"] = np.zeros((4, 64), np.float32)
    sd["fc.bias"] = np.zeros(4, np.float32)
    variables = flaxnets.from_torch("resnet20", sd, num_classes=4)
    assert variables["params"]["fc"]["kernel"].shape == (64, 4)


def test_numpy_input_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np, flaxnets\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_interop import _numpy_state_dict\n"
        "flaxnets.from_torch('resnet20', _numpy_state_dict('resnet20'))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
