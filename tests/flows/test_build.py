"""The real `build_dataset` Prefect flow and the CLI around it, on the bundled demo data."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.config import AVAILABLE_STAGES, load_config
from cxrvqa.store import Store

pytestmark = pytest.mark.flow
runner = CliRunner()
#: The demo's PadChest-style study and patient (invented ids in PadChest's style).
PADCHEST_STUDY, PADCHEST_PATIENT = "900000000000000000000000000000000000001", "900000000000000000000000000000000000002"


def demo_config(out: Path, **overrides: object):
    from cxrvqa.cli import _demo_inputs

    return load_config(None, {**_demo_inputs(), "out_dir": out, **overrides})


def test_every_available_stage_has_a_flow() -> None:
    from flows.build import STAGE_FLOWS

    assert tuple(STAGE_FLOWS) == AVAILABLE_STAGES


def test_a_stage_batch_starts_the_next_batch_before_it_writes_and_forgets_it_on_failure(monkeypatch) -> None:
    from types import SimpleNamespace

    import flows.build as build
    from cxrvqa.store import StageCounts

    calls: list[str] = []

    def load_batch(store, batch, context):
        calls.append(f"load {batch}")
        return batch, StageCounts(n_input=len(batch))

    def compute_batch(work, context, run_id):
        calls.append(f"compute {work}")  # handed to the workers when called, as the pooled stages do
        return [{"rows": work}]

    def write_batch(store, counts, parts, context):
        if context == "fail":
            raise RuntimeError("disk full")
        counts.n_done += sum(len(p["rows"]) for p in parts)
        calls.append(f"write {counts.n_done}")
        return counts

    fake = SimpleNamespace(
        NAME="fake", load_batch=load_batch, compute_batch=compute_batch, write_batch=write_batch, starts_ahead=bool
    )
    monkeypatch.setitem(build.BATCH_STAGES, "fake", fake)
    monkeypatch.setattr(build, "open_writer", lambda path: "store")
    batch = build.stage_batch.fn
    assert batch("db", "run-1", "fake", [1, 2], "go", [3]).n_done == 2
    assert calls == ["load [1, 2]", "compute [1, 2]", "load [3]", "compute [3]", "write 2"]
    calls.clear()
    assert batch("db", "run-1", "fake", [3], "go", None).n_done == 1
    assert calls == ["write 1"]  # started by the batch before
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        batch("db", "run-1", "fake", [4], "fail", [5])
    assert "fake" not in build._STARTED  # the failed stage's next batch is never written
    assert calls == ["load [4]", "compute [4]", "load [5]", "compute [5]"]
    # a context that does not allow it starts nothing ahead
    calls.clear()
    batch("db", "run-1", "fake", [6], "", [7])
    assert calls == ["load [6]", "compute [6]", "write 1"]


def test_build_dataset_flow_on_the_demo(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.build import build_dataset

    result = build_dataset(demo_config(tmp_path / "out", imaging={"workers": 2, "batch_size": 2}))
    qa = result["stages"].pop("qa")
    validated = result["stages"].pop("validate")
    assert result["stages"] == {
        "images": {"n_input": 8, "n_skipped": 0, "n_done": 7, "n_rejected": 1},
        "reports": {"n_input": 6, "n_skipped": 0, "n_done": 6, "n_rejected": 0},
        "extract": {"n_input": 6, "n_skipped": 0, "n_done": 6, "n_rejected": 0},
    }
    with Store(tmp_path / "out" / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT status FROM runs WHERE run_id = ?", [result["run_id"]]) == [("completed",)]
        assert store.query("SELECT stage, status FROM run_stages ORDER BY started_at") == [
            ("images", "completed"),
            ("reports", "completed"),
            ("extract", "completed"),
            ("boxes", "completed"),
            ("qa", "completed"),
            ("validate", "completed"),
        ]
        # QA: every study once, every candidate written; the demo's items cover every answer format
        assert qa == {
            "n_input": 6,
            "n_skipped": 0,
            "n_done": store.query("SELECT count(*) FROM qa_items")[0][0],
            "n_rejected": 0,
        }
        assert {row[0] for row in store.query("SELECT DISTINCT answer_format FROM current_qa_items")} == {
            "yes_no",
            "short",
            "full_sentence",
            "multi_part",
            "multiple_choice",
            "box",
        }
        # the demo's box lines: a 'No finding' line and one past the image border are rejected (demo/README.md)
        assert store.query("SELECT n_input, n_done, n_rejected FROM run_stages WHERE stage = 'boxes'") == [(11, 9, 2)]
        assert store.query("SELECT reason FROM box_rejects ORDER BY source_line") == [
            ("no_box",),
            ("box_outside_image",),
        ]
        # every current item validated by every validator; the demo's rejects are the item that asserts the
        # finding demo-s4 hedges ("Perihilar opacities, perhaps bronchiectasis"), caught by the second reading
        # (its choice items are not kept: six studies balance no set of options with them); demo-s3's "possibly
        # increased" effusion is no longer answered "worsened" (a hedged change: `change_hedges`)
        n_items = store.query("SELECT count(*) FROM current_qa_items")[0][0]
        rejected = store.query(
            "SELECT q.study_id, v.validator, v.reason, count(*) FROM current_validation_results v "
            "JOIN current_qa_items q USING (item_id, template_version, input_hash) "
            "WHERE v.status = 'reject' GROUP BY ALL ORDER BY ALL"
        )
        assert rejected == [
            ("demo-s4", "second_reading", "second_reading_hedged", 1),
            ("s50000005", "left_right_view", "left_right_not_frontal", 1),
        ]  # its lateral image: a list answer with a side (its sentence answers quote no side there)
        assert validated == {"n_input": n_items, "n_skipped": 0, "n_done": n_items - 2, "n_rejected": 2}
        from cxrvqa.validation.validators import VALIDATORS

        assert store.query("SELECT count(*) FROM current_validation_results")[0][0] == n_items * len(VALIDATORS)
        grades = dict(store.query("SELECT label, count(*) FROM current_qa_grades GROUP BY label"))
        assert sum(grades.values()) == n_items and set(grades) <= {"A++", "A+", "A", "D"} and grades["D"] == 2
        assert grades["A++"] > n_items / 2
        assert store.query("SELECT count(*) FROM current_sentences WHERE study_id = 'demo-s3'")[0][0] == 9
        # every demo study has both images and a report: the metadata files' study ids join them
        assert store.query("SELECT count(*) FROM current_images JOIN current_reports USING (study_id)")[0][0] == 7
        assert store.query("SELECT source_path, reason FROM image_rejects") == [
            ("other/ct_slice.dcm", "unsupported_modality")
        ]
        # every report has its scene graph; what radiologists would read in two of them
        assert store.query("SELECT count(*), sum(len(quality)) FROM current_scene_graphs")[0] == (6, 0)
        findings = set(
            store.query(
                "SELECT study_id, finding, presence, laterality FROM current_observations "
                "WHERE study_id IN ('demo-s1', 'demo-s2') AND from_report"
            )
        )
        assert {
            ("demo-s1", "pneumothorax", "present", "right"),
            ("demo-s1", "pleural_effusion", "absent", None),
            ("demo-s2", "pneumothorax", "absent", None),
            ("demo-s2", "pleural_effusion", "absent", None),
        } <= findings
        assert not any(f[2] == "present" for f in findings if f[0] == "demo-s2")
        # the JPEG and the 16-bit PNG study: raster path, ids and views from their datasets' metadata files,
        # and QA items on their images
        raster = store.query(
            "SELECT study_id, patient_id, source_format, decode_method, window_source, "
            "view_position, view_source, id_source FROM images WHERE source_format != 'dicom' "
            "ORDER BY study_id, view_position"
        )
        assert raster == [
            (PADCHEST_STUDY, PADCHEST_PATIENT, "png", "png", "percentile", "PA", "manifest", "manifest:padchest"),
            (
                "s50000005",
                "p10000005",
                "jpeg",
                "jpeg_dct_1/4",
                "as_published",
                "LATERAL",
                "manifest",
                "manifest:mimic_cxr_jpg",
            ),
            (
                "s50000005",
                "p10000005",
                "jpeg",
                "jpeg_dct_1/4",
                "as_published",
                "PA",
                "manifest",
                "manifest:mimic_cxr_jpg",
            ),
        ]
        assert store.query(
            "SELECT q.study_id, count(*) > 0 FROM current_qa_items q JOIN current_images i "
            "USING (image_id) WHERE i.source_format != 'dicom' GROUP BY q.study_id "
            "ORDER BY q.study_id"
        ) == [(PADCHEST_STUDY, True), ("s50000005", True)]
        rows = store.query_dicts("SELECT * FROM images ORDER BY study_id, view_position")
    assert [r["study_id"] for r in rows] == [
        PADCHEST_STUDY,
        "demo-s1",
        "demo-s2",
        "demo-s3",
        "demo-s4",
        "s50000005",
        "s50000005",
    ]
    assert [(r["png_cols"], r["png_rows"]) for r in rows] == [
        (104, 128),
        (256, 256),
        (256, 256),
        (460, 489),
        (355, 354),
        (208, 256),
        (208, 256),
    ]
    for row in rows:
        assert (tmp_path / "out" / row["png_path"]).is_file()
        assert row["run_id"] == result["run_id"] and len(row["input_hash"]) == 64

    async def flow_runs() -> list[tuple[str, str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=50, sort=FlowRunSort.START_TIME_DESC)
            names = {flow.id: flow.name for flow in await client.read_flows(limit=50)}
            return sorted(
                (names[run.flow_id], run.state_type.value)
                for run in runs
                if run.parameters.get("run_id") == result["run_id"]
            )

    # the stage sub-flows, recorded by Prefect (its API records flow runs asynchronously: wait up to 15 s)
    expected = [
        ("extract-scene-graphs", "COMPLETED"),
        ("generate-qa", "COMPLETED"),
        ("ingest-images", "COMPLETED"),
        ("ingest-reports", "COMPLETED"),
        ("validate-qa", "COMPLETED"),
    ]
    deadline = time.monotonic() + 15
    while (recorded := asyncio.run(flow_runs())) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert recorded == expected


def test_cli_build_status_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = runner.invoke(app, ["build", "--demo", "--out", str(out), "--workers", "1"])
    assert first.exit_code == 0, first.output
    assert "completed" in first.output
    second = runner.invoke(app, ["build", "--demo", "--out", str(out)])
    assert second.exit_code == 0, second.output
    status = runner.invoke(app, ["status", "--out", str(out), "--json"])
    info = json.loads(status.stdout)
    assert [run["status"] for run in info["runs"]] == ["completed", "completed"]
    assert [(s["stage"], s["n_input"], s["n_skipped"], s["n_done"], s["n_rejected"]) for s in info["stages"]] == [
        ("images", 8, 8, 0, 0),
        ("reports", 6, 6, 0, 0),
        ("extract", 6, 6, 0, 0),
        ("boxes", 11, 9, 0, 2),
        ("qa", 6, 6, 0, 0),
        ("validate", info["tables"]["qa_items"], info["tables"]["qa_items"], 0, 0),
    ]
    tables = info["tables"]
    assert tables["qa_items"] == sum(row["n"] for row in info["qa_formats"]) > 0
    assert {
        k: tables[k]
        for k in (
            "images",
            "image_rejects",
            "reports",
            "sentences",
            "report_rejects",
            "scene_graphs",
            "extraction_failures",
        )
    } == {
        "images": 7,
        "image_rejects": 1,
        "reports": 6,
        "sentences": 40,
        "report_rejects": 0,
        "scene_graphs": 6,
        "extraction_failures": 0,
    }
    # no dataset check fails: the demo's hedges ("may represent atelectasis or early pneumonia") are
    # uncertain in the graph, so "is X only suspected?" is not always "no"
    assert [(r["stage"], r["reason"], r["n"]) for r in info["reject_reasons"]] == [
        ("boxes", "box_outside_image", 1),
        ("boxes", "no_box", 1),
        ("images", "unsupported_modality", 1),
        ("validate (reject)", "left_right_view: left_right_not_frontal", 1),
        ("validate (reject)", "second_reading: second_reading_hedged", 1),
    ]
    # six studies balance few questions: most miss an answer (a choice needs each option as an answer)
    assert info["balance"] == [
        {"kind": "yes/no", "questions": 116, "missing_an_answer": 90, "rebalanced": 0, "candidates": 292, "kept": 95},
        {
            "kind": "multiple choice",
            "questions": 25,
            "missing_an_answer": 23,
            "rebalanced": 0,
            "candidates": 29,
            "kept": 4,
        },
    ]
    table = runner.invoke(app, ["status", "--out", str(out)])
    assert table.exit_code == 0 and "unsupported_modality" in table.stdout


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["build", "--demo", "--out", str(tmp_path), "--stages", "audit"])
    assert unknown.exit_code == 2 and "unknown stage(s) ['audit']" in unknown.output
    nothing = runner.invoke(app, ["build", "--out", str(tmp_path)])
    assert nothing.exit_code == 2 and "nothing to build" in nothing.output
    no_images = runner.invoke(app, ["build", "--out", str(tmp_path), "--stages", "images"])
    assert no_images.exit_code == 2 and "the images stage needs --images DIR" in no_images.output
    missing = runner.invoke(app, ["status", "--out", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no database at" in missing.output


def _local_servers() -> set[int]:
    """Prefect servers started by this checkout's interpreter (others on a shared machine are not ours)."""
    import subprocess
    import sys

    found = subprocess.run(["pgrep", "-f", "prefect.server.api.server:create_app"], capture_output=True, text=True)
    ours = str(Path(sys.executable).parent)
    servers = set()
    for pid in found.stdout.split():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if command.startswith(ours):
            servers.add(int(pid))
    return servers


