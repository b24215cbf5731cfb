"""Loaded by pytest before any test module: import torch ahead of TensorFlow and JAX.

Importing torchvision (which loads triton's extension) after TensorFlow's shared libraries
segfaults the process; the parity tests need torch in the same process as the data tests.
"""

import importlib.util
import os

# Compile-time economy for the CPU test suite: XLA's LLVM backend at optimisation level 0
# compiles the deep train steps ~30% faster (densenet121: 43 s -> 29 s); it changes no op
# semantics (fast-math stays off), so numerics checks still hold. Set before JAX loads.
# FLAXNETS_TEST_XLA_OPT=1 keeps XLA's defaults.
if os.environ.get("FLAXNETS_TEST_XLA_OPT") != "1":
    _fast = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_fast}".strip()

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
