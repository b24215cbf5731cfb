"""flaxnets.summary: per-layer shapes in execution order, totals and FLOPs."""

from __future__ import annotations

import flaxnets


def test_summary_resnet18_rows_total_and_flops() -> None:
    s = flaxnets.summary("resnet18", depth=1)
    names = [r[0] for r in s.rows]
    assert names[:2] == ["conv1", "bn1"] and names[-1] == "fc"
    assert dict((r[0], r[1]) for r in s.rows)["conv1"] == (1, 112, 112, 64)
    assert dict((r[0], r[1]) for r in s.rows)["layer4.1"] == (1, 7, 7, 512)
    assert s.total_params == 11_689_512
    assert sum(r[2] for r in s.rows) == s.total_params  # depth-1 rows partition the params
    # ResNet-18 is 1.8 GMACs at 224 (paper Table 1): XLA counts multiply and add.
    assert s.flops is not None and 3.3e9 < s.flops < 3.8e9
    text = str(s)
    assert "112×112×64" in text and "11,689,512" in text


def test_summary_input_size_override() -> None:
    s = flaxnets.summary("resnet20", input_size=(64, 64, 3), flops=False, depth=1)
    assert dict((r[0], r[1]) for r in s.rows)["conv1"] == (1, 64, 64, 16)
    assert s.flops is None
