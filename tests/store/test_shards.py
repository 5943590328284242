"""Parquet shards: what a Dask worker writes for a batch, and the merge that loads it with the stage's own writer.

The stages run here without Prefect or Dask: each batch once through the local path (load, compute, write)
and once through shards (load, compute, write_shards, merge_shards), into two stores that must end equal."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cxrvqa.config import load_config
from cxrvqa.core.parallel import batched
from cxrvqa.core.resources import resource
from cxrvqa.extraction import stage as extract_stage
from cxrvqa.qa import stage as qa_stage
from cxrvqa.reports import stage as report_stage
from cxrvqa.reports.loaders import load_reports
from cxrvqa.store import StageCounts, Store
from cxrvqa.store import shards as shards_module
from cxrvqa.store.shards import clear_shards, merge_shards, read_shards, shard_folder, write_shards, write_tables

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)


def test_a_batch_becomes_one_whole_file_per_table_with_rows(tmp_path: Path) -> None:
    folder = shard_folder(tmp_path, "run-1", "extract")
    # the second part has only nulls where the first has text, and empty lists: the parts are joined anyway
    parts = [
        {
            "observations": [{"obs_id": "o1", "severity": "small", "modifiers": ["acute"], "created_at": NOW}],
            "extraction_failures": [],
        },
        {
            "observations": [{"obs_id": "o2", "severity": None, "modifiers": [], "created_at": NOW}],
            "extraction_failures": pa.table({"study_id": pa.array([], pa.string())}),
        },
    ]
    shards = write_shards(folder, "000003", parts)
    assert folder == tmp_path / "shards" / "run-1" / "extract"
    assert shards.files == (("observations", str(folder / "000003-observations.parquet")),)
    assert sorted(p.name for p in folder.iterdir()) == ["000003-observations.parquet"]  # no temporary left
    assert read_shards(shards)["observations"].to_pylist() == [
        {"obs_id": "o1", "severity": "small", "modifiers": ["acute"], "created_at": NOW},
        {"obs_id": "o2", "severity": None, "modifiers": [], "created_at": NOW},
    ]


def test_a_failed_merge_writes_nothing_and_leaves_the_shards_for_the_next_build_to_delete(tmp_path: Path) -> None:
    shards = write_shards(
        shard_folder(tmp_path, "run-1", "reports"),
        "000000",
        [
            {
                "report_rejects": [
                    {
                        "source": "a.txt",
                        "study_id": "s1",
                        "reason": "empty_report",
                        "detail": "",
                        "parser_version": "p",
                        "run_id": "run-1",
                        "input_hash": "h",
                        "code_version": "c",
                        "created_at": NOW,
                    }
                ]
            }
        ],
    )

    context = report_stage.ReportStageContext("jsonl", "p", 1000)

    def write(parts) -> StageCounts:
        bad = [{"study_id": "s1", "input_hash": "h", "report_hash": "r", "no_such_column": 1}]
        return report_stage.write_batch(store, StageCounts(), [{**part, "reports": bad} for part in parts], context)

    with Store(tmp_path / "cxrvqa.duckdb") as store:
        with pytest.raises(duckdb.Error):
            merge_shards(shards, write)
        assert store.query("SELECT count(*) FROM report_rejects") == [(0,)]
        assert all(Path(path).is_file() for _, path in shards.files)
        assert (
            merge_shards(
                shards, lambda parts: report_stage.write_batch(store, StageCounts(), parts, context)
            ).n_rejected
            == 1
        )
        assert store.query("SELECT study_id, reason FROM report_rejects") == [("s1", "empty_report")]
    assert not any(Path(path).exists() for _, path in shards.files)
    write_shards(shard_folder(tmp_path, "run-2", "qa"), "000000", [{"qa_done": [{"study_id": "s1"}]}])
    assert clear_shards(tmp_path) == 1 and not (tmp_path / "shards").exists() and clear_shards(tmp_path) == 0


def test_write_tables_inserts_a_tables_parts_together_by_row_group(tmp_path: Path, monkeypatch) -> None:
    """Parts with the same columns are held until they make a row group (here 5 rows), then the rest at the end;
    a part with other columns first sends the held ones; a column all null in one part takes the others' type; a
    table written once keeps its first row of a key (each part inserted as it comes); row dicts go as they come."""
    monkeypatch.setattr(shards_module, "ROW_GROUP_ROWS", 5)

    def part(ids: range, answer: list | None = None) -> pa.Table:
        answers = answer if answer is not None else [f"a{i}" for i in ids]
        return pa.table({"k": [f"k{i}" for i in ids], "answer": pa.array(answers)})

    with Store(tmp_path / "cxrvqa.duckdb") as store:
        store.con.execute("CREATE TABLE scratch (k VARCHAR, answer VARCHAR, extra INTEGER DEFAULT 7)")
        inserts: list[tuple[str, list[str]]] = []
        insert = store.insert

        def keys(rows) -> list[str]:
            return [
                row.get("k", row.get("reading")) for row in (rows.to_pylist() if isinstance(rows, pa.Table) else rows)
            ]

        monkeypatch.setattr(
            store, "insert", lambda table, rows: inserts.append((table, keys(rows))) or insert(table, rows)
        )
        readings = {"reader_version": "r", "run_id": "run-1", "text": "a."}
        written = write_tables(
            store,
            [
                {"scratch": part(range(0, 2)), "sentence_readings": pa.table(_one({**readings, "reading": "[1]"}))},
                {"scratch": part(range(2, 4), answer=[None, None])},  # the null type: promoted to text
                {"scratch": part(range(4, 7)), "sentence_readings": pa.table(_one({**readings, "reading": "[2]"}))},
                {"scratch": part(range(7, 8)).append_column("extra", pa.array([1]))},
                {"scratch": [{"k": "k8", "answer": "a8"}]},
                {"scratch": part(range(9, 10))},
            ],
        )
        assert written == {"scratch": 10, "sentence_readings": 2}
        assert inserts == [
            ("sentence_readings", ["[1]"]),
            ("scratch", ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]),  # 2 + 2 + 3 >= 5
            ("sentence_readings", ["[2]"]),
            ("scratch", ["k8"]),  # row dicts: as they come, before the held part
            ("scratch", ["k7"]),  # other columns: sent when a part with the first ones comes
            ("scratch", ["k9"]),  # the rest, at the end
        ]
        assert store.query("SELECT k, answer, extra FROM scratch ORDER BY k") == [
            ("k0", "a0", 7),
            ("k1", "a1", 7),
            ("k2", None, 7),
            ("k3", None, 7),
            ("k4", "a4", 7),
            ("k5", "a5", 7),
            ("k6", "a6", 7),
            ("k7", "a7", 1),
            ("k8", "a8", 7),
            ("k9", "a9", 7),
        ]
        assert store.query("SELECT reading FROM sentence_readings") == [("[1]",)]  # the first of its key


def _one(row: dict) -> dict:
    return {name: [value] for name, value in row.items()}


def _snapshot(store: Store, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    found = {}
    for table in tables:
        columns = [
            f'"{name}"'
            for (name,) in store.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            )
            if name not in ("run_id", "created_at")
        ]
        found[table] = sorted(tuple(map(str, row)) for row in store.query(f"SELECT {', '.join(columns)} FROM {table}"))
    return found


def test_reports_extraction_and_qa_through_shards_store_what_the_local_path_stores(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "out_dir": tmp_path,
            "reports": Path(str(resource("demo") / "reports.jsonl")),
            "report_format": "jsonl",
            "extraction": {"workers": 1},
            "qa": {"workers": 1},
        },
    )
    stores = {"local": Store(tmp_path / "local.duckdb"), "shards": Store(tmp_path / "shards.duckdb")}

    def run(module, batches: list, context) -> None:
        """Each batch of a stage into both stores: directly, and through a worker's shards and the merge."""
        for number, batch in enumerate(batches):
            for path, store in stores.items():
                work, counts = module.load_batch(store, batch, context)
                parts = module.compute_batch(work, context, "run-1")
                if path == "shards":
                    shards = write_shards(shard_folder(tmp_path, "run-1", "stage"), f"{number:06d}", parts)
                    merge_shards(shards, partial(module.write_batch, store, counts, context=context))
                else:
                    module.write_batch(store, counts, parts, context)

    try:
        records = list(report_stage.reject_duplicate_studies(load_reports(config.reports, "jsonl")))
        run(report_stage, list(batched(records, 3)), report_stage.prepare(config))
        extract = extract_stage.prepare(config)
        run(extract_stage, list(batched(extract_stage.pending_studies(stores["local"], extract)[1], 3)), extract)
        qa = qa_stage.prepare(config)
        for store in stores.values():
            qa_stage.record_inputs(store, "run-1", qa)
        run(qa_stage, list(batched(qa_stage.pending_work(stores["local"], qa)[1], 3)), qa)
        tables = (
            "reports",
            "sentences",
            "report_rejects",
            *extract_stage.TABLES,
            "qa_items",
            "qa_answer_parts",
            "qa_done",
        )
        local, sharded = (_snapshot(store, tables) for store in stores.values())
        assert len(local["scene_graphs"]) == 6 and len(local["qa_items"]) > 200
        assert sharded == local
        assert not list((tmp_path / "shards").rglob("*.parquet"))
    finally:
        for store in stores.values():
            store.close()
