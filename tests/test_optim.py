"""Optimisers, schedules, weight-decay mask and the loss of the training step."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

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


def test_linear_and_poly_decay_after_warmup() -> None:
    # ShuffleNet: linear from the peak to 0; warmup (1 epoch = 10 steps) as for every schedule.
    cfg = _cfg(schedule="linear", warmup_epochs=1.0, batch_size=256)
    s = optim.make_schedule(cfg, 10, 110)
    np.testing.assert_allclose([s(0), s(9), s(10), s(35), s(60), s(85)], [0.01, 0.1, 0.1, 0.075, 0.05, 0.025],
                               rtol=1e-5)
    assert float(s(110)) == pytest.approx(0.0, abs=1e-7) and float(s(200)) == pytest.approx(0.0, abs=1e-7)
    cosine = optim.make_schedule(_cfg(schedule="cosine", warmup_epochs=1.0, batch_size=256), 10, 110)
    np.testing.assert_allclose([s(i) for i in range(10)], [cosine(i) for i in range(10)], rtol=1e-6)
    # Darknet poly(4): peak·(1 − t/T)^4 over the T = 100 post-warmup steps.
    p4 = optim.make_schedule(_cfg(schedule="poly", poly_power=4.0, warmup_epochs=1.0, batch_size=256), 10, 110)
    for t in (0, 25, 50, 90):
        np.testing.assert_allclose(p4(10 + t), 0.1 * (1 - t / 100) ** 4, rtol=1e-5)
    np.testing.assert_allclose([p4(0), p4(5)], [s(0), s(5)], rtol=1e-6)
    assert float(p4(110)) == pytest.approx(0.0, abs=1e-7)
    # Power 1 is the linear schedule; power 0.5 (SqueezeNet) stays above it.
    p1 = optim.make_schedule(_cfg(schedule="poly", poly_power=1.0, warmup_epochs=1.0, batch_size=256), 10, 110)
    np.testing.assert_allclose([p1(t) for t in range(0, 111, 7)], [s(t) for t in range(0, 111, 7)], rtol=1e-5,
                               atol=1e-8)
    half = optim.make_schedule(_cfg(schedule="poly", poly_power=0.5, batch_size=256), 10, 100)
    np.testing.assert_allclose(half(75), 0.1 * 0.5, rtol=1e-5)
    with pytest.raises(ValueError, match="linear, poly"):
        optim.make_schedule(_cfg(schedule="polynomial"), 10, 100)


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


def _depthwise_params():
    rng = np.random.default_rng(0)
    return {"dw": {"kernel": jnp.asarray(rng.standard_normal((3, 3, 1, 4)), jnp.float32)},
            "fc": {"kernel": jnp.asarray(rng.standard_normal((4, 2)), jnp.float32)},
            "bn": {"scale": jnp.asarray(rng.uniform(0.5, 1.5, 4), jnp.float32)}}


def test_depthwise_mask() -> None:
    p = {**_depthwise_params(), "pw": {"kernel": jnp.ones((1, 1, 4, 8))}, "one": {"kernel": jnp.ones((3, 3, 1, 1))}}
    mask = optim.depthwise_mask(p)
    assert mask["dw"]["kernel"] and not mask["pw"]["kernel"] and not mask["fc"]["kernel"]
    assert not mask["bn"]["scale"] and not mask["one"]["kernel"]
    # Works on abstract shapes (the trainer builds the optimiser from jax.eval_shape output).
    assert optim.depthwise_mask(jax.eval_shape(lambda: p)) == mask


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adamw"])
@pytest.mark.parametrize("dw", [None, 0.0, 0.5])
def test_depthwise_weight_decay(name: str, dw) -> None:
    """Each leaf's update is the optimiser applied to g + rate·w (coupled) or adds lr·rate·w
    (adamw): rate 0.1 on the dense kernel, ``dw`` (None → 0.1) on the depthwise kernel, 0 on BN."""
    params = _depthwise_params()
    grads = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.3), params)
    cfg = _cfg(optimizer=name, weight_decay=0.1, depthwise_weight_decay=dw, momentum=0.0, schedule="constant",
               learning_rate=0.5, lr_batch_denom=0, rmsprop_decay=0.9, rmsprop_eps=1.0)
    tx, _ = optim.make_optimizer(cfg, params, 10, 100)
    upd, _ = tx.update(grads, tx.init(params), params)
    rates = {"dw": 0.1 if dw is None else dw, "fc": 0.1, "bn": 0.0}
    for mod, rate in rates.items():
        (w,) = jax.tree_util.tree_leaves(params[mod])
        w, g = np.asarray(w, np.float64), 0.3
        if name == "sgd":
            want = -0.5 * (g + rate * w)
        elif name == "rmsprop":  # first TF1 step: ms = 0.9 + 0.1·g'², update −lr·g'/√(ms + ε)
            gd = g + rate * w
            want = -0.5 * gd / np.sqrt(0.9 + 0.1 * gd**2 + 1.0)
        else:  # the first Adam step is g/|g| = 1 (up to float32 bias correction): −lr·(1 + rate·w)
            want = -0.5 * (1.0 + rate * w)
        (got,) = jax.tree_util.tree_leaves(upd[mod])
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5, err_msg=f"{name} {mod}")


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
    # "w" has norm 20, "b" norm 0.5: globally both shrink by 1/‖(w, b)‖; per tensor only "w" does
    # (TF-slim's clip_gradient_norms), and "b" passes unchanged.
    p = {"w": jnp.zeros(4), "b": jnp.zeros(1)}
    g = {"w": jnp.full(4, 10.0), "b": jnp.full(1, 0.5)}
    for mode in ("global", "per_tensor"):
        cfg = _cfg(optimizer="sgd", momentum=0.0, weight_decay=0.0, grad_clip_norm=1.0, learning_rate=1.0,
                   lr_batch_denom=0, schedule="constant", grad_clip_mode=mode)
        tx, _ = optim.make_optimizer(cfg, p, 1, 10)
        upd, _ = tx.update(g, tx.init(p), p)
        w, b = -np.asarray(upd["w"]), -np.asarray(upd["b"])
        if mode == "global":
            np.testing.assert_allclose(np.sqrt(np.sum(w ** 2) + np.sum(b ** 2)), 1.0, rtol=1e-5)
            np.testing.assert_allclose(b, 0.5 / np.sqrt(400.25), rtol=1e-5)
        else:
            np.testing.assert_allclose(w, np.full(4, 0.5), rtol=1e-6)
            np.testing.assert_allclose(b, [0.5], rtol=1e-6)


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


def test_lightweight_recipes_schedules_and_depthwise_decay() -> None:
    """The recipes' schedules and MobileNet v1's zero decay on its depthwise filters, checked on
    the real model's parameter shapes."""
    from train.loop import apply_recipe

    def recipe(arch):
        c = get_config()
        c.arch = arch
        return apply_recipe(c)

    assert recipe("shufflenet_v2_x1_0").schedule == "linear" and recipe("shufflenet_v1_g3").learning_rate == 0.5
    assert (recipe("darknet53").schedule, recipe("darknet53").poly_power) == ("poly", 4.0)
    assert (recipe("squeezenet1_0").poly_power, recipe("squeezenet1_1").poly_power) == (0.5, 1.0)
    cfg = recipe("mobilenetv1_100")
    model = flaxnets.create_model("mobilenetv1_100", num_classes=10)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))["params"]
    flat = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    (wd, rest), (dw, depthwise) = optim.weight_decay_groups(cfg, params)
    assert (wd, dw) == (4e-5, 0.0)
    on = lambda mask: {jax.tree_util.keystr(p) for p, m in jax.tree_util.tree_flatten_with_path(mask)[0] if m}
    assert on(depthwise) == {jax.tree_util.keystr(p) for p in flat if "conv_dw" in jax.tree_util.keystr(p)}
    assert len(on(depthwise)) == 13  # MobileNet v1's 13 depthwise separable blocks
    assert on(rest) and not on(rest) & on(depthwise) and all("kernel" in k for k in on(rest))
    # MobileNet v2 keeps one rate for every kernel.
    assert len(optim.weight_decay_groups(recipe("mobilenet_v2"), params)) == 1