@pytest.mark.parametrize("idle", ["0", "6"])
def test_installed_cli_runs_the_flow_with_a_local_server(tmp_path: Path, idle: str) -> None:
    """The console script in a fresh process: starts Prefect's server early; with an idle time of 0 stops it on
    exit, else leaves it to its keeper, which stops it once idle (`flows.kept_server`)."""
    import os
    import subprocess
    import sys

    from flows.prefect_env import IDLE_VARIABLE

    before = _local_servers()
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cxrvqa"), "build", "--demo", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        # a kept server in a home of its own (the suite's may hold one an earlier test's build left)
        env={
            **environment,
            **({"PREFECT_HOME": str(tmp_path / "prefect")} if idle != "0" else {}),
            IDLE_VARIABLE: idle,
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout + result.stderr
    kept = _local_servers() - before
    assert len(kept) == (0 if idle == "0" else 2)  # no orphaned server; or one kept, and its keeper (which names it)
    deadline = time.monotonic() + 30
    while _local_servers() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _local_servers() - before
    with Store(tmp_path / "out" / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM images")[0][0] == 7
        assert store.query("SELECT count(*) FROM reports")[0][0] == 6


def test_an_edited_report_edited_back_gives_back_its_items(tmp_path: Path) -> None:
    """A, B, then A again: the dataset is A's again, item for item and grade for grade (A's items were kept and
    only made current; two short synthetic reports written here)."""
    from flows.build import build_dataset

    reports, stages = tmp_path / "r.jsonl", ["reports", "extract", "qa", "validate"]
    effusion = "FINDINGS: Small right pleural effusion. Heart size is normal. IMPRESSION: Small right effusion."
    clear = "FINDINGS: Lungs are clear. Heart size is normal. No pleural effusion. IMPRESSION: Normal chest."

    def build(text: str) -> list[tuple]:
        other = "FINDINGS: Lungs are clear. No pneumothorax. IMPRESSION: Normal chest."
        reports.write_text(
            "".join(
                json.dumps({"study_id": study, "patient_id": "p", "text": body}) + "\n"
                for study, body in (("e-s1", text), ("e-s2", other))
            )
        )
        build_dataset(
            load_config(
                None, {"out_dir": tmp_path / "out", "reports": reports, "report_format": "jsonl", "stages": stages}
            )
        )
        with Store(tmp_path / "out" / "cxrvqa.duckdb", read_only=True) as store:
            return store.query(
                "SELECT q.item_id, q.question, q.answer, g.grade FROM current_qa_items q "
                "JOIN current_qa_grades g USING (item_id, template_version, input_hash) "
                "WHERE q.study_id = 'e-s1' ORDER BY q.item_id"
            )

    first = build(effusion)
    assert any(answer == "right" for _, _, answer, _ in first)
    edited = build(clear)
    assert edited and not any(answer == "right" for _, _, answer, _ in edited)
    assert build(effusion) == first


def test_the_reports_stage_splits_its_records_where_the_pool_takes_over(tmp_path: Path, monkeypatch) -> None:
    """The reports stage's first records (rounded up to whole batches) go to batches parsed in the flow's process,
    the rest to batches parsed by the worker processes (`_report_batches`; so few records stay in this process all
    the same, `process_map`: the pool's parse is tests/reports'). With the threshold at 1 record and batches of 2,
    the stored reports, sentences and rejects are those of a build whose batches all parse here."""
    from cxrvqa.reports import stage as report_stage
    from flows.build import build_dataset

    def build(out: Path) -> list[list[tuple]]:
        config = demo_config(out, stages=["reports"], report_limits={"batch_size": 2}, extraction={"workers": 2})
        build_dataset(config)
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            return [
                store.query("SELECT study_id, text, findings, impression, n_sentences FROM reports ORDER BY 1"),
                store.query("SELECT study_id, sentence_id, section, text, deid_only FROM sentences ORDER BY 1, 2"),
                store.query("SELECT source, reason FROM report_rejects ORDER BY ALL"),
                store.query("SELECT n_input, n_done, n_rejected FROM run_stages"),
            ]

    here = build(tmp_path / "here")
    monkeypatch.setattr(report_stage, "POOL_MIN_RECORDS", 1)
    split = build(tmp_path / "split")
    assert split == here and len(here[0]) >= 4


def test_report_batches_split_at_whole_batches_here_and_not_on_a_cluster(tmp_path: Path, monkeypatch) -> None:
    import flows.build as build
    from cxrvqa.reports import stage as report_stage

    calls: list[tuple[list[int], int]] = []
    monkeypatch.setattr(
        build,
        "_batches",
        lambda config, run_id, stage, items, size, context: calls.append((list(items), context.workers)),
    )
    monkeypatch.setattr(report_stage, "POOL_MIN_RECORDS", 3)
    config = demo_config(tmp_path, report_limits={"batch_size": 2}, extraction={"workers": 2})
    context = report_stage.prepare(config)
    build._report_batches(config, "r1", iter(range(7)), context)
    assert calls == [([0, 1, 2, 3], 1), ([4, 5, 6], 2)]  # 3 records rounded up to 2 batches of 2, here
    calls.clear()
    config.executor = config.executor.model_copy(update={"kind": "dask", "dask_local_workers": 1})
    build._report_batches(config, "r1", iter(range(7)), context)
    assert calls == [([0, 1, 2, 3, 4, 5, 6], 2)]  # the cluster's workers parse every batch


def test_the_local_servers_unused_services_are_off_and_its_recorders_on() -> None:
    """Prefect's settings read the environment names (a misspelt one would leave its service on without a word)."""
    import subprocess
    import sys

    code = (
        "from flows.prefect_env import _SERVICES_NOT_USED, configure_prefect_environment\n"
        "configure_prefect_environment()\n"
        "from prefect.settings import get_current_settings\n"
        "s = get_current_settings().server.services\n"
        "print([getattr(s, n.lower()).enabled for n in _SERVICES_NOT_USED], s.task_run_recorder.enabled, "
        "s.event_persister.enabled)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_SERVICES")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["[False,"] + ["False,"] * 6 + ["False]", "True", "True"]


def test_each_pool_stage_ends_with_its_workers_and_the_next_forks_its_own(tmp_path: Path, monkeypatch) -> None:
    """Each stage shuts the pool down when its batches are written (`_run_stage`): the next stage's workers are fresh
    forks of the forkserver, without the caches (the extractor's, spaCy's strings, the answer programs') that grew
    with the number of studies the workers had seen. Their worker processes are told apart by process id; the
    demo's six reports are parsed in this process (no pool)."""
    from cxrvqa.core import parallel
    from cxrvqa.extraction import stage as extract_stage
    from cxrvqa.qa import stage as qa_stage
    from cxrvqa.validation import stage as validate_stage
    from flows import build as build_flow

    shut: list[set[int]] = []

    def recorded() -> None:
        shut.append({pid for pool in parallel._pools.values() for pid in (pool._processes or {})})
        parallel.shutdown_pools()

    monkeypatch.setattr(parallel, "MIN_ITEMS_PER_WORKER", 1)  # the demo's six studies go to the pool
    monkeypatch.setattr(extract_stage, "POOL_MIN_STUDIES", 1)
    monkeypatch.setattr(qa_stage, "POOL_MIN_STUDIES", 1)
    monkeypatch.setattr(validate_stage, "POOL_MIN_ITEMS", 1)
    monkeypatch.setattr(build_flow, "shutdown_pools", recorded)
    parallel.shutdown_pools()
    config = demo_config(
        tmp_path / "out",
        stages=["reports", "extract", "qa", "validate"],
        extraction={"workers": 2},
        qa={"workers": 2},
    )
    try:
        build_flow.build_dataset(config)
    finally:
        parallel.shutdown_pools()  # a failed build's workers too
    reports, extraction, generation, validation = shut  # after each stage's batches, in order
    assert not reports and extraction and generation and validation
    assert not extraction & generation and not generation & validation


def test_the_workers_read_the_reports_ahead_while_the_qa_items_are_balanced(tmp_path: Path, monkeypatch) -> None:
    """A first build's validation takes every report sentence's reading kept: the pool's workers read them while the
    flow's process balanced the QA items (`validate_stage.read_ahead`), not the validation's workers beside the
    checks. Without a pool (one worker) there is nothing ahead: the validation reads and keeps them itself. Either
    way the same verdicts and grades."""
    from cxrvqa.core import parallel
    from cxrvqa.qa import stage as qa_stage
    from cxrvqa.validation import stage as validate_stage
    from flows import build as build_flow

    taken: list[set[str]] = []
    load_batch = validate_stage.load_batch

    def recorded(store: Store, study_ids: list[str], context):
        work, counts = load_batch(store, study_ids, context)
        taken.append({text for study in work.readings.values() for text in study})
        return work, counts

    monkeypatch.setattr(qa_stage, "POOL_MIN_STUDIES", 1)  # the demo's six studies: the QA stage has a pool
    monkeypatch.setattr(validate_stage, "load_batch", recorded)
    verdicts = []
    for workers in (2, 1):
        out = tmp_path / f"workers-{workers}"
        config = demo_config(out, stages=["reports", "extract", "qa", "validate"], qa={"workers": workers})
        try:
            build_flow.build_dataset(config)
        finally:
            parallel.shutdown_pools()
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            sentences = {text for (text,) in store.query("SELECT text FROM current_sentences")}
            verdicts.append(
                [
                    store.query("SELECT item_id, grade, weakest FROM current_qa_grades ORDER BY ALL"),
                    store.query(
                        "SELECT item_id, validator, status, reason, detail FROM validation_results ORDER BY ALL"
                    ),
                ]
            )
        assert len(taken) == 1 and len(sentences) > 20
        assert taken.pop() == (sentences if workers == 2 else set())
    assert verdicts[0] == verdicts[1] and len(verdicts[0][0]) > 50 and verdicts[0][1]
