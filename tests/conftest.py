"""Shared fixtures. Prefect runs in ephemeral mode with a home of its own under .cache/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".cache" / "prefect-tests"))
os.environ.setdefault("CXRVQA_PSEUDONYM_KEY", "test-key-for-cxrvqa-tests")
# The tests' CLI builds in processes of their own keep their Prefect server for the next one 5 s, not the 10 minutes
# of the default (`flows.prefect_env.KEPT_IDLE_S`): none outlives the suite by long.
os.environ.setdefault("CXRVQA_PREFECT_SERVER_IDLE", "5")

FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data ($CXRVQA_DATA_DIR); skipped locally when unset, an error in CI."""
    value = os.environ.get("CXRVQA_DATA_DIR")
    if not value:
        if os.environ.get("CI"):
            pytest.fail("CXRVQA_DATA_DIR is not set: CI must point it at ../shared/data")
        pytest.skip("CXRVQA_DATA_DIR is not set")
    path = Path(value)
    if not (path / "dicom").is_dir():
        pytest.fail(f"CXRVQA_DATA_DIR={value} has no dicom/ folder: expected the shared data layout")
    return path


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo built once per session through the real flow (all stages). Read it, or copy it before a change."""
    from cxrvqa.cli import _demo_inputs
    from cxrvqa.config import load_config
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("demo-build")
    build_dataset(load_config(None, {**_demo_inputs(), "out_dir": out, "imaging": {"workers": 1}}))
    return out
