"""Weights in and out, offline: files, tags through prepared caches, head reset, in_chans, predict.

The network is blocked in every test here (``no_network``): tags resolve only from caches the
test prepares where torch hub / the Hugging Face hub would keep the files.
"""

from __future__ import annotations

import os
import socket

import jax
import numpy as np
import pytest
from flax import traverse_util

import flaxnets
from conftest import build_twin, random_input
from flaxnets import layers
from flaxnets.weights import WeightsError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.parity


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retry back-off


def _logits(name, variables, x, **kw):
    model = flaxnets.create_model(name, **kw)
    return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x.transpose(0, 2, 3, 1)))


def _twin_logits(twin, x):
    with torch.no_grad():
        return twin(torch.from_numpy(x)).numpy()


# One model per family with a twin (the smallest), each loaded from .pth and .safetensors.
FILE_TWINS = ["resnet18", "seresnet18", "alexnet", "vgg11", "googlenet", "inception_v4", "densenet121",
              "squeezenet1_1", "mobilenet_v2", "mobilenetv1_100", "shufflenet_v2_x0_5", "ghostnet_050",
              "efficientnet_b0", "darknet53", "nasnetalarge"]
_SLOW = {"inception_v4", "nasnetalarge", "darknet53", "vgg11"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in _SLOW else [])
                                  for n in FILE_TWINS])
def test_twin_files_load_to_twin_variables(name, tmp_path) -> None:
    """Both file formats load to exactly ``from_torch``'s variables of the same twin, whose logits
    equal the twin's: tests/test_parity.py checks that forward pass for every twin (same
    ``build_twin``), so this test does not compile it again."""
    from safetensors.torch import save_file

    twin = build_twin(name, calibrate=False)  # loading, not numerics: no calibration batch
    sd = {k: v.contiguous() for k, v in twin.state_dict().items()}
    torch.save(sd, tmp_path / "w.pth")
    save_file(sd, str(tmp_path / "w.safetensors"))
    expected = flaxnets.from_torch(name, twin.state_dict())
    for fmt in ("pth", "safetensors"):
        got = flaxnets.load_weights(name, str(tmp_path / f"w.{fmt}"))
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected), fmt
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, expected)


