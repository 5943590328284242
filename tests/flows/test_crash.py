"""Crash safety: a real `cxrvqa build` killed with SIGKILL at random moments, then rerun, ends with the
same tables as an uninterrupted build (same rows, no duplicates, no loss); a second build on a database
that another build holds fails fast, naming the holder."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cxrvqa.core.resources import resource
from cxrvqa.store import Store

pytestmark = pytest.mark.flow

#: Tables compared row for row (as multisets, without run ids and timestamps).
DATA_TABLES = (
    "images",
    "image_rejects",
    "reports",
    "sentences",
    "report_rejects",
    "scene_graphs",
    "observations",
    "obs_regions",
    "obs_sentences",
    "extraction_failures",
    "qa_items",
    "qa_answer_parts",
    "qa_done",
    "validation_results",
    "validation_done",
    "qa_grades",
    "grade_levels",
    "qa_current",
)
#: Tables written once per run (a resumed build writes them again): their current views are compared.
PER_RUN_VIEWS = ("current_qa_inputs", "current_qa_templates", "current_qa_balance")
#: Per-run values; code_version hashes the source tree, which helpers may edit between two builds.
VOLATILE = {"run_id", "created_at", "started_at", "finished_at", "seconds", "code_version"}
KILLS = 3


def _corpus(folder: Path, n_studies: int = 400) -> Path:
    """A config for a build of the demo images and `n_studies` reports made from the demo's sentences, with
    small batches, so that a build is many commits long and a kill lands inside or between them."""
    demo = resource("demo")
    texts = [json.loads(line)["text"] for line in (demo / "reports.jsonl").read_text().splitlines()]
    rng = random.Random(7)
    lines = []
    for number in range(n_studies):
        study = f"demo-s{number + 1}" if number < 4 else f"crash-s{number}"
        text = (
            texts[number]
            if number < 4
            else texts[rng.randrange(4)].replace("Small", rng.choice(["Small", "Moderate", "Large"]))
        )
        lines.append(json.dumps({"study_id": study, "patient_id": f"p{number % 90}", "text": text}))
    reports = folder / "reports.jsonl"
    reports.write_text("\n".join(lines) + "\n")
    config = folder / "build.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "images_dir": str(demo / "images"),
                "manifest": str(demo / "manifest.csv"),
                "reports": str(reports),
                "report_format": "jsonl",
                "imaging": {"batch_size": 1, "workers": 1},
                "report_limits": {"batch_size": 20},
                "extraction": {"batch_size": 20, "workers": 1},
                "qa": {"batch_size": 20, "workers": 1},
            }
        )
    )
    return config


def _command(config: Path, out: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "cxrvqa"), "build", "--config", str(config), "--out", str(out)]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


def _snapshot(db: Path) -> dict[str, list[tuple]]:
    with Store(db, read_only=True) as store:
        snapshot = {}
        for table in (*DATA_TABLES, *PER_RUN_VIEWS):
            columns = [
                name
                for (name,) in store.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                )
                if name not in VOLATILE
            ]
            quoted = ", ".join(f'"{c}"' for c in columns)
            snapshot[table] = [tuple(map(str, row)) for row in store.query(f"SELECT {quoted} FROM {table}")]
            snapshot[table].sort()
        return snapshot


def _progress(db: Path) -> str:
    """Where a killed build was: the stages of its run and their status."""
    if not db.exists():
        return "before the database was created"
    with Store(db, read_only=True) as store:
        stages = store.query(
            "SELECT stage, status, n_done + n_rejected FROM run_stages WHERE run_id = "
            "(SELECT max(run_id) FROM runs) ORDER BY started_at"
        )
    return ", ".join(f"{stage} {status} ({n} done)" for stage, status, n in stages) or "no stage started"


def test_a_build_killed_at_random_moments_resumes_to_the_same_tables(tmp_path: Path) -> None:
    config = _corpus(tmp_path)
    started = time.monotonic()
    reference = subprocess.run(
        _command(config, tmp_path / "reference"), capture_output=True, text=True, env=_environment(), timeout=600
    )
    duration = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    expected = _snapshot(tmp_path / "reference" / "cxrvqa.duckdb")
    assert len(expected["qa_items"]) > 1000 and len(expected["images"]) == 7

    out = tmp_path / "crashed"
    rng = random.Random(os.environ.get("CXRVQA_CRASH_SEED", "0"))
    # one moment in each third of the uninterrupted build's time: early, middle and late kills
    moments = [rng.uniform(max(0.5, duration * i / KILLS), duration * (i + 1) / KILLS) for i in range(KILLS)]
    killed_in: list[str] = []
    for moment in moments:
        # its own process group, so that the kill takes the whole build (and its Prefect server) at once
        build = subprocess.Popen(
            _command(config, out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_environment(),
            start_new_session=True,
        )
        try:
            build.wait(timeout=moment)
            killed_in.append(f"{moment:.1f} s: finished before")
        except subprocess.TimeoutExpired:
            os.killpg(build.pid, signal.SIGKILL)
            build.wait()
            killed_in.append(f"{moment:.1f} s: {_progress(out / 'cxrvqa.duckdb')}")
    print(f"uninterrupted build {duration:.1f} s; kills at " + "; ".join(killed_in))
    resumed = subprocess.run(_command(config, out), capture_output=True, text=True, env=_environment(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    found = _snapshot(out / "cxrvqa.duckdb")
    for table in expected:
        assert found[table] == expected[table], (
            f"{table} differs after kills at {killed_in}: {len(found[table])} rows vs {len(expected[table])}"
        )
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        statuses = [status for (status,) in store.query("SELECT status FROM runs ORDER BY started_at")]
    assert statuses[-1] == "completed" and set(statuses[:-1]) <= {"interrupted", "completed"}


def test_a_second_build_on_a_held_database_fails_fast_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "out" / "cxrvqa.duckdb"
    db.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\nfrom cxrvqa.store import Store\n"
                f"store = Store({str(db)!r})\nprint('held', flush=True)\ntime.sleep(120)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        second = subprocess.run(
            [str(Path(sys.executable).parent / "cxrvqa"), "build", "--demo", "--out", str(db.parent)],
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=120,
        )
        assert second.returncode == 2
        assert time.monotonic() - started < 60
        message = " ".join(second.stderr.split())
        assert f"is locked by PID {holder.pid}" in message and "one writer at a time" in message, message
        assert "Traceback" not in second.stderr and "Flow run" not in second.stderr
    finally:
        holder.kill()
        holder.wait()
