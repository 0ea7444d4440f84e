"""The quick-start notebook runs top to bottom (on a tiny subset) so it never rots."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_DRIFT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("HYBRID_DRIFT_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "precision" in text and "recall" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots rendered
    assert (tmp_path / "report.html").stat().st_size > 10_000
