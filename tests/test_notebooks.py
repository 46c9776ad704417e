"""Every example notebook runs top to bottom, headless and offline, at reduced step counts.

The notebooks read ``PROBE_EXAMPLE_STEPS`` (the number of optimization steps,
256 or so by default) and ``PROBE_EXAMPLE_SIZE`` where they render torchvision
models or dream over a photo; the test sets both small so the suite stays fast. Each notebook runs in
its own temporary working folder, so the galleries it saves go there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_example_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4, f"expected the example notebooks in {EXAMPLES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "a notebook without code"
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)
    assert path.stat().st_size < 40_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_EXAMPLE_STEPS", "4")
    monkeypatch.setenv("PROBE_EXAMPLE_SIZE", "64")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the cell when any cell fails
    images = [
        output for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert images, "the notebook showed no picture"
    # no warning spam: captum imports tqdm.auto, which in a kernel without ipywidgets wrote "IProgress not
    # found. Please update jupyter and ipywidgets" under the first cell that called probe.attribute
    warned = [(cell.source[:60], output.text[:200]) for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("name") == "stderr"]
    assert warned == [], warned
    long = [(cell.source[:60], len(output.get("text", ""))) for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if len(output.get("text", "")) > 2000]
    assert long == [], long  # outputs a reader takes in at a glance (a progress line is rewritten, not repeated)



def test_text_progress_rewrites_one_line_and_ends_it() -> None:
    """The API was silent in a notebook (its progress callbacks had no reader without ipywidgets)."""
    import io

    from probe.errors import ProbeUsageError
    from probe.progress import text_progress

    stream = io.StringIO()
    report = text_progress("style", every=0, stream=stream)
    for step in (1, 2, 3):
        report(step, 3, {"content": 0.03125, "style": 1.2345})
    lines = stream.getvalue().split("\r")[1:]
    assert lines[0].startswith("style: step 1/3 (33%), content 0.0312, style 1.23")
    assert lines[-1] == "style: step 3/3 (100%), content 0.0312, style 1.23\n" and len(lines) == 3
    quiet = io.StringIO()
    report = text_progress(every=3600, stream=quiet)
    for step in range(1, 101):
        report(step, 100, {})
    assert quiet.getvalue() == "\rstep 1/100 (1%)\r" + "step 100/100 (100%)".ljust(15) + "\n"
    with pytest.raises(ProbeUsageError, match="every"):
        text_progress(every=-1)
