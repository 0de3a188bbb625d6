"""The planners' notebooks run top to bottom against a store built from the real extracts.

Each notebook reads its store from ``GEOSERVICE_STORE`` (the variable ``config.yml`` uses) and
runs in an ipykernel of this interpreter (the venv). The executed copy and its figures are
saved under ``data/build/notebooks/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import base64
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the notebooks run in; a test dependency)
import nbclient
import nbformat
import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OUT = ROOT / "data" / "build" / "notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, real_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOSERVICE_STORE", str(real_store / "store.gpkg"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError (with the cell's traceback) on any failure

    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook draws its map and chart"
    for i, png in enumerate(images):
        (OUT / f"{path.stem}-{i}.png").write_bytes(base64.b64decode(png))
    text = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert str(real_store / "store.gpkg") in text  # it read the store it was given
