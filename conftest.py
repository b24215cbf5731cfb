"""Loaded by pytest before any test module: import torch ahead of TensorFlow and JAX.

Importing torchvision (which loads triton's extension) after TensorFlow's shared libraries
segfaults the process; the parity tests need torch in the same process as the data tests.
"""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
