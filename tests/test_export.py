"""flaxnets.export: every export is reloaded and must give flax's logits (≤ 1e-4, see ``_assert_close``).

SavedModel (``tf.saved_model.load`` + ``serving_default``) for the smallest model of every
family and StableHLO (``load_stablehlo`` + ``.call``) for five of them (``_cases``), at the
smallest input the model takes (``model_info(name).min_size``) and batch 2; the symbolic batch is
run at batch 3 as well for a few models. TFLite (``tf.lite.Interpreter``) for two small models.
One reference forward pass per model serves both formats (the cases are ordered model by model).
"""

from __future__ import annotations

import functools
import gc
import re
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxnets
from flaxnets.export import PLATFORMS, export, export_stablehlo, load_stablehlo
from flaxnets.export_table import family_models, random_variables

TOL = 1e-4
SYMBOLIC = {"lenet5", "resnet20"}  # also run at batch 3: the batch dimension is symbolic
# The quick stage exports these (15 tests, 26 s of CPU); every other family's smallest model is slow
# (3 to 16 s of CPU per case, nasnetamobile about 33; about 4 minutes of CPU for the whole file).
QUICK = {"lenet5", "highway_fc", "nin_cifar10", "resnet20", "squeezenet1_1"}


def _cases() -> list:
    """SavedModel for every family's smallest model; StableHLO for the quick set.

    Both formats lower the same jitted function for the same :data:`PLATFORMS` (jax2tf
    serializes natively through ``jax.export``), so every family's multi-platform lowering is
    tested by its SavedModel case; what StableHLO adds (serialize, deserialize, call on jaxlib)
    does not depend on the model, and the quick set covers it (105 s of CPU saved in the slow stage).
    """
    cases = [(n, f) for n in family_models() for f in ("stablehlo", "saved_model")
             if f == "saved_model" or n in QUICK]
    return [c if c[0] in QUICK else pytest.param(*c, marks=pytest.mark.slow) for c in cases]


@functools.lru_cache(maxsize=1)  # both formats of one model share it
def _reference(name: str) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    """Random variables, inputs (batch 2, and 3 for ``SYMBOLIC``) of the smallest size, flax's logits.

    The variables have ``model.init``'s tree (``jax.eval_shape``) filled with He-normal kernels and
    BatchNorm scales in [0.5, 1) (``export_table.random_variables``): a flax init of a classifier
    gives logits too small for a 1e-4 tolerance to test anything (LeNet-5: a spread of 1.5e-4).
    """
    info = flaxnets.model_info(name)
    model = flaxnets.create_model(name)
    batches = (2, 3) if name in SYMBOLIC else (2,)
    x = np.random.default_rng(0).standard_normal((sum(batches), info.min_size, info.min_size, info.input_size[2]))
    x = x.astype(np.float32)
    variables = random_variables(name)
    logits = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))  # one compile
    assert logits.shape == (sum(batches), info.num_classes)
    assert np.isfinite(logits).all() and np.ptp(logits) > 1e-3, "degenerate logits would prove nothing"
    splits = np.cumsum(batches)[:-1]
    return variables, np.split(x, splits), np.split(logits, splits)


def _assert_close(got: np.ndarray, want: np.ndarray, relative: bool = False) -> None:
    """Max abs difference ≤ 1e-4; ``relative``: relative to the largest logit where that exceeds 1.

    ``relative`` is for TensorFlow's runtimes, which compile the StableHLO with TF's own XLA build
    (TF 2.21), not jaxlib's: random deep residual nets have large logits (DarkNet-53: ~400, where
    float32's epsilon alone is 5e-5), and the two builds' rounding then differs by 1.4e-4.
    StableHLO reloads run on jaxlib and are held to 1e-4 absolute.
    """
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    scale = max(1.0, float(np.abs(want).max())) if relative else 1.0
    assert diff <= TOL * scale, f"max abs logit difference {diff:.2e} > {TOL} x {scale:.3g}"


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_export_reloads_with_flax_logits(name: str, fmt: str, tmp_path) -> None:
    variables, xs, refs = _reference(name)
    size = xs[0].shape[1:3]
    path = str(tmp_path / fmt)
    assert export(name, variables, path, fmt, input_size=size) == path
    if fmt == "stablehlo":
        model = load_stablehlo(path)
        assert model.exported.platforms == PLATFORMS
        assert not isinstance(model.exported.in_avals[-1].shape[0], int)  # symbolic batch
        for x, ref in zip(xs, refs, strict=True):
            _assert_close(np.asarray(model(jnp.asarray(x))), ref)
    else:
        tf = pytest.importorskip("tensorflow")
        del variables
        _reference.cache_clear()  # the last case of this model: free its variables (VGG-11: 0.5 GB)
        gc.collect()  # and the exporter's tf.Module (a reference cycle) before TF loads a second copy
        serve = tf.saved_model.load(path).signatures["serving_default"]
        assert serve.structured_input_signature[1]["images"].shape.as_list() == [None, *xs[0].shape[1:]]
        for x, ref in zip(xs, refs, strict=True):
            _assert_close(serve(images=tf.constant(x))["logits"].numpy(), ref, relative=True)


