"""Export a model with its variables: TF SavedModel, TFLite, StableHLO (``jax.export``).

``export(name, variables, path, format=...)`` writes ``lambda x: model.apply(variables, x,
train=False)`` — NHWC float32 images in, float32 logits out — for the registered model ``name``
built with the number of classes its ``variables`` carry (:func:`flaxnets.weights.classes_in`):

* ``"saved_model"``: a TF SavedModel directory through :func:`jax.experimental.jax2tf.convert`.
  jax2tf in JAX 0.10 always serializes natively (``native_serialization=False`` is deprecated
  and ignored): the graph holds one ``XlaCallModule`` op with the model's StableHLO, which TF
  runs through XLA. The variables are ``tf.Variable`` objects of a ``tf.Module``; the
  ``serving_default`` signature maps ``images`` (``[None, H, W, C]`` float32) to ``logits``.
* ``"tflite"``: that function converted by ``tf.lite.TFLiteConverter`` (builtin ops, TF ops as a
  fallback): the converter legalizes the ``XlaCallModule``'s StableHLO to TFLite ops. Some ops
  of a symbolic batch (strided slices, e.g. ResNet's option-A shortcut) lower to dynamic StableHLO
  ops TFLite has no kernels for; the export then falls back to batch 1 (with a warning).
* ``"stablehlo"``: a directory: ``model.jax_exported``, the ``jax.export`` serialization of
  ``(variables, images) -> logits`` (the variables are an argument, not embedded constants), and
  ``variables.safetensors`` (a :func:`flaxnets.save_weights` file). :func:`load_stablehlo`
  reloads both; ``model(images)`` runs it.

The batch dimension is symbolic (``b``) unless ``batch_size`` is given. SavedModel and StableHLO
are lowered for all of :data:`PLATFORMS` (``jax.export``'s ``platforms``, jax2tf's
``native_serialization_platforms``; this works on a CPU-only machine): the module keeps the CPU
and the accelerator code paths alike (a ``jax.lax.platform_dependent`` branch keeps each
branch) and picks its platform when it runs. TensorFlow (and jax2tf, which imports it) is
imported only inside the SavedModel and TFLite paths: ``import flaxnets`` never loads it.

``python -m flaxnets.export_table`` exports the smallest model of every family in every
format, reloads each export, compares its logits with flax's and prints the table of EXPORT.md.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import unfreeze

from flaxnets.registry import create_model, model_info

FORMATS = ("saved_model", "stablehlo", "tflite")
PLATFORMS = ("cpu", "cuda", "tpu")  # lowered for all: one artifact runs on CPU, GPU and TPU alike


def _model_fn(name: str, variables: Mapping[str, Any], dtype: Any) -> Callable[[Any, jax.Array], jax.Array]:
    """``(variables, x) -> float32 logits`` of ``name`` with the classes ``variables`` have."""
    from flaxnets.weights import classes_in

    model = create_model(name, num_classes=classes_in(name, variables), dtype=dtype)

    def fn(variables: Any, x: jax.Array) -> jax.Array:
        return model.apply(variables, x, train=False).astype(jnp.float32)

    return fn


def _input_shape(name: str, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    """(H, W, C): ``input_size`` ((H, W) or (H, W, C)) or the model's default input."""
    default = model_info(name).input_size
    if input_size is None:
        return tuple(default)
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        return (*size, default[2])
    if len(size) != 3:
        raise ValueError(f"input_size must be (H, W) or (H, W, C), got {input_size}")
    return size