def test_recipe_adapted_to_a_dataset_it_was_not_written_for() -> None:
    """On digits (1,437 images): a batch cap of 64 (≥ 16 steps an epoch) with the recipe's lr
    rule, the dataset's epochs, step boundaries as fractions of the run, exponential decay and
    warm-up shrunk in proportion, the recipe resolution dropped; small batches (LeNet-5's 1) and
    explicit fields kept; a recipe on its own dataset is left alone."""
    from train.configs import adapt_recipe, recipe_home
    from train.loop import apply_recipe

    def adapted(arch: str, dataset: str = "digits", n: int = 1437, side: int = 8, explicit=(), classes=10,
                **fields):
        cfg = get_config()
        cfg.arch = arch
        for k, v in fields.items():
            setattr(cfg, k, v)
        return adapt_recipe(apply_recipe(cfg, explicit), dataset, n, side, 30.0, explicit, classes)

    cfg, line = adapted("resnet50")  # ImageNet recipe: batch 128 (default), steps 30/60/80 of 90
    assert recipe_home("resnet50") == "imagenet2012" and "imagenet2012" in line and "digits" in line
    assert cfg.batch_size == 64 and cfg.num_epochs == 30.0
    assert cfg.step_epochs == pytest.approx((30 / 90, 60 / 90, 80 / 90))
    assert optim.base_learning_rate(cfg) == pytest.approx(0.1 * 64 / 256)
    assert cfg.head_lr_mult == pytest.approx(10 / 1000) and "classifier lr ×10/1000" in line  # SGD, 10 classes
    assert adapted("resnet50", classes=1000)[0].head_lr_mult == 1.0  # as many classes as ImageNet
    assert adapted("resnet50", explicit=("head_lr_mult",), head_lr_mult=2.0)[0].head_lr_mult == 2.0
    assert adapted("resnet50", init_from="/some/run")[0].head_lr_mult == 1.0  # fine-tuning: the new head moves
    assert adapted("resnet20")[0].head_lr_mult == 1.0  # CIFAR recipe, 10 classes at home too
    assert adapted("resnet1202")[0].model_overrides.zero_init_last is True  # off CIFAR only (its recipe says why)
    assert "zero_init_last" not in adapted("resnet1202", "cifar10", 50_000, 32)[0].model_overrides
    assert "zero_init_last" not in adapted("resnet110")[0].model_overrides  # the paper's init trains there
    cfg, _ = adapted("inception_v3")  # ×0.94 every 2 of 100 epochs → every 0.6 of 30; 299 dropped
    assert cfg.head_lr_mult == 1.0  # RMSProp divides the gradient's scale out
    assert cfg.decay_epochs == pytest.approx(0.6) and cfg.image_size is None
    cfg, _ = adapted("ghostnet_100")  # 5 warm-up epochs at 1024 (6,255 steps) → capped at 10 % of the run
    assert cfg.warmup_epochs == pytest.approx(3.0) and cfg.batch_size == 64
    cfg, line = adapted("efficientnet_b0")  # BN momentum 0.01 (100 steps): 0.1, the shortest horizon allowed
    assert cfg.model_overrides.bn_momentum == 0.1 and "BN momentum 0.01→0.1" in line
    assert cfg.model_overrides.drop_path_rate == 0.2  # the other overrides kept
    assert cfg.model_overrides.zero_init_last is True and "zero_init_last=True" in line  # off ImageNet only
    assert "zero_init_last" not in adapted("efficientnet_b0", "imagenet2012", 1_281_167, 224)[0].model_overrides
    assert adapted("efficientnet_b0", explicit=("model_overrides.zero_init_last",),
                   model_overrides={"zero_init_last": False})[0].model_overrides.zero_init_last is False
    cfg, _ = adapted("efficientnet_b0", explicit=("model_overrides",), model_overrides={"bn_momentum": 0.01})
    assert cfg.model_overrides.bn_momentum == 0.01  # explicit: kept
    cfg, _ = adapted("efficientnet_b0", explicit=("model_overrides.bn_momentum",),
                     model_overrides={"bn_momentum": 0.02})
    assert (cfg.model_overrides.bn_momentum, cfg.model_overrides.drop_path_rate) == (0.02, 0.2)  # one name explicit
    cfg, _ = adapted("nin_cifar10", classes=5)  # the authors' classifier ×0.1, then ×5/10 for 5 classes
    assert cfg.head_lr_mult == pytest.approx(0.1 * 5 / 10) and cfg.weight_decay == 1e-4
    assert adapted("nin_cifar10", "cifar10", 50_000, 32)[0].num_epochs == pytest.approx(307.2)  # 120k iterations of 128
    cfg, _ = adapted("nin")  # the authors' ImageNet solver: ×0.1 at 200k and 400k of 450k iterations
    assert cfg.step_epochs == pytest.approx((4 / 9, 8 / 9)) and optim.base_learning_rate(cfg) == pytest.approx(0.01)
    cfg, line = adapted("squeezenet1_1")
    assert cfg.small_data_image_size == 48 and "trained at 48x48" in line
    for arch, heads_need in (("inception_v3", 299), ("googlenet_paper", 223)):  # aux heads: small data only
        cfg, line = adapted(arch)
        assert cfg.model_overrides.aux_logits is False and f"aux heads off (they need ≥ {heads_need} px)" in line
        assert "aux_logits" not in adapted(arch, explicit=("image_size",), image_size=heads_need)[0].model_overrides
        assert "aux_logits" not in adapted(arch, "imagenet2012", 1_281_167, 224)[0].model_overrides
    cfg, _ = adapted("inception_v3", explicit=("model_overrides.aux_logits",), model_overrides={"aux_logits": True})
    assert cfg.model_overrides.aux_logits is True  # explicit: kept
    assert "trained at" not in adapted("squeezenet1_1", explicit=("image_size",), image_size=32)[1]
    cfg, _ = adapted("resnet110")  # ~400 warm-up iterations (Sec. 4.2) → 66 of 660 steps, not 4
    assert cfg.warmup_epochs == pytest.approx(3.0)
    cfg, _ = adapted("lenet5")  # batch 1 kept; MNIST recipe: 20 → 30 epochs, steps as fractions
    assert cfg.batch_size == 1 and cfg.step_epochs == pytest.approx((0.1, 0.25, 0.4, 0.6))
    cfg, _ = adapted("lenet5", explicit=("batch_size",), batch_size=64)  # lr 5e-4 per image
    assert optim.base_learning_rate(cfg) == pytest.approx(5e-4 * 64)
    cfg, _ = adapted("senet154", explicit=("batch_size", "num_epochs"), batch_size=256, num_epochs=7.0)
    assert cfg.batch_size == 256 and cfg.num_epochs == 7.0
    assert cfg.step_epochs == pytest.approx((0.3, 0.6, 0.9))  # 30/60/90 of the recipe's 100
    cfg, line = adapted("resnet20", "cifar10", 50_000, 32)  # its own dataset: untouched
    assert line == "" and cfg.num_epochs == 164.0 and cfg.step_epochs == (0.5, 0.75)
    from train.configs import adapt_augmentation  # CIFAR's 4 px of 32 → 1 px of the 8×8 digits

    cifar, _ = adapted("resnet20")
    assert cifar.train_crop == "pad_crop" and cifar.pad_crop_padding == 4
    assert adapt_augmentation(cifar, "digits", 8)[0].pad_crop_padding == 1
    assert adapt_augmentation(cifar, "digits", 8, explicit=("pad_crop_padding",))[0].pad_crop_padding == 4
    assert adapt_augmentation(cifar, "cifar10", 32) == (cifar, "")
    imagenet, _ = adapted("bn_inception")  # random-resized crops of 8-100 % of a 32×32 digit → 4 px shifts
    small, line = adapt_augmentation(imagenet, "digits", 32, small_images=True)
    assert (small.train_crop, small.pad_crop_padding) == ("pad_crop", 4) and "random_resized" in line
    assert adapt_augmentation(imagenet, "digits", 32, ("train_crop",), small_images=True)[0].train_crop \
        == "random_resized"  # explicit wins
    assert adapt_augmentation(imagenet, "folder", 224)[0].train_crop == "random_resized"  # photos: kept
    resnext, _ = adapted("resnext50_32x4d")  # ImageNet colour jitter 0.4 + PCA lighting 0.1: off on small images
    small, line = adapt_augmentation(resnext, "digits", 32, small_images=True)
    assert (small.color_jitter, small.pca_lighting) == (0.0, 0.0) and "color jitter and pca lighting off" in line
    kept = adapt_augmentation(resnext, "digits", 32, ("pca_lighting",), small_images=True)[0]
    assert (kept.color_jitter, kept.pca_lighting) == (0.0, 0.1)  # explicit wins
    photos = adapt_augmentation(resnext, "folder", 224)[0]
    assert (photos.color_jitter, photos.pca_lighting) == (0.4, 0.1)  # photos: kept
    from train.configs import SMALL_DATA_TFLOP, budget_epochs  # 3 × forward FLOPs × images × epochs

    assert budget_epochs(30.0, 1e6, 1437) == (30.0, "")  # resnet20-sized: far under the budget
    per_epoch = 3 * 1e9 * 1437  # a 1 GFLOP forward: the budget buys floor(B / per_epoch) epochs
    epochs, why = budget_epochs(30.0, 1e9, 1437)
    assert epochs == max(8, int(SMALL_DATA_TFLOP * 1e12 // per_epoch)) < 30 and "compute budget" in why
    assert budget_epochs(30.0, 1e12, 1437) == (8.0, "compute budget: 1000.00 GFLOPs/image forward, 3 TFLOP "
                                                   "≈ 0 epochs, raised to the cifar10 floor of 8")  # CIFAR recipes
    assert budget_epochs(30.0, 1e12, 1437, "mnist")[0] == 3.0  # 3 for MNIST recipes
    assert budget_epochs(30.0, 1e12, 1437, "imagenet2012")[0] == 15.0  # 15 for ImageNet recipes
    assert budget_epochs(30.0, 1e9, 1437, "imagenet2012")[0] == max(15, epochs)
    assert budget_epochs(10.0, 1e12, 1437, "imagenet2012") == (10.0, "")  # a shorter default stays
    # A recipe's own floor (the plain VGGs' small_data_min_epochs) where it exceeds the home one.
    assert budget_epochs(30.0, 1e12, 1437, "imagenet2012", 25.0) == (
        25.0, "compute budget: 1000.00 GFLOPs/image forward, 3 TFLOP ≈ 0 epochs, raised to the recipe's "
              "small-data floor of 25")
    assert budget_epochs(30.0, 1e12, 1437, "imagenet2012", 5.0)[0] == 15.0  # never below the home floor
    assert budget_epochs(10.0, 1e12, 1437, "imagenet2012", 5.0) == (10.0, "")  # nor the home floor above the default
    # The recipe's own floor even above the dataset's default (fractalnet20_cifar: 80 against 30).
    assert budget_epochs(30.0, 1e6, 1437, "cifar10", 80.0) == (80.0, "raised to the recipe's small-data floor of 80, "
                                                                    "above the default 30")
    assert budget_epochs(30.0, 1e12, 1437, "cifar10", 80.0) == (
        80.0, "compute budget: 1000.00 GFLOPs/image forward, 3 TFLOP ≈ 0 epochs, raised to the recipe's "
              "small-data floor of 80, above the default 30")
    assert budget_epochs(10.0, 1e12, 1437, "imagenet2012", 12.0)[1].endswith(  # its own, under the home 15
        "raised to the recipe's small-data floor of 12, above the default 10")
    from train.configs.recipes import recipe_for

    assert recipe_for("vgg16")["small_data_min_epochs"] == 25.0  # Table 1's plain configurations
    assert "small_data_min_epochs" not in recipe_for("vgg16_bn")  # torchvision's BN variants: the home floor
    assert recipe_for("fractalnet20_cifar")["small_data_min_epochs"] == 80.0  # its dropout needs the epochs
    assert "small_data_min_epochs" not in recipe_for("fractalnet_cifar")  # no dropout: the CIFAR floor
    assert recipe_for("seresnext50_32x4d")["small_data_min_epochs"] == 20.0  # zero-init bottleneck SE nets
    assert "small_data_min_epochs" not in recipe_for("seresnet18")  # basic blocks pass at the home 15
    assert recipe_for("densenet_bc_190_k40")["small_data_min_epochs"] == 30.0  # deepest BC nets: 8 fell short
    assert recipe_for("densenet_bc_250_k24")["small_data_min_epochs"] == 20.0
    assert "small_data_min_epochs" not in recipe_for("densenet_bc_100_k12")  # its compute budget gives it 20
    assert recipe_for("resnet1202")["small_data_min_epochs"] == 20.0  # 83.89 % at 8 with zero-γ
    assert "small_data_min_epochs" not in recipe_for("resnet110")


@pytest.mark.parametrize("name, heads", [
    ("googlenet", {"fc/kernel", "fc/bias", "aux1/fc2/kernel", "aux1/fc2/bias", "aux2/fc2/kernel", "aux2/fc2/bias"}),
    ("ghostnet_050", {"classifier/kernel", "classifier/bias"}),  # not its conv_head (1280 wide)
])
def test_head_mask_is_the_class_logit_layers(name: str, heads: set[str]) -> None:
    model = flaxnets.create_model(name, num_classes=7)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
    mask = optim.head_mask(shapes["params"], name)
    on = {optim.param_path(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m}
    assert on == heads


def _sdlm_cfg(**kw):
    return _cfg(**{"optimizer": "sdlm", "learning_rate": 5e-4, "lr_batch_denom": 0, "schedule": "constant",
                   "momentum": 0.0, "weight_decay": 0.0, **kw})


def test_sdlm_step_is_eps_over_mu_plus_h() -> None:
    """SDLM (LeCun et al. 1998, App. C): step_k = −η·g_k/(μ + h_kk); h the bias-corrected running
    mean of the curvatures passed in (weight B/500 each); no curvature → a clear error."""
    params = {"w": jnp.zeros(3)}
    g, h1, h2 = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.0, 0.3, 4.0]), jnp.array([1.0, 0.1, 0.0])
    tx, _ = optim.make_optimizer(_sdlm_cfg(), params, 10, 100)
    state = tx.init(params)
    u1, state = tx.update({"w": g}, state, params, curvature={"w": h1}, curvature_samples=1)
    np.testing.assert_allclose(u1["w"], -5e-4 * g / (optim.SDLM_MU + h1), rtol=1e-6)
    u2, state = tx.update({"w": g}, state, params, curvature={"w": h2}, curvature_samples=1)
    gam = 1 / optim.SDLM_SAMPLES
    mean = ((1 - gam) * gam * h1 + gam * h2) / (1 - (1 - gam) ** 2)  # weights (1−γ)γ and γ, debiased
    np.testing.assert_allclose(u2["w"], -5e-4 * g / (optim.SDLM_MU + mean), rtol=1e-5)
    with pytest.raises(ValueError, match="curvature"):
        tx.update({"w": g}, state, params)
    # On a diagonal quadratic ½Σa_k(w_k − b_k)² with its exact curvature a and η = 1, one step
    # lands at the minimum up to the μ damping: w_k = b_k·a_k/(a_k + μ).
    a, b = jnp.array([0.5, 2.0, 10.0]), jnp.array([1.0, -1.0, 3.0])
    tx1, _ = optim.make_optimizer(_sdlm_cfg(learning_rate=1.0), params, 10, 100)
    grad = jax.grad(lambda p: 0.5 * jnp.sum(a * (p["w"] - b) ** 2))(params)
    u, _ = tx1.update(grad, tx1.init(params), params, curvature={"w": a}, curvature_samples=optim.SDLM_SAMPLES)
    np.testing.assert_allclose(optax.apply_updates(params, u)["w"], b * a / (a + optim.SDLM_MU), rtol=1e-6)


def test_gauss_newton_diag_exact() -> None:
    """The diagonal Gauss-Newton curvature of the softmax CE equals the Hessian diagonal when the
    logits are linear in the parameters (for any labels), and diag(Jᵀ(diag p − ppᵀ)J) for a tanh net."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)
    params = {"w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32), "b": jnp.asarray(rng.standard_normal(3))}
    linear = lambda p, xs: xs @ p["w"] + p["b"]
    flat, unravel = ravel_pytree(params)
    gn = ravel_pytree(jax.jit(optim.gauss_newton_diag, static_argnums=0)(linear, params, x))[0]

    @jax.jit
    def hessian_diag(labels):
        loss = lambda f: optax.softmax_cross_entropy_with_integer_labels(linear(unravel(f), x), labels).mean()
        return jnp.diag(jax.hessian(loss)(flat))

    for labels in (jnp.array([0, 1, 2, 0, 1]), jnp.array([2, 2, 2, 2, 2])):
        np.testing.assert_allclose(gn, hessian_diag(labels), rtol=1e-4, atol=1e-6)
    net = lambda p, xs: jnp.tanh(xs @ p["w"] + p["b"]) @ p["w"].T[:, :3] * 2.0

    @jax.jit
    def explicit(xi):
        jac = jax.jacobian(lambda f: net(unravel(f), xi[None])[0])(flat)
        p = jax.nn.softmax(net(params, xi[None])[0])
        return jnp.diag(jac.T @ (jnp.diag(p) - jnp.outer(p, p)) @ jac)

    np.testing.assert_allclose(ravel_pytree(jax.jit(optim.gauss_newton_diag, static_argnums=0)(net, params, x))[0],
                               jax.vmap(explicit)(x).mean(0), rtol=1e-4, atol=1e-7)


def test_train_step_feeds_sdlm_the_batch_curvature() -> None:
    """steps.train_step passes the batch's Gauss-Newton diagonal to SDLM: one batch-1 step moves
    each parameter by −η·g/(μ + h) with h = gauss_newton_diag on that example."""
    model = _AuxNet(num_classes=3)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 2, 2, 1)), jnp.float32)
    y = jnp.array([2])
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    tx, _ = optim.make_optimizer(_sdlm_cfg(learning_rate=0.1), params, 10, 100)
    state = steps.TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats={})
    step = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.PRNGKey(1), num_classes=3))
    new, _ = step(state, {"image": x, "label": y})
    logits = lambda p, xs: model.apply({"params": p}, xs)
    g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean())(params)
    h = optim.gauss_newton_diag(logits, params, x)
    want = jax.tree_util.tree_map(lambda w, g, h: w - 0.1 * g / (optim.SDLM_MU + h), params, g, h)
    for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert int(new.step) == 1 and any(float(jnp.abs(v).max()) > 0 for v in jax.tree_util.tree_leaves(h))


def test_plateau_drops_when_the_epoch_loss_stalls() -> None:
    """``schedule="plateau"``: the epoch's mean loss (3 steps) not improving for 2 epochs
    multiplies the step by ``step_factor``, at most ``plateau_drops`` times; an improving loss
    keeps the rate. train_step feeds it the loss (jitted)."""
    cfg = _cfg(schedule="plateau", learning_rate=0.1, lr_batch_denom=0, momentum=0.0, weight_decay=0.0,
               plateau_patience=2.0, plateau_drops=2, step_factor=0.1)
    params = {"w": jnp.ones(2)}
    tx, schedule = optim.make_optimizer(cfg, params, 3, 60)
    state = tx.init(params)
    ones = {"w": jnp.ones(2)}
    losses = [5.0, 4.0, 3.0] + [3.0] * 9  # epochs 1-3 improve, then 3 flat epochs of 3.0
    seen = []
    for v in np.repeat(losses, 3):
        upd, state = tx.update(ones, state, params, value=jnp.asarray(v))
        seen.append((float(-upd["w"][0]), optim.plateau_scale(state)))
    assert float(schedule(30)) == pytest.approx(0.1)  # the schedule keeps the peak; drops are in the state
    steps_taken = [round(s, 6) for s, _ in seen]
    # Epoch means 5, 4, 3, 3, 3, … : drop after 2 epochs without improvement (end of epoch 5),
    # again after 2 more (end of epoch 7), then never below 0.1² (plateau_drops=2).
    assert steps_taken[:14] == [0.1] * 14 and steps_taken[14] == pytest.approx(0.01)
    assert steps_taken[20] == pytest.approx(0.001) and steps_taken[-1] == pytest.approx(0.001)
    assert seen[-1][1] == pytest.approx(0.01)
    # A loss that keeps improving never drops.
    state = tx.init(params)
    for v in np.linspace(5.0, 1.0, 36):
        _, state = tx.update(ones, state, params, value=jnp.asarray(v))
    assert optim.plateau_scale(state) == 1.0 and optim.wants_value(state)
    model = _AuxNet(num_classes=3)
    x = jnp.zeros((2, 2, 2, 1))
    p = model.init(jax.random.PRNGKey(0), x)["params"]
    tx, _ = optim.make_optimizer(cfg, p, 1, 10)
    s = steps.TrainState.create(apply_fn=model.apply, params=p, tx=tx, batch_stats={})
    step = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.PRNGKey(1), num_classes=3))
    for _ in range(3):  # one step per epoch, the same batch: the loss keeps falling
        s, m = step(s, {"image": x, "label": jnp.array([0, 1])})
    assert int(s.step) == 3 and optim.plateau_scale(s.opt_state) == 1.0
