"""The `question_prior` dataset check through the CLI on 600 IU reports (issue 22): a per-template balance leaves
questions whose answer the question alone gives away, and the check fails those templates naming the arguments
answered best; the per-question balance (the default) passes it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app

runner = CliRunner(env={"COLUMNS": "250"})
N_REPORTS = 600


@pytest.fixture(scope="module")
def reports(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prior") / "reports.csv"
    with open(data_dir / "reports" / "iu_dev_reports.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:N_REPORTS]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _prior_checks(reports: Path, out: Path, balance: str) -> tuple[dict[str, dict], str]:
    config = out.parent / f"{balance}.yaml"
    config.write_text(f"qa:\n  balance: {balance}\n", encoding="utf-8")
    result = runner.invoke(
        app, ["build", "--reports", str(reports), "--report-format", "iu", "--out", str(out), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    audit = runner.invoke(app, ["audit", "--out", str(out), "--stage", "dataset", "--json"])
    assert audit.exit_code == 0, audit.output
    checks = {c["subject"]: c for c in json.loads(audit.stdout)["dataset_checks"] if c["check"] == "question_prior"}
    status = runner.invoke(app, ["status", "--out", str(out)])
    assert status.exit_code == 0, status.output
    return checks, " ".join(status.stdout.split())


def test_a_per_template_balance_fails_the_question_prior_check_naming_the_questions(
    reports: Path, tmp_path: Path
) -> None:
    checks, status = _prior_checks(reports, tmp_path / "out", "per_template")
    failed = sorted(t for t, c in checks.items() if not c["ok"])
    assert failed == [
        "category_abnormal",
        "finding_absent_choice",
        "finding_choice",
        "finding_differential",
        "finding_hedged",
        "finding_presence",
        "finding_presence_closed_world",
        "finding_ruled_out",
        "region_abnormal",
        "regions_either_abnormal",
    ]
    presence = checks["finding_presence"]
    assert presence["expected"] == "<= 0.50 + 0.150" and round(presence["value"], 3) == 0.878
    assert presence["detail"].startswith(
        "the question alone (arguments) answers 0.88 of 585 held-out items; "
        'best answered: {"finding": "pneumothorax"} 0.98 of 52'
    )
    # a choice template is named by the sets of options the reader of the options answers best
    assert checks["finding_differential"]["detail"].startswith(
        "the question alone (options) answers 0.98 of 43 held-out items; best answered: "
        "[consolidation, hyperinflation] 1.00 of 6; [low lung volumes, pulmonary edema] 1.00 of 4"
    )
    assert "│ dataset check │ question_prior │ 10 │" in status  # status counts the failures, with one
    assert "the question alone" in status


def test_the_per_question_balance_passes_it(reports: Path, tmp_path: Path) -> None:
    checks, _ = _prior_checks(reports, tmp_path / "out", "per_question")
    assert checks and all(c["ok"] for c in checks.values()), [c for c in checks.values() if not c["ok"]]
