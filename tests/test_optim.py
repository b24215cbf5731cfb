"""Optimisers, schedules, weight-decay mask and the loss of the training step."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flaxnets
from train import optim, steps
from train.configs.default import get_config


def _cfg(**kw):
    c = get_config()
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_lr_scales_with_batch() -> None:
    assert optim.base_learning_rate(_cfg(learning_rate=0.1, batch_size=512, lr_batch_denom=256)) == 0.2
    assert optim.base_learning_rate(_cfg(learning_rate=0.1, batch_size=512, lr_batch_denom=0)) == 0.1


def test_warmup_then_cosine() -> None:
    s = optim.make_schedule(_cfg(schedule="cosine", warmup_epochs=1.0, batch_size=256), 10, 110)
    np.testing.assert_allclose([s(0), s(4), s(9)], [0.01, 0.05, 0.1], rtol=1e-6)
    np.testing.assert_allclose(s(10), 0.1, rtol=1e-6)
    np.testing.assert_allclose(s(60), 0.05, rtol=1e-5)  # half-way through the 100 decay steps
    assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_step_schedule_epochs_and_fractions() -> None:
    s = optim.make_schedule(_cfg(schedule="step", step_epochs=(3.0, 6.0), batch_size=256), 10, 100)
    np.testing.assert_allclose([s(29), s(30), s(59), s(60)], [0.1, 0.01, 0.01, 0.001], rtol=1e-5)
    # Values ≤ 1 are fractions of the run (ResNet CIFAR: 50 % and 75 %).
    s = optim.make_schedule(_cfg(schedule="step", step_epochs=(0.5, 0.75), batch_size=256), 10, 200)
    np.testing.assert_allclose([s(99), s(100), s(149), s(150)], [0.1, 0.01, 0.01, 0.001], rtol=1e-5)


def test_exponential_staircase() -> None:
    # GoogLeNet: ×0.96 every 8 epochs; Inception-v3: ×0.94 every 2 epochs.
    s = optim.make_schedule(_cfg(schedule="exponential", decay_rate=0.96, decay_epochs=8.0,
                                 learning_rate=0.01, batch_size=256), 5, 1000)
    np.testing.assert_allclose([s(0), s(39), s(40), s(80)], [0.01, 0.01, 0.0096, 0.01 * 0.96**2], rtol=1e-5)


def _params():
    return {"conv": {"kernel": jnp.ones((3, 3, 2, 4))}, "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
            "fc": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)}}


def test_weight_decay_skips_bn_and_bias() -> None:
    mask = optim.decay_mask(_params())
    assert mask["conv"]["kernel"] and mask["fc"]["kernel"]
    assert not (mask["bn"]["scale"] or mask["bn"]["bias"] or mask["fc"]["bias"])
    assert all(jax.tree_util.tree_leaves(optim.decay_mask(_params(), decay_bn_and_bias=True)))
    for name in ("sgd", "rmsprop", "adamw"):
        cfg = _cfg(optimizer=name, weight_decay=0.1, schedule="constant", learning_rate=1.0, batch_size=256)
        tx, _ = optim.make_optimizer(cfg, _params(), 10, 100)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, _params())
        upd, _ = tx.update(zeros, tx.init(_params()), _params())
        assert np.all(np.asarray(upd["conv"]["kernel"]) < 0), name  # decayed towards zero
        assert np.all(np.asarray(upd["bn"]["scale"]) == 0) and np.all(np.asarray(upd["fc"]["bias"]) == 0), name


def test_rmsprop_matches_tf1_formula() -> None:
    """TF1 RMSProp (Inception): ms←ρ·ms+(1-ρ)g², ms₀=1; mom←μ·mom+lr·g/√(ms+ε); w←w-mom."""
    cfg = _cfg(optimizer="rmsprop", rmsprop_decay=0.9, rmsprop_eps=1.0, momentum=0.9, weight_decay=0.0,
               learning_rate=0.045, lr_batch_denom=0, schedule="constant")
    w = {"w": jnp.array([0.5, -1.0, 2.0])}
    tx, _ = optim.make_optimizer(cfg, w, 10, 100)
    st = tx.init(w)
    ms, mom, ref = np.ones(3), np.zeros(3), np.array([0.5, -1.0, 2.0])
    for g in ([1.0, 2.0, -3.0], [0.5, -0.1, 4.0], [-2.0, 0.3, 0.0]):
        g = np.asarray(g)
        ms = 0.9 * ms + 0.1 * g**2
        mom = 0.9 * mom + 0.045 * g / np.sqrt(ms + 1.0)
        ref = ref - mom
        upd, st = tx.update({"w": jnp.asarray(g, jnp.float32)}, st, w)
        w = optax.apply_updates(w, upd)
    np.testing.assert_allclose(np.asarray(w["w"]), ref, rtol=1e-5)


def test_gradient_clipping() -> None:
    cfg = _cfg(optimizer="sgd", momentum=0.0, weight_decay=0.0, grad_clip_norm=1.0, learning_rate=1.0,
               lr_batch_denom=0, schedule="constant")
    p = {"w": jnp.zeros(4)}
    tx, _ = optim.make_optimizer(cfg, p, 1, 10)
    upd, _ = tx.update({"w": jnp.full(4, 10.0)}, tx.init(p), p)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(upd["w"])), 1.0, rtol=1e-5)


class _AuxNet(nn.Module):
    num_classes: int = 3
    aux_loss_weight: float = 0.3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], -1)
        aux = nn.Dense(self.num_classes, name="aux")(x)
        if train:
            self.sow(flaxnets.AUX_COLLECTION, "aux1", aux)
        return nn.Dense(self.num_classes, name="head")(x)


def test_train_step_loss_with_aux_and_label_smoothing() -> None:
    model = _AuxNet()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 2, 2, 1)), jnp.float32)
    y = jnp.array([0, 1, 2, 1])
    variables = model.init(jax.random.PRNGKey(0), x)
    state = steps.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.sgd(0.0),
                                    batch_stats={})
    v = {"params": variables["params"]}
    main_logits = model.apply(v, x)
    aux_logits = nn.Dense(3).apply({"params": variables["params"]["aux"]}, x.reshape(4, -1))
    smooth = lambda lg: optax.softmax_cross_entropy(lg, optax.smooth_labels(jax.nn.one_hot(y, 3), 0.1)).mean()
    _, m = steps.train_step(state, {"image": x, "label": y}, jax.random.PRNGKey(1), num_classes=3,
                            label_smoothing=0.1, aux_loss_weight=0.3)
    np.testing.assert_allclose(m["loss"], smooth(main_logits) + 0.3 * smooth(aux_logits), rtol=1e-5)
    np.testing.assert_allclose(m["ce"], smooth(main_logits), rtol=1e-5)
    _, m0 = steps.train_step(state, {"image": x, "label": y}, jax.random.PRNGKey(1), num_classes=3)
    plain = optax.softmax_cross_entropy_with_integer_labels(main_logits, y).mean()
    np.testing.assert_allclose(m0["loss"], plain, rtol=1e-5)


def test_eval_step_masks_padding_and_averages_crops() -> None:
    logits = jnp.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])
    apply_fn = lambda v, x, train=False: x.reshape(x.shape[0], -1)[:, :3]
    state = steps.TrainState.create(apply_fn=apply_fn, params={}, tx=optax.sgd(0.0), batch_stats={})
    batch = {"image": logits.reshape(3, 1, 1, 3), "label": jnp.array([0, 0, 1]),
             "mask": jnp.array([1.0, 1.0, 0.0])}
    out = steps.eval_step(state, batch)
    assert float(out["count"]) == 2 and float(out["top1"]) == 1 and float(out["top5"]) == 2
    crops = jnp.stack([logits, -logits], 1).reshape(3, 2, 1, 1, 3)  # 10-crop layout (b, k, H, W, C)
    probs = steps.predict_probs(apply_fn, {}, crops)
    ref = (jax.nn.softmax(logits) + jax.nn.softmax(-logits)) / 2
    np.testing.assert_allclose(probs, ref, rtol=1e-6)
