"""The notebooks in colab/: stored without outputs, installable on Colab, and executed end to
end at a small size (nbclient; the cell tagged ``parameters`` is followed by CI's values, as
papermill injects them)."""

from __future__ import annotations

import pathlib

import pytest

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = sorted(p.name for p in COLAB.glob("*.ipynb"))

# CI sizes: a few steps, small images, no downloads.
SMALL = {
    "flaxnets_quickstart.ipynb": "MAX_STEPS = 4",
    "transfer_learning.ipynb": "PRETRAINED = False\nIMAGE_SIZE = 32\nCROPS_PER_CLASS = 8\nSTEPS = 3",
    "zoo_at_a_glance.ipynb": None,
    "training_at_scale.ipynb": ('ARCH = "resnet20"\nDATA_DIR = "{tmp}/tfds"\nMAX_STEPS = 3\nBATCH_PER_DEVICE = 16\n'
                                'WORKDIR = "{tmp}/run"'),
}
# What each notebook must print when it ran through.
EXPECT = {
    "flaxnets_quickstart.ipynb": ("total params", "max |flax - torch| logit difference", "test accuracy (top-1)"),
    "transfer_learning.ipynb": ("validation top-1", "held-out accuracy"),
    "zoo_at_a_glance.ipynb": ("efficientnet_b0", "models in", "best ImageNet top-1"),
    "training_at_scale.ipynb": ("training resnet20 on digits", "top-1"),
}


def _load(name: str):
    import nbformat

    return nbformat.read(COLAB / name, as_version=4)


def test_notebooks_are_stored_clean_and_install_on_colab() -> None:
    """Outputs stripped, every notebook known here, the Colab install keeps Colab's builds."""
    assert set(NOTEBOOKS) == set(SMALL), "a new notebook needs its CI size in tests/test_notebooks.py"
    for name in NOTEBOOKS:
        nb = _load(name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), f"{name}: strip the outputs"
        setup = code[0].source
        assert "pip" in setup and "flaxnets[train-base]" in setup, name  # not [train]: Colab's tensorflow stays
        assert "torch==" not in setup and "[parity]" not in setup, name  # no pin over Colab's torch
        assert "YOUR-ACCOUNT" in setup and "raise SystemExit" in setup, name  # placeholder that says so
        if SMALL[name] is not None:
            assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, name


@pytest.mark.slow  # a kernel each (20 s and more on 2 cores); the charts alone are in test_ecosystem.py
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: pathlib.Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = _load(name)
    if SMALL[name] is not None:
        i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(SMALL[name].format(tmp=tmp_path)))
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(COLAB)}}).execute()
    text = "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    for expected in EXPECT[name]:
        assert expected in text, f"{name}: {expected!r} not in its output"
    images = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    assert images >= (2 if name == "zoo_at_a_glance.ipynb" else 0 if name == "transfer_learning.ipynb" else 1), name
