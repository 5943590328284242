"""A demo build for the review tests, built once per session, and a fresh copy of it for each test that
writes verdicts; the headless Chromium of the audit tests for the review page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cxrvqa.store import Store
from tests.audit.conftest import browser, chromium  # noqa: F401  (fixtures: the audit tests' Chromium)


@pytest.fixture(scope="session")
def review_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, built through the real flow: 4 studies with images and boxes, ~200 current items."""
    from cxrvqa.cli import _demo_inputs
    from cxrvqa.config import load_config
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("review-demo") / "build"
    build_dataset(
        load_config(
            None,
            {
                **_demo_inputs(),
                "out_dir": out,
                "imaging": {"workers": 1},
                "qa": {"workers": 1},
                "extraction": {"workers": 1},
            },
        )
    )
    return out


@pytest.fixture
def build(review_build: Path, tmp_path: Path) -> Path:
    """A copy of the demo build this test may write to."""
    copy = tmp_path / "build"
    shutil.copytree(review_build, copy)
    return copy


def rows(out: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query_dicts(sql, params)


def items_of(out: Path, n: int = 6) -> list[dict[str, Any]]:
    """`n` current items (item id order) with their key, version and grades: the ones tests review."""
    return rows(
        out,
        "SELECT q.item_id, q.template_id, q.study_id, q.template_version, q.input_hash, v.item_version, "
        "g.grade, g.label, g.weakest FROM current_qa_items q JOIN current_qa_grades g "
        "USING (item_id, template_version, input_hash) JOIN current_item_versions("
        "(SELECT list(item_id) FROM current_qa_items)) v USING (item_id) "
        "WHERE g.grade >= 4 ORDER BY q.item_id LIMIT ?",
        [n],
    )


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
