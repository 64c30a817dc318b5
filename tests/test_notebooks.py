"""The example notebooks (examples/*.ipynb) run from top to bottom, with a tiny budget.

Each notebook reads ``ARITH_GYM_NOTEBOOK_BUDGET`` in its parameters cell; ``tiny`` shrinks
every loop to seconds, so these tests only check that the notebooks still run against the
current code. They execute in a fresh ``python3`` kernel whose working directory is a
temporary one (nothing lands in the repository). Select them with ``-m notebook``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds; the tiny budget needs a few


def kernel_env() -> dict[str, str]:
    """The kernel's environment: the tiny budget, one torch thread, this checkout and this Python."""
    env = dict(os.environ)
    env.update(ARITH_GYM_NOTEBOOK_BUDGET="tiny", OMP_NUM_THREADS="1")
    # The python3 kernelspec runs "python" from PATH: make that the interpreter running the tests.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_the_example_notebooks_are_there_without_outputs():
    assert [path.name for path in NOTEBOOKS] == [
        "01_environment.ipynb",
        "02_finetune_critical_kl.ipynb",
        "03_sb3.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        # Committed clean: outputs belong to a run, not to the repository.
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
        assert len(parameters) == 1 and "ARITH_GYM_NOTEBOOK_BUDGET" in parameters[0].source, path.name


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_with_a_tiny_budget(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3")
    client.execute(cwd=str(tmp_path), env=kernel_env())  # raises CellExecutionError on any error
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
