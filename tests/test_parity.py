"""Numerical parity with the torchvision/timm twins: same weights → same logits and features.

For every registered model with a twin: build the twin with random weights and random
BatchNorm statistics, convert its ``state_dict`` with :func:`flaxnets.from_torch`, and
compare eval-mode logits on one random input at the model's extra sizes (a non-square odd size
where the twin accepts it; the tests' cheap-compile options) and, for one twin per structure
group (``tests/structure_groups.py``: the others differ from it only in depth or width), at
the default size too (XLA's default compile options; efficientnet_b7's 600×600 pass cost
most of its 51 s). Max abs difference ≤ 1e-4 (fp32).
The same forward passes compare every ``feature_info`` map with the output of the twin's
module of that name (a forward hook), within 1e-4 of the map's largest value.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import structure_groups

import flaxnets
from conftest import FAST_COMPILE, build_twin, random_input
from flaxnets import layers
from flaxnets.summary import count_params

TWINS = [n for n in flaxnets.list_models() if flaxnets.model_info(n).twin]
_TABLE = structure_groups.load()
AT_DEFAULT_SIZE = set(structure_groups.representatives({n: _TABLE[n] for n in TWINS},
                                                       lambda n: flaxnets.model_info(n).family))
_BIG = 40_000_000  # models above this many params are marked slow
_TRANSFORM_INPUT = ("googlenet", "inception_v3")


def _marks(name: str):
    info = flaxnets.model_info(name)
    big = (info.params or 0) > _BIG or info.input_size[0] > 300
    return [pytest.mark.parity] + ([pytest.mark.slow] if big else [])


def _hook_features(twin, info) -> dict:
    """Forward hooks storing the output of each feature_info module of the twin (NHWC numpy)."""
    got: dict = {}
    modules = dict(twin.named_modules())
    for f in info.feature_info:
        assert f.module in modules, f"feature {f.module!r} is not a module of the twin"

        def hook(_module, _inputs, output, key=f.module):
            got[key] = output.detach().numpy().transpose(0, 2, 3, 1)

        modules[f.module].register_forward_hook(hook)
    return got


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in TWINS])
def test_logits_match_twin(name: str) -> None:
    _check_parity(name)


# The other convolution path (layers.conv_general_dilated picks per platform; here the native
# conv on CPU, which is the GPU/TPU path): depthwise + 1×1 (mobilenet_v2, efficientnet_b0),
# grouped (resnext50_32x4d), dense + 1×1 (resnet18).
_NATIVE = {"mobilenet_v2": [], "resnext50_32x4d": [], "efficientnet_b0": [pytest.mark.slow],
           "resnet18": [pytest.mark.slow]}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.parity, *m]) for n, m in _NATIVE.items()])
def test_logits_match_twin_native_conv(name: str) -> None:
    with layers.conv_impl("native"):
        _check_parity(name)


def _check_parity(name: str) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    info = flaxnets.model_info(name)
    h, w, c = info.input_size
    sizes = [(0, (h, w))] if name in AT_DEFAULT_SIZE or not info.twin_sizes else []
    sizes += list(enumerate(info.twin_sizes, 1))
    # BN statistics from a batch at the smallest size compared (the twin's train-mode batch at
    # the default size cost most of the test for the large-input models); at the default size
    # where train mode runs auxiliary heads that need it (inception_v3: ModelInfo.min_size_no_aux).
    smallest = min((s for _, s in sizes), key=lambda s: s[0] * s[1])
    twin = build_twin(name, calibrate=(h, w) if info.min_size_no_aux else smallest)
    twin_params = sum(p.numel() for p in twin.parameters())
    variables = flaxnets.from_torch(name, twin.state_dict())
    assert count_params(variables["params"]) == twin_params
    if info.params is not None:
        assert twin_params == info.params
    model = flaxnets.create_model(name)
    names = [f.module for f in info.feature_info]

    def forward(v, x):
        with layers.collect_features(names) as maps:
            logits = model.apply(v, x, train=False)
        return logits, dict(maps)

    # The default size compiles with XLA's default options, as users' code does; the extra sizes
    # (odd, non-square: padding and pooling borders) with the cheap-compile options, which keep
    # every op's semantics (tests/conftest.py) and halve their compile (seresnet101: 2.6 -> 0.9 s).
    applies = (jax.jit(forward), jax.jit(forward, compiler_options=FAST_COMPILE))

    twin_maps = _hook_features(twin, info)
    for i, (hh, ww) in sizes:
        x = random_input((2, c, hh, ww), seed=i)
        twin_maps.clear()
        with torch.no_grad():
            expected = twin(torch.from_numpy(x)).numpy()
        got, maps = applies[min(i, 1)](variables, x.transpose(0, 2, 3, 1))
        got = np.asarray(got)
        assert got.shape == expected.shape
        err = float(np.max(np.abs(got - expected)))
        assert err <= 1e-4, f"{name} at {hh}×{ww}: max abs diff {err:.2e}"
        for f in info.feature_info:
            mine, ref = np.asarray(maps[f.module]), twin_maps[f.module]
            assert mine.shape == ref.shape, f"{f.module} at {hh}×{ww}: {mine.shape} vs twin {ref.shape}"
            rel = float(np.max(np.abs(mine - ref))) / max(float(np.max(np.abs(ref))), 1e-12)
            assert rel <= 1e-4, f"{name} feature {f.module} at {hh}×{ww}: relative diff {rel:.2e}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.parity) for n in TWINS])
def test_metadata_matches_twin(name: str) -> None:
    """Eval preprocessing equals the twin's default weights'; a timm twin's feature_info is ours.

    No forward pass: torchvision's weight enums and timm's pretrained configs are metadata.
    """
    info = flaxnets.model_info(name)
    lib, twin_name = info.twin.split(":", 1)
    if lib == "torchvision":
        torchvision = pytest.importorskip("torchvision")
        weights = torchvision.models.get_model_weights(twin_name).DEFAULT
        preset = weights.transforms()
        crop_pct = preset.crop_size[0] / preset.resize_size[0]
        interpolation = preset.interpolation.value
        # googlenet/inception_v3: torchvision's builders set transform_input=True with weights,
        # turning ImageNet-normalised input into the [-1, 1] range the weights were trained on.
        mean, std = ((0.5,) * 3, (0.5,) * 3) if twin_name in _TRANSFORM_INPUT else (preset.mean, preset.std)
        assert tuple(mean) == pytest.approx(info.mean) and tuple(std) == pytest.approx(info.std)
    else:
        timm = pytest.importorskip("timm")
        cfg = timm.models.get_pretrained_cfg(twin_name)
        crop_pct, interpolation = cfg.crop_pct, cfg.interpolation
        twin = timm.create_model(twin_name, pretrained=False, **dict(info.twin_kwargs))
        theirs = [(f["module"], f["num_chs"], f["reduction"]) for f in twin.feature_info]
        assert [(f.module, f.channels, f.reduction) for f in info.feature_info] == theirs
        assert twin.num_features == info.num_features
    assert info.crop_pct == pytest.approx(crop_pct, abs=1e-3), f"{name}: crop_pct {info.crop_pct} vs {crop_pct}"
    assert info.interpolation == interpolation