@pytest.mark.parametrize("name", ["lenet5", pytest.param("resnet20", marks=pytest.mark.slow)])
def test_tflite_matches_flax(name: str, tmp_path) -> None:
    tf = pytest.importorskip("tensorflow")
    variables, xs, refs = _reference(name)
    path = str(tmp_path / "model.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resnet20 falls back to batch 1 (strided-slice shortcut)
        export(name, variables, path, "tflite", input_size=xs[0].shape[1:3])
        interpreter = tf.lite.Interpreter(model_path=path)
    inp = interpreter.get_input_details()[0]
    if name == "lenet5":
        assert inp["shape_signature"][0] == -1  # the symbolic batch survives the conversion
    step = None if inp["shape_signature"][0] == -1 else int(inp["shape"][0])
    for x, ref in zip(xs, refs, strict=True):
        outs = []
        for chunk in ([x] if step is None else np.split(x, len(x) // step)):
            interpreter.resize_tensor_input(inp["index"], chunk.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp["index"], chunk)
            interpreter.invoke()
            outs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
        _assert_close(np.concatenate(outs), ref, relative=True)


def _ops(exported: jax.export.Exported) -> set[str]:
    """StableHLO op names in the module, convolutions with their feature_group_count."""
    text = exported.mlir_module()
    return set(re.findall(r"stablehlo\.[a-z_]+", text)) | set(re.findall(r"feature_group_count = \d+", text))


def test_multi_platform_export_keeps_every_platform_path() -> None:
    """The (cpu, cuda, tpu) module holds what a CPU-only and a CUDA-only export hold: both of
    ``layers.conv_general_dilated``'s formulations (``lax.platform_dependent``) survive."""
    name = "shufflenet_v1_g1_x0_25"  # grouped and depthwise convolutions, the CPU path's cases
    variables = random_variables(name)
    ops = {p: _ops(export_stablehlo(name, variables, input_size=(32, 32), platforms=p))
           for p in [PLATFORMS, ("cpu",), ("cuda",)]}
    assert ops[("cpu",)] | ops[("cuda",)] <= ops[PLATFORMS], ops[("cpu",)] | ops[("cuda",)] - ops[PLATFORMS]


def test_num_classes_and_fixed_batch_come_from_arguments(tmp_path) -> None:
    model = flaxnets.create_model("lenet5", num_classes=7)
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 1)), train=False))(jax.random.key(1))
    path = export("lenet5", variables, str(tmp_path / "m"), "stablehlo", batch_size=2)
    loaded = load_stablehlo(path)
    assert loaded.exported.in_avals[-1].shape == (2, 32, 32, 1)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 1)).astype(np.float32)
    _assert_close(np.asarray(loaded(jnp.asarray(x))), np.asarray(model.apply(variables, x, train=False)))
    with pytest.raises(ValueError, match="shape"):
        loaded(jnp.zeros((3, 32, 32, 1)))  # fixed batch
    # The variables file beside the module is a flaxnets weights file of the 7-class model.
    again = flaxnets.load_weights("lenet5", str(tmp_path / "m" / "variables.safetensors"))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, again["params"], variables["params"]))


def test_bad_format_and_bad_path_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="saved_model, stablehlo, tflite"):
        export("lenet5", {}, str(tmp_path / "x"), "onnx")
    with pytest.raises(FileNotFoundError, match="not a flaxnets StableHLO export"):
        load_stablehlo(str(tmp_path))


def test_import_does_not_load_tensorflow() -> None:
    code = ("import sys, flaxnets, flaxnets.export; from flaxnets import export; "
            "assert callable(export) and 'tensorflow' not in sys.modules, 'tensorflow imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
