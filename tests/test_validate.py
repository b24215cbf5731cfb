"""Config validation: every bad field is one line, found before the workdir changes."""

from __future__ import annotations

import os
import pathlib

import pytest

from train import validate
from train.configs.default import get_config


def _config(arch: str = "resnet20", **fields):
    cfg = get_config()
    cfg.arch = arch
    for k, v in fields.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.parametrize("arch, fields, size, expect", [
    ("resnet20", {"batch_size": 0}, 32, "batch_size=0 must be a positive integer"),
    ("resnet20", {"batch_size": -5}, 32, "batch_size=-5"),
    ("resnet20", {"learning_rate": float("nan")}, 32, "learning_rate=nan"),
    ("resnet20", {"learning_rate": -0.1}, 32, "learning_rate=-0.1"),
    ("resnet20", {"num_classes": 0}, 32, "num_classes=0 cannot be trained"),
    ("resnet20", {"eval_modes": ("bogus",)}, 32, "eval_modes ['bogus'] unknown"),
    ("resnet20", {"eval_modes": ("center", "dense")}, 32, "resnet20 has no dense evaluation"),
    ("resnet50", {}, 7, "image_size=7 is below resnet50's minimum 32"),
    ("inception_v3", {}, 75, "image_size=75 is below inception_v3's minimum 299 (Table"),  # its aux head's
    ("inception_v3", {"model_overrides": {"aux_logits": False}}, 74,
     "image_size=74 is below inception_v3's minimum 75 without its aux heads"),
    ("lenet5", {}, 64, "accepts only 32x32"),
    ("resnet20", {"num_epochs": -1.0}, 32, "num_epochs=-1.0"),
    ("resnet20", {"train_crop": "bogus"}, 32, "train_crop='bogus' is not one of"),
    ("resnet20", {"optimizer": "lion"}, 32, "optimizer='lion'"),
    ("resnet20", {"schedule": "zigzag"}, 32, "schedule='zigzag'"),
    ("resnet20", {"eval_crop_ratio": 0.0}, 32, "eval_crop_ratio=0.0"),
    ("resnet20", {"label_smoothing": 1.0}, 32, "label_smoothing=1.0"),
    ("resnet20", {"crop_area_range": (0.5, 0.1)}, 32, "crop_area_range"),
    ("resnet20", {"keep_checkpoints": 0}, 32, "keep_checkpoints=0"),
    ("resnet20", {"parallel": "mpi"}, 32, "parallel='mpi'"),
    ("resnet20", {"grad_clip_mode": "per_layer"}, 32, "grad_clip_mode='per_layer' is not one of"),
    ("resnet20", {"rmsprop_decay": 1.0}, 32, "rmsprop_decay=1.0 must be in [0, 1)"),
    ("resnet20", {"adam_b2": -0.1}, 32, "adam_b2=-0.1"),
    ("resnet20", {"rmsprop_eps": 0.0}, 32, "rmsprop_eps=0.0 must be in (0, inf)"),
    ("resnet20", {"step_factor": 0.0}, 32, "step_factor=0.0"),
    ("resnet20", {"decay_epochs": 0.0}, 32, "decay_epochs=0.0"),
    ("resnet20", {"poly_power": -1.0}, 32, "poly_power=-1.0"),
    ("resnet20", {"small_data_min_epochs": -1.0}, 32, "small_data_min_epochs=-1.0 must be in [0, inf)"),
    ("resnet20", {"depthwise_weight_decay": -1e-4}, 32, "depthwise_weight_decay=-0.0001"),
    ("resnet20", {"step_epochs": (60.0, 30.0)}, 32, "step_epochs=(60.0, 30.0) must be non-negative and increasing"),
    ("resnet20", {"aspect_ratio_range": (0.0, 1.0)}, 32, "aspect_ratio_range=(0.0, 1.0)"),
    ("resnet20", {"scale_jitter_range": (512, 256)}, 32, "scale_jitter_range=(512, 256)"),
    ("resnet20", {"pad_crop_padding": -1}, 32, "pad_crop_padding=-1 must be an integer >= 0"),
    ("resnet20", {"randaugment_num_ops": -1}, 32, "randaugment_num_ops=-1"),
    ("resnet20", {"randaugment_magnitude": 11.0}, 32, "randaugment_magnitude=11.0 must be in [0, 10]"),
    ("resnet20", {"shuffle_buffer": 0}, 32, "shuffle_buffer=0 must be an integer >= 1"),
    ("resnet20", {"multiscale_sizes": (224, 0)}, 32, "multiscale_sizes=(224, 0) must be positive integers"),
])
def test_each_bad_field_is_named(arch, fields, size, expect) -> None:
    problems = validate.config_problems(_config(arch, **fields), size)
    assert any(expect in p for p in problems), problems
    assert len(problems) == 1, problems  # only the bad field is reported


def test_good_configs_pass_and_problems_join_in_one_line(tmp_path: pathlib.Path) -> None:
    assert validate.config_problems(_config(), 32) == []
    assert validate.config_problems(_config("vgg11", eval_modes=("center", "dense")), 224) == []
    assert validate.config_problems(_config("googlenet_paper", model_overrides={"aux_logits": False}), 32) == []
    with pytest.raises(validate.ConfigError) as err:
        validate.validate(_config(batch_size=0, optimizer="x"), 32, str(tmp_path))
    assert "\n" not in str(err.value) and "batch_size" in str(err.value) and "optimizer" in str(err.value)


def test_workdir_problems(tmp_path: pathlib.Path, monkeypatch) -> None:
    afile = tmp_path / "f"
    afile.write_text("x")
    assert "is a file" in validate.workdir_problems(str(afile))[0]
    assert "is a file" in validate.workdir_problems(str(afile / "run"))[0]
    assert validate.workdir_problems(str(tmp_path / "new" / "run")) == []
    monkeypatch.setattr(os, "access", lambda *a: False)  # root may write anywhere: simulate read-only
    assert "not writable" in validate.workdir_problems(str(tmp_path / "run"))[0]
