"""LeNet-5.

Paper: LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998 — Sec. II.B (architecture, Fig. 2), Table 1 (C3's partial
connections), Appendix A (squashing function ``f(a) = A·tanh(S·a)``, A = 1.7159, S = 2/3)
and Appendix B (initialisation, weights uniform in ±2.4/F_i with F_i the fan-in).

Layers (32×32×1 input): C1 6@5×5 → 28×28; S2 2×2 subsampling → 14×14; C3 16@5×5 with
the Table 1 connection table → 10×10; S4 → 5×5; C5 120@5×5 → 1×1; F6 84; output 10.
Every unit up to F6 passes its weighted sum through the squashing function (Sec. II.B).

Subsampling (S2, S4): the paper adds the four inputs, multiplies by one trainable
coefficient per map and adds one trainable bias per map before squashing. We average
instead of sum (the factor 4 is absorbed by the coefficient; same function class and the
same 2 parameters per map).

Output: the paper's Euclidean RBF units (fixed ±1 codes of 7×12 bitmaps) are replaced by a
plain dense layer of 10 logits (850 params), so the model trains with cross-entropy like
every other model here.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flaxnets import layers
from flaxnets.registry import MNIST_MEAN, MNIST_STD, features, register_model

PAPER = "Gradient-Based Learning Applied to Document Recognition"

# Table 1: for each C3 feature map (column), the S2 maps (rows) it combines.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# Appendix A: f(a) = A tanh(S a) with A = 1.7159 and S = 2/3.
SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0


def squash(x: jax.Array) -> jax.Array:
    """LeNet-5's scaled hyperbolic tangent ``1.7159·tanh(2/3·x)`` (Appendix A)."""
    return SQUASH_A * jnp.tanh(SQUASH_S * x)


def lecun_uniform_init(fan_in: int) -> Any:
    """Appendix B: weights uniform in ``[-2.4/F, 2.4/F]`` for fan-in ``F``."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        bound = 2.4 / fan_in
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def connection_mask(table: tuple[tuple[int, ...], ...] = C3_TABLE, n_in: int = 6) -> np.ndarray:
    """Boolean (inputs, outputs) matrix of Table 1: ``mask[i, j]`` iff map j reads map i."""
    mask = np.zeros((n_in, len(table)), dtype=bool)
    for j, rows in enumerate(table):
        mask[list(rows), j] = True
    return mask


class Subsample(nn.Module):
    """S layer: 2×2 average × trainable coefficient + trainable bias, per map, squashed."""

    window: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        coef = self.param("coef", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        x = layers.avg_pool(x, self.window, self.window)
        return squash(x * coef.astype(self.dtype) + bias.astype(self.dtype))


class PartialConv(nn.Module):
    """Convolution whose output map j reads only the input maps ``table[j]`` (C3).

    Only the connected kernels are parameters: ``kernel`` holds one (k, k) kernel per
    connection, (k, k, #connections), scattered into a dense HWIO kernel at call time.
    """

    table: tuple[tuple[int, ...], ...] = C3_TABLE
    kernel_size: int = 5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, n_in, n_out = self.kernel_size, x.shape[-1], len(self.table)
        conns = [(i, j) for j, rows in enumerate(self.table) for i in rows]
        fan_ins = np.array([k * k * len(self.table[j]) for _, j in conns], np.float32)

        def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
            bound = jnp.asarray(2.4 / fan_ins, dtype)
            return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * bound

        kernel = self.param("kernel", init, (k, k, len(conns)), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (n_out,), jnp.float32)
        ins = np.array([i for i, _ in conns])
        outs = np.array([j for _, j in conns])
        dense = jnp.zeros((k, k, n_in, n_out), jnp.float32).at[:, :, ins, outs].set(kernel)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), dense.astype(self.dtype), (1, 1), "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias.astype(self.dtype)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998, Fig. 2) with Table 1's C3 connections; dense output.

    Accepts only 32×32 inputs: C5 must reduce its input to 1×1 (the paper's design).
    Feature maps: ``C1`` (28×28, stride 1) and ``S2`` (14×14, stride 2); S4 (5×5, stride 4)
    and C5 (1×1) are left out, their VALID borders shrink them far below input/stride.
    ``num_classes=0`` returns F6's 84 squashed units.
    """

    num_classes: int = 10
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout or normalisation layers
        if x.shape[1:3] != (32, 32):
            raise ValueError(f"LeNet-5 takes 32×32 inputs (MNIST padded by 2), got {x.shape[1:3]}")

        def conv(features: int, fan_in: int, name: str) -> nn.Module:
            return layers.make_conv(self.dtype, use_bias=True, kernel_init=lecun_uniform_init(fan_in))(
                features, (5, 5), padding="VALID", name=name)

        x = x.astype(self.dtype)
        x = layers.tap(squash(conv(6, 25 * x.shape[-1], "C1")(x)), "C1")
        x = layers.tap(Subsample(dtype=self.dtype, name="S2")(x), "S2")
        x = squash(PartialConv(C3_TABLE, 5, self.dtype, name="C3")(x))
        x = Subsample(dtype=self.dtype, name="S4")(x)
        x = squash(conv(120, 25 * 16, "C5")(x))
        x = x.reshape(x.shape[0], -1)
        x = squash(layers.make_dense(self.dtype, kernel_init=lecun_uniform_init(120))(84, name="F6")(x))
        if self.num_classes == 0:
            return x.astype(jnp.float32)
        x = layers.make_dense(self.dtype, kernel_init=lecun_uniform_init(84))(self.num_classes, name="output")(x)
        return x.astype(jnp.float32)


# Derivation (tests/test_classic.py): C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 +
# F6 10,164 (the paper's numbers) + dense output 84·10 + 10 = 850 → 60,850.
LENET5_PARAMS = 156 + 12 + 1_516 + 32 + 48_120 + 10_164 + 850

register_model(
    "lenet5", LeNet5, family="lenet", paper=PAPER, year=1998, table="Fig. 2, Table 1",
    input_size=(32, 32, 1), min_size=32, fixed_size=True, mean=MNIST_MEAN, std=MNIST_STD, num_classes=10,
    # Sec. III.C / Fig. 9: LeNet-5 test error 0.95 % on MNIST without distortions, on the
    # whole test digits (28×28 padded to 32×32, Sec. III.A).
    top1=99.05, top1_protocol="full image 32", crop_pct=1.0, params=LENET5_PARAMS,
    num_features=84, feature_info=features(("C1", 6, 1), ("S2", 6, 2)), classifier=("output",),
    first_conv="C1",
    notes="S layers average (not sum) × coef + bias then 1.7159·tanh(2/3·a); dense 10-way output "
          "instead of the RBF layer; 32×32 input only.",
)