def _as_dict(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` and ``batch_stats`` as plain nested dicts of float32 numpy arrays (no FrozenDict)."""
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), {c: unfreeze(dict(variables[c]))
                                               for c in ("params", "batch_stats") if c in variables})


# --- StableHLO ----------------------------------------------------------------------------------
STABLEHLO_MODULE = "model.jax_exported"  # in the export directory: jax.export's serialization
STABLEHLO_VARIABLES = "variables.safetensors"  # beside it: flaxnets.save_weights' file


def export_stablehlo(name: str, variables: Mapping[str, Any], *, batch_size: int | None = None,
                     input_size: Sequence[int] | None = None, dtype: Any = jnp.float32,
                     platforms: Sequence[str] = PLATFORMS) -> jax.export.Exported:
    """The :class:`jax.export.Exported` of ``(variables, images) -> logits`` for ``name``.

    The variables are an argument, not constants: embedding them made XLA fold and copy every
    weight (VGG-11: 23 s and 3.8 GB to export, 43 s and 5.7 GB to compile the reload, against
    0.4 s and 6.5 s with arguments).
    """
    h, w, c = _input_shape(name, input_size)
    fn = _model_fn(name, variables, dtype)
    specs = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), _as_dict(variables))
    batch = jax.export.symbolic_shape("b")[0] if batch_size is None else batch_size
    images = jax.ShapeDtypeStruct((batch, h, w, c), jnp.float32)
    return jax.export.export(jax.jit(fn), platforms=tuple(platforms))(specs, images)


class StableHLOModel:
    """A reloaded StableHLO export: ``model(images)`` (or ``.call``) runs it with its variables.

    ``exported`` is the :class:`jax.export.Exported` (``exported.call(variables, images)``,
    ``exported.mlir_module()`` for the StableHLO text); ``variables`` the arrays it takes.
    """

    def __init__(self, exported: jax.export.Exported, variables: dict[str, Any]) -> None:
        self.exported = exported
        self.variables = variables

    def call(self, images: Any) -> jax.Array:
        """Float32 logits of ``images`` ((B, H, W, C) float32)."""
        return self.exported.call(self.variables, images)

    __call__ = call


def load_stablehlo(path: str) -> StableHLOModel:
    """The export in directory ``path`` (``export(..., format="stablehlo")``), ready to ``.call(x)``."""
    from flax import traverse_util

    from flaxnets.weights import read_state

    module = os.path.join(path, STABLEHLO_MODULE)
    if not os.path.isfile(module):
        raise FileNotFoundError(f"{path} is not a flaxnets StableHLO export (no {STABLEHLO_MODULE} in it)")
    with open(module, "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    arrays, _ = read_state(os.path.join(path, STABLEHLO_VARIABLES))
    variables = traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in arrays.items()})
    return StableHLOModel(exported, variables)


# --- TensorFlow ---------------------------------------------------------------------------------
def _tf_module(name: str, variables: Mapping[str, Any], *, batch_size: int | None,
               input_size: Sequence[int] | None, dtype: Any) -> Any:
    """A ``tf.Module`` with the variables as ``tf.Variable``\\ s and a ``serve(images)`` tf.function."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    h, w, c = _input_shape(name, input_size)
    fn = _model_fn(name, variables, dtype)
    poly = [None, "(b, ...)" if batch_size is None else None]
    converted = jax2tf.convert(fn, polymorphic_shapes=poly, with_gradient=False,
                               native_serialization_platforms=PLATFORMS)

    class Exported(tf.Module):
        def __init__(self) -> None:
            super().__init__(name=name)
            self.variables_tree = tf.nest.map_structure(lambda a: tf.Variable(a, trainable=False),
                                                        _as_dict(variables))

        @tf.function(autograph=False, jit_compile=False,
                     input_signature=[tf.TensorSpec((batch_size, h, w, c), tf.float32, name="images")])
        def serve(self, images: Any) -> dict[str, Any]:
            return {"logits": converted(self.variables_tree, images)}

    return Exported()


def _save_tf(module: Any, path: str) -> None:
    import tensorflow as tf

    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def _first_line(error: BaseException) -> str:
    """The line of a converter error that says what failed (TF's messages start with MLIR paths)."""
    text = str(error)
    match = re.search(r"error: ([^\n]*)", text)
    return match.group(1) if match else (text.strip().splitlines() or [type(error).__name__])[0]


def _tflite_bytes(module: Any) -> bytes:
    import tensorflow as tf

    concrete = module.serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


# --- Entry point --------------------------------------------------------------------------------
def export(name: str, variables: Mapping[str, Any], path: str, format: str = "saved_model", *,
           batch_size: int | None = None, input_size: Sequence[int] | None = None,
           dtype: Any = jnp.float32) -> str:
    """Write ``name``'s inference with ``variables`` to ``path`` in ``format``; returns ``path``.

    Args:
      name: registry name (the model is built with the classes ``variables`` have).
      variables: ``{"params": ..., "batch_stats": ...}`` of the model.
      path: SavedModel directory, ``.tflite`` file or StableHLO file.
      format: one of :data:`FORMATS`.
      batch_size: fixed batch; ``None`` exports a symbolic batch dimension.
      input_size: (H, W) or (H, W, C); default ``model_info(name).input_size``.
      dtype: the model's compute dtype (inputs stay float32, logits are float32).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if format == "stablehlo":
        from flaxnets.weights import save_weights

        data = export_stablehlo(name, variables, batch_size=batch_size, input_size=input_size, dtype=dtype)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, STABLEHLO_MODULE), "wb") as f:
            f.write(data.serialize())
        save_weights(os.path.join(path, STABLEHLO_VARIABLES), _as_dict(variables), name)
        return path
    module = _tf_module(name, variables, batch_size=batch_size, input_size=input_size, dtype=dtype)
    if format == "saved_model":
        _save_tf(module, path)
        return path
    try:
        data = _tflite_bytes(module)
    except Exception as e:  # noqa: BLE001 - the converter's errors are of several types
        if batch_size is not None:
            raise
        # A symbolic batch lowers some ops (strided slices, reshapes) to dynamic StableHLO ops
        # TFLite has no kernels for: export batch 1 instead (resize_tensor_input cannot undo it).
        warnings.warn(f"{name}: TFLite cannot take a symbolic batch ({_first_line(e)}); exporting batch 1",
                      stacklevel=2)
        module = _tf_module(name, variables, batch_size=1, input_size=input_size, dtype=dtype)
        data = _tflite_bytes(module)
    with open(path, "wb") as f:
        f.write(data)
    return path
