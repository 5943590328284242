"""The extraction stage over a real store: tables, quality codes, bad input, reruns, failures."""

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
from cxrvqa.core.scene_graph import SceneGraph
from cxrvqa.extraction import stage
from cxrvqa.store import StageCounts, Store, start_run
from tests.reports.test_stage import run_stage as run_report_stage
from tests.reports.test_stage import write_jsonl


def run_extract(config: Config, batch_size: int = 2) -> StageCounts:
    """What the flow does, without Prefect."""
    with Store(config.db_path) as store:
        run_id = start_run(store, config)
        context = stage.prepare(config)
        stage.restore_current(store, context)
        total, pending = stage.pending_studies(store, context)
        counts = StageCounts(n_input=total - len(pending), n_skipped=total - len(pending))
        for batch in batched(pending, batch_size):
            counts.add(run_batch(stage, store, run_id, batch, context))
    return counts


REPORTS = [
    {
        "study_id": "s1",
        "patient_id": "p1",
        "text": "INDICATION: Cough.\nFINDINGS: Small left pleural effusion. No "
        "pneumothorax.\nIMPRESSION: Left effusion.",
    },
    {"study_id": "deid", "patient_id": "p2", "text": "FINDINGS: XXXX XXXX. ___.\nIMPRESSION: XXXX."},
    {
        "study_id": "german",
        "patient_id": "p3",
        "text": "BEFUND: Herz normal groß. Lunge beidseits frei belüftet, kein Erguss, keine Infiltrate erkennbar.",
    },
    {"study_id": "indication-only", "patient_id": "p4", "text": "INDICATION: Chest pain."},
    {
        "study_id": "html",
        "patient_id": "p5",
        "text": "FINDINGS: <script>alert('x')</script> '; DROP TABLE observations; -- No pneumothorax.\x07\x00",
    },
    {"study_id": "plain", "patient_id": "p6", "text": "FINDINGS: The patient is positioned well for the study."},
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    reports = write_jsonl(tmp_path / "r.jsonl", REPORTS)
    return Config(
        out_dir=tmp_path / "out",
        reports=reports,
        report_format="jsonl",
        stages=["reports", "extract"],
        extraction={"workers": 1},
    )


def test_every_study_gets_a_graph_with_its_quality_codes(config: Config) -> None:
    run_report_stage(config)
    counts = run_extract(config)
    assert (counts.n_input, counts.n_skipped, counts.n_done, counts.n_rejected) == (6, 0, 6, 0)
    with Store(config.db_path, read_only=True) as store:
        quality = dict(store.query("SELECT study_id, quality FROM current_scene_graphs"))
        assert quality == {
            "s1": [],
            "deid": ["deid_only"],
            "german": ["not_english"],
            "indication-only": ["no_report_findings"],
            "html": [],
            "plain": ["no_observations"],
        }
        # the tables that the validators and templates join
        assert store.query(
            "SELECT obs_id, finding, presence, laterality, severity FROM current_observations "
            "WHERE study_id = 's1' ORDER BY obs_id"
        ) == [
            ("o1", "pleural_effusion", "present", "left", "mild"),
            ("o2", "pneumothorax", "absent", None, None),
            ("o3", "pleural_effusion", "present", "left", None),
        ]
        assert (
            store.query(
                "SELECT region FROM obs_regions JOIN current_observations o USING (graph_id, obs_id) "
                "WHERE o.study_id = 'html'"
            )
            == []
        )
        evidence = store.query(
            'SELECT r.text, e.start, e."end", o.name FROM obs_sentences e JOIN current_observations o '
            "USING (graph_id, obs_id) JOIN current_reports r ON r.study_id = o.study_id"
        )
        graph = store.query("SELECT graph FROM current_scene_graphs WHERE study_id = 's1'")[0][0]
    assert evidence and all(text[start:end].lower() == name.lower() for text, start, end, name in evidence)
    parsed = SceneGraph.model_validate_json(graph)
    assert parsed.indication == "Cough." and [s.section for s in parsed.sentences] == [
        "indication",
        "findings",
        "findings",
        "impression",
    ]


def test_rerun_skips_and_changed_reports_or_rules_are_extracted_again(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_report_stage(config)
    run_extract(config)
    again = run_extract(config)
    assert (again.n_input, again.n_skipped, again.n_done) == (6, 6, 0)
    write_jsonl(config.reports, [{**REPORTS[0], "text": "FINDINGS: Large right pneumothorax."}, *REPORTS[1:]])
    run_report_stage(config)
    changed = run_extract(config)
    assert (changed.n_skipped, changed.n_done) == (5, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT finding, presence, laterality FROM current_observations WHERE study_id = 's1'") == [
            ("pneumothorax", "present", "right")
        ]
        assert store.query("SELECT count(*) FROM scene_graphs WHERE study_id = 's1'")[0][0] == 2  # history kept
    monkeypatch.setattr(stage, "rules_extractor_version", lambda: "edited-rules")
    assert run_extract(config).n_done == 6
    # the edit undone: the first version's graphs are current again, without extracting again
    monkeypatch.undo()
    assert (run_extract(config).n_done, run_extract(config).n_done) == (0, 0)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT DISTINCT extractor_version FROM current_scene_graphs") == [
            (stage.rules_extractor_version(),)
        ]
        assert store.query("SELECT finding, presence, laterality FROM current_observations WHERE study_id = 's1'") == [
            ("pneumothorax", "present", "right")
        ]


def test_a_failing_study_becomes_a_failure_row_and_the_batch_goes_on(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_report_stage(config)
    real = stage.extract_study

    def flaky(study: stage.StudyInput):
        if study.study_id == "plain":
            raise RecursionError("maximum recursion depth exceeded")
        return real(study)

    monkeypatch.setattr(stage, "extract_study", flaky)
    counts = run_extract(config, batch_size=10)
    assert (counts.n_done, counts.n_rejected) == (5, 1)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT study_id, reason, error, attempts FROM current_extraction_failures") == [
            ("plain", "extractor_error", "study 'plain': RecursionError: maximum recursion depth exceeded", 1)
        ]
    monkeypatch.setattr(stage, "extract_study", real)
    retried = run_extract(config)
    assert (retried.n_skipped, retried.n_done) == (5, 1)  # the failed study is pending again
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM current_extraction_failures")[0][0] == 0


def test_the_llm_backend_needs_a_server_and_a_model(config: Config) -> None:
    from cxrvqa.errors import ConfigError

    llm = config.extraction.model_copy(update={"backend": "llm"})
    with pytest.raises(ConfigError, match="needs base_url and model"):
        stage.prepare(config.model_copy(update={"extraction": llm}))


def test_a_long_report_is_extracted_in_linear_time(config: Config, tmp_path: Path) -> None:
    """A report near the size limit, one run-on sentence full of findings, completes quickly."""
    sizes = {}
    for n in (1000, 4000):
        path = write_jsonl(
            tmp_path / f"long{n}.jsonl",
            [{"study_id": f"long{n}", "patient_id": "p", "text": "FINDINGS: " + "small left effusion and " * n}],
        )
        cfg = config.model_copy(update={"reports": path, "out_dir": tmp_path / f"out{n}"})
        run_report_stage(cfg)
        start = time.perf_counter()
        assert run_extract(cfg).n_done == 1
        sizes[n] = time.perf_counter() - start
    assert sizes[4000] < 8 * sizes[1000] + 1.0, sizes  # quadratic would be 16x


def test_graph_json_matches_the_published_schema(config: Config) -> None:
    import jsonschema

    from cxrvqa.core.resources import load_json_schema

    run_report_stage(config)
    run_extract(config)
    validator = jsonschema.Draft202012Validator(load_json_schema("scene_graph.schema.json"))
    with Store(config.db_path, read_only=True) as store:
        graphs = [json.loads(g) for (g,) in store.query("SELECT graph FROM current_scene_graphs")]
    assert len(graphs) == 6
    for graph in graphs:
        validator.validate(graph)


def test_the_worker_processes_extract_a_batch_as_this_process_does(tmp_path: Path) -> None:
    """12 studies (the fixture's reports twice over) in chunks of 1: the pool of 2 workers gets 4 chunks each."""
    reports = [{**r, "study_id": f"{r['study_id']}-{n}"} for n in range(2) for r in REPORTS]
    config = Config(
        out_dir=tmp_path / "out",
        reports=write_jsonl(tmp_path / "r.jsonl", reports),
        report_format="jsonl",
        stages=["reports", "extract"],
    )
    run_report_stage(config)
    context = stage.prepare(config)
    with Store(config.db_path) as store:
        work, _ = stage.load_batch(store, stage.pending_studies(store, context)[1], context)

    def extracted(workers: int) -> list[dict[str, list]]:  # the rows but their creation time, in order
        parts = list(stage.compute_batch(work, replace(context, workers=workers), "r1"))
        return [{t: [{**row, "created_at": None} for row in rows] for t, rows in part.items()} for part in parts]

    shutdown_pools()
    in_pool = extracted(2)
    assert 2 in parallel._pools  # the pool's work, not this process's
    assert in_pool == extracted(1) and len(in_pool[0]["scene_graphs"]) == 12
