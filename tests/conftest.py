"""Shared fixtures: the real files beside the project and headless matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("LATTICEFIT_REALDATA", PROJECT_ROOT.parent / "shared" / "realdata"))
SAMPLE_DATA = PROJECT_ROOT / "sample_data"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of ``../shared/realdata``; the test is skipped when the folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(
            f"real microscope files not found at {REALDATA} (they live beside the project, "
            "not in it; set LATTICEFIT_REALDATA to point elsewhere)"
        )
    return REALDATA


def _realfile(relpath: str) -> Path:
    p = REALDATA / relpath
    if not p.exists():
        pytest.skip(
            f"real file {relpath} not found under {REALDATA} (the real microscope files live beside "
            "the project, not in it; set LATTICEFIT_REALDATA to point elsewhere)"
        )
    return p


@pytest.fixture(scope="session")
def realfile():
    """``realfile(relpath)``: path of one real file under ``../shared/realdata``, skipping when it is absent."""
    return _realfile


def pytest_collection_modifyitems(config, items):
    """Tests that use the real files carry the ``realdata`` marker (``-m "not realdata"`` deselects them)."""
    for item in items:
        if {"realfile", "realdata"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA
