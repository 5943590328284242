"""The report stage: bad input, reruns, duplicates, the IU development reports."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cxrvqa.config import Config
from cxrvqa.core.batch import run_batch
from cxrvqa.core import parallel
from cxrvqa.core.parallel import batched, shutdown_pools
from cxrvqa.reports import stage
from cxrvqa.reports.loaders import load_reports
from cxrvqa.store import StageCounts, Store, start_run


def run_stage(config: Config, batch_size: int = 2) -> StageCounts:
    """What the flow does, without Prefect."""
    total = StageCounts()
    with Store(config.db_path) as store:
        run_id = start_run(store, config)
        context = stage.prepare(config)
        records = stage.reject_duplicate_studies(load_reports(config.reports, config.report_format))
        for batch in batched(records, batch_size):
            total.add(run_batch(stage, store, run_id, batch, context))
    return total


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    reports = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {
                "study_id": "s1",
                "patient_id": "p1",
                "text": "FINDINGS: No pneumothorax. Clear lungs.\nIMPRESSION: Normal.",
            },
            {"study_id": "s2", "patient_id": "p2", "findings": "Small left effusion.", "impression": "Effusion."},
        ],
    )
    return Config(out_dir=tmp_path / "out", reports=reports, report_format="jsonl", stages=["reports"])


def edit_s1(config: Config, text: str) -> None:
    """The fixture's input with study s1's text replaced (s2 as it was)."""
    write_jsonl(
        config.reports,
        [
            {"study_id": "s1", "patient_id": "p1", "text": text},
            {"study_id": "s2", "patient_id": "p2", "findings": "Small left effusion.", "impression": "Effusion."},
        ],
    )


def test_reports_and_sentences_are_written(config: Config) -> None:
    counts = run_stage(config)
    assert (counts.n_input, counts.n_done, counts.n_rejected) == (2, 2, 0)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT study_id, findings, impression, n_sentences FROM reports ORDER BY study_id") == [
            ("s1", "No pneumothorax. Clear lungs.", "Normal.", 3),
            ("s2", "Small left effusion.", "Effusion.", 2),
        ]
        rows = store.query('SELECT r.text, s.start, s."end", s.text FROM sentences s JOIN reports r USING (study_id)')
    assert all(text[start:end] == sentence for text, start, end, sentence in rows)


def test_rerun_skips_and_a_changed_report_replaces_the_current_one(config: Config, tmp_path: Path) -> None:
    run_stage(config)
    assert run_stage(config).n_skipped == 2
    edit_s1(config, "FINDINGS: New right effusion.")
    counts = run_stage(config)
    assert (counts.n_skipped, counts.n_done) == (1, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM reports")[0][0] == 3  # the old version stays queryable
        assert store.query("SELECT findings FROM current_reports WHERE study_id = 's1'") == [("New right effusion.",)]
        assert store.query("SELECT text FROM current_sentences WHERE study_id = 's1'") == [("New right effusion.",)]


def test_an_edit_undone_makes_the_first_version_current_again(config: Config) -> None:
    """A, B, then A again: A is the study's current report (it was skipped as 'already stored' and B stayed)."""
    first = config.reports.read_text()
    run_stage(config)
    write_jsonl(config.reports, [{"study_id": "s1", "patient_id": "p1", "text": "FINDINGS: New right effusion."}])
    run_stage(config)
    config.reports.write_text(first)
    counts = run_stage(config)
    assert (counts.n_input, counts.n_skipped, counts.n_done) == (2, 1, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT findings FROM current_reports WHERE study_id = 's1'") == [
            ("No pneumothorax. Clear lungs.",)
        ]
        assert store.query("SELECT text FROM current_sentences WHERE study_id = 's1' ORDER BY start") == [
            ("No pneumothorax.",),
            ("Clear lungs.",),
            ("Normal.",),
        ]
        # each version once: A's rows were written again, not twice
        assert store.query("SELECT count(*), count(DISTINCT report_hash) FROM reports WHERE study_id = 's1'") == [
            (2, 2)
        ]
        assert store.query("SELECT count(*) FROM sentences WHERE study_id = 's1'") == [(4,)]
    assert run_stage(config).n_skipped == 2


