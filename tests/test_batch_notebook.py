"""notebooks/03_batch.ipynb runs top to bottom (nbclient); skipped when pytest runs notebooks itself (--nbmake)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_batch.ipynb"


def test_batch_notebook_executes(request, tmp_path):
    if request.config.getoption("--nbmake", default=False):
        pytest.skip("notebooks are executed by nbmake in this session")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped"
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text
    # the summary cell shows the corrupt file as an error and the rest as ok
    shown = "".join(
        str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "broken.dm4" in shown and "error" in shown and "metadata: HAADF" in shown
