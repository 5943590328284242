"""The demo build the item exports read, built once per session with the default seed, under which the demo's
six patients fall into all three splits (demo-p1, demo-p3 and the JPEG and PNG studies' patients: train;
demo-p12: val; demo-p14: test; see src/cxrvqa/demo/README.md), demo-s1's pneumothorax and demo-s3's negated
one in one split (a complementary pair)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.cli import _demo_inputs
from cxrvqa.config import load_config
from cxrvqa.store import Store

#: The seed of the export demo build; validate-file needs it too (tests write it to a config file).
SEED = 0
SPLITS = {
    "demo-s1": "train",
    "demo-s2": "val",
    "demo-s3": "train",
    "demo-s4": "test",
    "s50000005": "train",
    "900000000000000000000000000000000000001": "train",
}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("export-demo")
    build_dataset(load_config(None, {**_demo_inputs(), "out_dir": out, "seed": SEED, "imaging": {"workers": 1}}))
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        found = dict(store.query("SELECT DISTINCT study_id, split FROM current_qa_items ORDER BY 1"))
    assert found == SPLITS, f"the demo's splits under seed {SEED} changed: choose another SEED"
    return out


def db_rows(out: Path, sql: str, params: list | None = None) -> list[dict]:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query_dicts(sql, params)