def test_a_report_edited_into_a_reject_leaves_the_dataset_until_it_is_edited_back(config: Config) -> None:
    """A, then A emptied (a reject), then A again: the study has no current report in between, not A's."""
    first = config.reports.read_text()
    run_stage(config)
    edit_s1(config, "   ")
    counts = run_stage(config)
    assert (counts.n_skipped, counts.n_rejected) == (1, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT study_id FROM current_reports") == [("s2",)]
        assert store.query("SELECT count(*) FROM current_sentences WHERE study_id = 's1'") == [(0,)]
    assert run_stage(config).n_skipped == 2  # the reject is the study's outcome: not made again
    config.reports.write_text(first)
    counts = run_stage(config)
    assert (counts.n_skipped, counts.n_done) == (1, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT findings FROM current_reports WHERE study_id = 's1'") == [
            ("No pneumothorax. Clear lungs.",)
        ]


def test_bad_input_is_rejected_with_reasons_and_nothing_is_lost(tmp_path: Path) -> None:
    huge = "FINDINGS: " + "No pneumothorax. " * 62_000  # ~1 MB
    records = [
        {"study_id": "empty", "text": "   "},
        {"study_id": "deid", "text": "XXXX XXXX. ___"},
        {"study_id": "huge", "text": huge},
        {"study_id": "control", "text": "FINDINGS: No\x00 effusion.\x1b[31m Clear."},
        {"study_id": "html", "text": "FINDINGS: <script>alert(1)</script> '; DROP TABLE reports; --"},
        {"study_id": "german", "text": "BEFUND: Kein Pneumothorax. Herz normal groß."},
        {"study_id": "html", "text": "FINDINGS: a different report with the same study id."},
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with open(path, "a") as handle:
        handle.write("{broken json\n")
    config = Config(out_dir=tmp_path / "out", reports=path, report_format="jsonl", stages=["reports"])
    counts = run_stage(config, batch_size=3)
    assert counts.n_input == 8 and counts.n_done + counts.n_rejected == 8
    with Store(config.db_path, read_only=True) as store:
        rejects = store.query("SELECT coalesce(study_id, source), reason FROM report_rejects ORDER BY 1")
        kept = {row[0]: row[1] for row in store.query("SELECT study_id, n_sentences FROM reports")}
        assert store.query("SELECT count(*) FROM reports WHERE study_id = 'html'")[0][0] == 1
        assert store.query("SELECT deid_only FROM sentences WHERE study_id = 'deid'") == [(True,), (True,)]
        assert "DROP TABLE" in store.query("SELECT text FROM reports WHERE study_id = 'html'")[0][0]
    assert rejects == [
        ("bad.jsonl:line 8", "invalid_record"),
        ("empty", "empty_report"),
        ("html", "duplicate_study"),
        ("huge", "report_too_long"),
    ]
    assert kept == {"deid": 2, "control": 2, "html": 1, "german": 2}
    assert run_stage(config, batch_size=3).n_skipped == 8  # rejects are not written twice


def test_a_duplicate_study_stays_rejected_whatever_the_batches_and_earlier_runs(tmp_path: Path) -> None:
    first = {"study_id": "s1", "patient_id": "p1", "text": "FINDINGS: Small left effusion."}
    other = {"study_id": "s2", "patient_id": "p2", "text": "FINDINGS: Clear lungs."}
    path = write_jsonl(tmp_path / "r.jsonl", [first, other, {**first, "text": "FINDINGS: Large pneumothorax."}])
    config = Config(out_dir=tmp_path / "out", reports=path, report_format="jsonl", stages=["reports"])
    assert run_stage(config, batch_size=2).n_rejected == 1
    # the duplicate is edited; the first record (in another batch) is skipped by the rerun
    write_jsonl(path, [first, other, {**first, "text": "FINDINGS: Edited duplicate."}])
    counts = run_stage(config, batch_size=2)
    assert (counts.n_skipped, counts.n_done) == (3, 0)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT findings FROM current_reports WHERE study_id = 's1'") == [("Small left effusion.",)]
        assert store.query("SELECT source, reason, detail FROM report_rejects") == [
            ("r.jsonl:line 3", "duplicate_study", "study 's1' was already loaded from r.jsonl:line 1")
        ]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
@pytest.mark.parametrize("reject_first", [True, False])
def test_a_study_s_first_record_decides_it_when_another_is_rejected(
    tmp_path: Path, batch_size: int, reject_first: bool
) -> None:
    """A study whose records are a report and one the loader rejects (binary text) is decided by the first of them,
    the other a duplicate, whatever the batches."""
    report = {"study_id": "s1", "patient_id": "p1", "text": "FINDINGS: Small left effusion."}
    binary = {"study_id": "s1", "patient_id": "p1", "text": "\u0000\u0001\u0002\u0003"}
    other = {"study_id": "s2", "patient_id": "p2", "text": "FINDINGS: Clear lungs."}
    records = [binary, other, report] if reject_first else [report, other, binary]
    path = write_jsonl(tmp_path / "r.jsonl", records)
    config = Config(out_dir=tmp_path / "out", reports=path, report_format="jsonl", stages=["reports"])
    run_stage(config, batch_size=batch_size)
    with Store(config.db_path, read_only=True) as store:
        current = store.query("SELECT study_id FROM current_reports ORDER BY 1")
        rejects = store.query("SELECT source, reason FROM report_rejects ORDER BY 1")
    assert current == ([("s2",)] if reject_first else [("s1",), ("s2",)])
    assert (
        rejects == [("r.jsonl:line 1", "not_text"), ("r.jsonl:line 3", "duplicate_study")]
        if reject_first
        else [("r.jsonl:line 3", "duplicate_study")]
    )


def test_iu_development_reports(data_dir: Path, tmp_path: Path) -> None:
    config = Config(
        out_dir=tmp_path / "out",
        reports=data_dir / "reports" / "iu_dev_reports.csv",
        report_format="iu",
        stages=["reports"],
    )
    started = time.perf_counter()
    counts = run_stage(config, batch_size=1000)
    seconds = time.perf_counter() - started
    assert counts.n_input == 2848 and counts.n_done + counts.n_rejected == 2848
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM reports WHERE findings = '' AND impression = ''")[0][0] < 20
        by_section = dict(store.query("SELECT section, count(*) FROM sentences GROUP BY section"))
        rejects = store.query("SELECT reason, count(*) FROM report_rejects GROUP BY reason")
    assert by_section["findings"] > 8000 and by_section["impression"] > 2500 and by_section["indication"] > 2000
    assert rejects == [] or all(reason == "empty_report" for reason, _ in rejects)
    assert counts.n_input / seconds > 500, f"{counts.n_input / seconds:.0f} reports/s"


def test_the_worker_processes_parse_a_batch_as_this_process_does(tmp_path: Path) -> None:
    texts = ["FINDINGS: No pneumothorax. Clear lungs.\nIMPRESSION: Normal.", "", "FINDINGS: 1. Small left effusion."]
    records = [{"study_id": f"s{i:04d}", "patient_id": f"p{i}", "text": texts[i % 3]} for i in range(900)]
    config = Config(out_dir=tmp_path / "out", reports=write_jsonl(tmp_path / "r.jsonl", records), report_format="jsonl")
    context = stage.prepare(config)
    with Store(config.db_path) as store:
        work, _ = stage.load_batch(store, list(load_reports(config.reports, "jsonl")), context)

    def parsed(workers: int) -> list[dict[str, list]]:  # the rows but their creation time, in order
        parts = list(stage.compute_batch(work, replace(context, workers=workers), "r1"))
        return [{t: [{**row, "created_at": None} for row in rows] for t, rows in part.items()} for part in parts]

    shutdown_pools()
    in_pool = parsed(2)  # 9 chunks of 100 records
    assert 2 in parallel._pools  # the pool's work, not this process's
    assert in_pool == parsed(1)
    assert [len(in_pool[0][t]) for t in ("reports", "sentences", "report_rejects")] == [600, 1200, 300]
