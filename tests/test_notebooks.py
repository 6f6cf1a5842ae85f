"""The notebooks run top to bottom (executed with a real kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# The two that start Ray Tune and Ray Serve take about a minute together: `pytest -m slow`
# runs them (README, "Tests"); the quickstart notebook runs by default.
@pytest.mark.parametrize("name", ["quickstart.ipynb", pytest.param("serving.ipynb", marks=pytest.mark.slow),
                                  pytest.param("sweep_analysis.ipynb", marks=pytest.mark.slow)])
def test_notebook_executes(name, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors
