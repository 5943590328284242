"""The dask executor: the demo built on a 2-worker LocalCluster through prefect-dask gives the same tables
as the local executor, and a build never merges the shards that an earlier, killed build left behind."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store
from cxrvqa.store.shards import SHARDS_DIR

pytestmark = pytest.mark.flow

#: Columns that differ between two builds of the same inputs (code_version too, where the source is edited
#: between the two builds, as in a developer's working tree).
VOLATILE = {"run_id", "created_at", "started_at", "finished_at", "seconds", "applied_at", "code_version"}
#: Bookkeeping of runs, not data (report_inputs and qa_input_states: the reports input's last read and the state the
#: QA inputs were last made from, with a hash of stored times; sentence_readings: a cache whose rows are the readings
#: a process had not read before, so they depend on what the test process read earlier).
NOT_DATA = {"runs", "run_stages", "schema_migrations", "report_inputs", "qa_input_states", "sentence_readings"}


def demo_config(out: Path, **overrides: object):
    """The demo in batches of 2, so that each stage has several batches in flight and merged."""
    from cxrvqa.cli import _demo_inputs
    from cxrvqa.config import load_config

    return load_config(
        None,
        {
            **_demo_inputs(),
            "out_dir": out,
            "imaging": {"batch_size": 2, "workers": 1},
            "report_limits": {"batch_size": 2},
            "extraction": {"batch_size": 2, "workers": 1},
            "qa": {"batch_size": 2, "workers": 1},
            **overrides,
        },
    )


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every data table's rows as sorted tuples of text, without the columns that name a run or a moment."""
    with Store(db, read_only=True) as store:
        tables = [
            name
            for (name,) in store.query(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1"
            )
            if name not in NOT_DATA
        ]
        found = {}
        for table in tables:
            columns = [
                f'"{name}"'
                for (name,) in store.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                )
                if name not in VOLATILE
            ]
            rows = store.query(f"SELECT {', '.join(columns)} FROM {table}")
            found[table] = sorted(tuple(map(str, row)) for row in rows)
        return found


def test_a_dask_build_on_a_local_cluster_writes_the_tables_of_a_local_build(tmp_path: Path) -> None:
    from cxrvqa.core.provenance import code_version
    from flows.build import build_dataset

    local = build_dataset(demo_config(tmp_path / "local"))
    expected = snapshot(tmp_path / "local" / "cxrvqa.duckdb")
    assert len(expected["qa_items"]) > 200 and len(expected["images"]) == 7

    # a shard left by a build killed between computing and merging a batch: never merged, deleted
    out = tmp_path / "dask"
    stale = out / SHARDS_DIR / "20200101T000000Z-000000" / "qa"
    stale.mkdir(parents=True)
    with Store(tmp_path / "local" / "cxrvqa.duckdb", read_only=True) as store:
        pq.write_table(store.con.sql("SELECT * FROM qa_items").to_arrow_table(), stale / "000000-qa_items.parquet")

    code_version.cache_clear()  # the workers read the source as it is now: so does this process
    dask = build_dataset(demo_config(out, executor={"kind": "dask", "dask_local_workers": 2}))
    assert dask["stages"] == local["stages"]
    found = snapshot(out / "cxrvqa.duckdb")
    assert found.keys() == expected.keys()
    for table in expected:
        assert found[table] == expected[table], f"{table}: {len(found[table])} rows vs {len(expected[table])}"
    assert not (out / SHARDS_DIR).exists()
    assert sorted(p.name for p in (out / "images").rglob("*") if p.is_file()) == sorted(
        p.name for p in (tmp_path / "local" / "images").rglob("*") if p.is_file()
    )


def test_the_cli_rejects_a_dask_executor_without_a_cluster(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--demo", "--out", str(tmp_path), "--executor", "dask"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "executor: kind: dask needs exactly one of dask_address" in message and "found neither" in message
    assert not (tmp_path / "cxrvqa.duckdb").exists()


def test_a_dask_build_fails_clearly_when_the_scheduler_cannot_be_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from cxrvqa import cluster
    from cxrvqa.errors import ClusterError
    from flows.build import build_dataset

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterError, match=rf"Dask cluster tcp://127.0.0.1:{port}: cannot connect to the scheduler"):
        build_dataset(
            demo_config(
                tmp_path, stages=["reports"], executor={"kind": "dask", "dask_address": f"tcp://127.0.0.1:{port}"}
            )
        )
    with Store(tmp_path / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT status FROM runs") == [("failed",)]
    assert not (tmp_path / SHARDS_DIR).exists()