def test_flaxnets_file_round_trip_and_refusals(tmp_path) -> None:
    model = flaxnets.create_model("resnet20")
    x = np.zeros((1, 32, 32, 3), np.float32)
    variables = model.init(jax.random.PRNGKey(3), x)
    path = flaxnets.save_weights(str(tmp_path / "r20.safetensors"), variables, name="resnet20")
    back = flaxnets.load_weights("resnet20", path)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, dict(variables))
    with pytest.raises(WeightsError, match="holds 'resnet20' weights, not 'resnet32'"):
        flaxnets.load_weights("resnet32", path)
    with pytest.raises(WeightsError, match="neither a file nor a tag"):
        flaxnets.load_weights("resnet20", str(tmp_path / "missing.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        flaxnets.load_weights("resnet20", str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="no torchvision twin"):
        flaxnets.load_weights("resnet20", "torchvision")


def test_head_reset_keeps_every_other_leaf(tmp_path, capsys) -> None:
    twin = build_twin("resnet18")
    torch.save(twin.state_dict(), tmp_path / "w.pth")
    full = flaxnets.load_weights("resnet18", str(tmp_path / "w.pth"))
    new = flaxnets.load_weights("resnet18", str(tmp_path / "w.pth"), num_classes=10, rng=jax.random.PRNGKey(5))
    assert "2 classifier tensors re-initialised for 10 classes" in capsys.readouterr().err
    flat_full, flat_new = traverse_util.flatten_dict(full), traverse_util.flatten_dict(new)
    assert set(flat_full) == set(flat_new)
    for key, value in flat_full.items():
        if layers.path_matches(layers.module_path(key[1:-1]), ["fc"]):
            assert flat_new[key].shape[-1] == 10
        else:
            np.testing.assert_array_equal(np.asarray(flat_new[key]), np.asarray(value))
    x = random_input((1, 3, 64, 64))
    assert _logits("resnet18", new, x, num_classes=10).shape == (1, 10)
    pooled = flaxnets.load_weights("resnet18", str(tmp_path / "w.pth"), num_classes=0)
    assert "fc" not in pooled["params"]
    assert _logits("resnet18", pooled, x, num_classes=0).shape == (1, 512)


def test_in_chans_adapts_first_conv_as_timm() -> None:
    from timm.models._manipulate import adapt_input_conv

    kernel = np.random.default_rng(0).standard_normal((7, 7, 3, 64)).astype(np.float32)  # HWIO
    oihw = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    for n in (1, 2, 4, 8):
        ours = np.asarray(flaxnets.weights.adapt_first_conv(kernel, n))
        theirs = adapt_input_conv(n, oihw.clone()).numpy().transpose(2, 3, 1, 0)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_torchvision_tag_from_prepared_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth is not cached.*put it at"):
        flaxnets.load_weights("resnet18", "torchvision")
    twin = build_twin("resnet18")
    os.makedirs(tmp_path / "hub" / "checkpoints", exist_ok=True)
    torch.save(twin.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    variables = flaxnets.load_weights("resnet18", "torchvision:IMAGENET1K_V1", in_chans=1)
    assert variables["params"]["conv1"]["kernel"].shape == (7, 7, 1, 64)
    variables = flaxnets.load_weights("resnet18", "torchvision")
    x = random_input((1, 3, 64, 64))
    assert float(np.max(np.abs(_logits("resnet18", variables, x) - _twin_logits(twin, x)))) <= 1e-4
    with pytest.raises(WeightsError, match="no 'IMAGENET9K' weights"):
        flaxnets.load_weights("resnet18", "torchvision:IMAGENET9K")


def test_timm_tag_from_prepared_hf_cache(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        flaxnets.load_weights("ghostnet_100", "timm")
    with pytest.raises(WeightsError, match="publishes no weights"):
        flaxnets.load_weights("seresnet18", "timm")
    twin = build_twin("ghostnet_100")
    repo = tmp_path / "hf" / "models--timm--ghostnet_100.in1k"
    snap = repo / "snapshots" / ("0" * 40)
    os.makedirs(snap)
    os.makedirs(repo / "refs")
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, str(snap / "model.safetensors"))
    variables = flaxnets.load_weights("ghostnet_100", "timm:in1k")
    x = random_input((1, 3, 224, 224))
    assert float(np.max(np.abs(_logits("ghostnet_100", variables, x) - _twin_logits(twin, x)))) <= 1e-4


def test_predict_matches_torch_twin_on_a_photo(tmp_path, capsys) -> None:
    """Top-5 of ``python -m flaxnets.predict`` equal the twin's, torchvision preprocessing included."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from torchvision import transforms as T

    from flaxnets import predict

    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_images().images[0]).save(photo, quality=95)
    twin = build_twin("resnet18")
    torch.save(twin.state_dict(), tmp_path / "w.pth")
    assert predict.main([str(photo), "--arch=resnet18", f"--weights={tmp_path / 'w.pth'}", "--topk=5"]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    weights = flaxnets.weights.torchvision_weights("resnet18")
    tf = T.Compose([T.Resize(weights.transforms().resize_size[0], interpolation=T.InterpolationMode.BILINEAR),
                    T.CenterCrop(224), T.ToTensor(), T.Normalize(flaxnets.model_info("resnet18").mean,
                                                                 flaxnets.model_info("resnet18").std)])
    with torch.no_grad():
        probs = torch.softmax(twin(tf(Image.open(photo)).unsqueeze(0)), -1)[0].numpy()
    top = np.argsort(-probs)[:5]
    got = [(int(line.split()[1]), float(line.split()[0])) for line in printed]
    assert [i for i, _ in got] == list(top)
    np.testing.assert_allclose([p for _, p in got], probs[top], atol=2e-4)
    assert predict.main([str(tmp_path / "nope.jpg"), "--arch=resnet18", f"--weights={tmp_path / 'w.pth'}"]) == 2
    assert "cannot read image" in capsys.readouterr().err


TWINS = [n for n in flaxnets.list_models() if flaxnets.model_info(n).twin]


def test_every_twin_resolves_its_tag_offline(tmp_path, monkeypatch) -> None:
    """Each twin's tag resolves to a file in the cache (named in the error when it is empty), or
    says that no weights are published; published_weights lists the default."""
    import huggingface_hub.constants

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for name in TWINS:
        lib = flaxnets.model_info(name).twin.split(":")[0]
        records = flaxnets.weights.published_weights(name)
        with pytest.raises(WeightsError) as err:
            flaxnets.load_weights(name, lib)
        if records:
            assert sum(r.default for r in records) == 1, name
            assert "could not be downloaded" in str(err.value), (name, str(err.value))
            assert records[0].num_classes == 1000
        else:
            assert "publishes no weights" in str(err.value), (name, str(err.value))
    assert not flaxnets.weights.published_weights("seresnet18")
    assert flaxnets.weights.published_weights("resnet50")[1].top1 == pytest.approx(80.858)
