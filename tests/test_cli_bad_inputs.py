"""Inputs as they come from hospitals and spreadsheets, through `cxrvqa build`: every record ends as a row or a
reject with its reason, and an unusable input is one `error:` line (exit code 2) without a traceback.

The bad inputs are the hand-made files of `tests/data/bad_inputs/` (see tests/data/README.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "400"})  # rich wraps at the terminal width
BAD = Path(__file__).resolve().parent / "data" / "bad_inputs"


def _build_reports(out: Path, reports: Path, report_format: str) -> tuple[list[tuple], list[tuple]]:
    """(study_id, text) of the stored reports and (source, study_id, reason, detail) of the rejects."""
    result = runner.invoke(
        app,
        [
            "build",
            "--out",
            str(out),
            "--reports",
            str(reports),
            "--report-format",
            report_format,
            "--stages",
            "reports",
        ],
    )
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        reports = store.query("SELECT study_id, text FROM reports ORDER BY source")
        rejects = store.query("SELECT source, study_id, reason, detail FROM report_rejects ORDER BY source")
    assert not any("\ufffd" in text for _, text in reports)
    return reports, rejects


def _error_line(result) -> str:
    """The one line an input error prints: no Prefect log lines, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "flow_engine" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_an_excel_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    reports, rejects = _build_reports(tmp_path / "out", BAD / "iu_excel_bom.csv", "iu")
    assert reports == [
        (
            "1",
            "INDICATION: Chest pain.\nCOMPARISON: None.\nTECHNIQUE: Xray Chest PA and Lateral\n"
            "FINDINGS: The lungs are clear.\nIMPRESSION: No acute disease.",
        )
    ]
    assert rejects == []


def test_a_windows_1252_row_is_rejected_naming_the_byte_not_stored_with_replacement_characters(tmp_path: Path) -> None:
    reports, rejects = _build_reports(tmp_path / "out", BAD / "reports_cp1252.csv", "csv")
    assert reports == [("s2", "FINDINGS: No pneumothorax.")]
    assert rejects == [
        (
            "reports_cp1252.csv:row 2",
            "s1",
            "invalid_encoding",
            "expected UTF-8 text, found byte 0x96 at byte offset 48 (line 2); convert the file to UTF-8 "
            "(e.g. iconv -f cp1252 -t utf-8)",
        )
    ]


def test_ragged_rows_are_malformed_rows_with_field_counts(tmp_path: Path) -> None:
    reports, rejects = _build_reports(tmp_path / "out", BAD / "reports_ragged.csv", "csv")
    assert reports == [("s3", "FINDINGS: No effusion.")]  # trailing empty cells of a spreadsheet are no fields
    assert rejects == [
        ("reports_ragged.csv:row 2", None, "malformed_row", "expected 3 fields (study_id, patient_id, text), found 4"),
        ("reports_ragged.csv:row 3", None, "malformed_row", "expected 3 fields (study_id, patient_id, text), found 2"),
    ]


def test_jsonl_with_a_bom_legacy_bytes_and_replacement_characters(tmp_path: Path) -> None:
    reports, rejects = _build_reports(tmp_path / "out", BAD / "reports_mixed.jsonl", "jsonl")
    assert reports == [("s1", "FINDINGS: Clear lungs.")]
    assert rejects == [
        (
            "reports_mixed.jsonl:line 2",
            "s2",
            "invalid_encoding",
            "expected UTF-8 text, found byte 0x92 at byte offset 101 (line 2); convert the file to UTF-8 "
            "(e.g. iconv -f cp1252 -t utf-8)",
        ),
        (
            "reports_mixed.jsonl:line 3",
            "s3",
            "invalid_encoding",
            "expected text without unpaired surrogates or U+FFFD, found U+FFFD at character 22 of the report text",
        ),
        (
            "reports_mixed.jsonl:line 4",
            "s4",
            "invalid_encoding",
            "expected text without U+FFFD (a replacement character: the text was decoded with the wrong encoding "
            "before it reached cxrvqa), found one at byte offset 239 (line 4)",
        ),
    ]


def test_binary_junk_in_a_mimic_tree_is_not_text_and_utf16_is_read(tmp_path: Path) -> None:
    reports, rejects = _build_reports(tmp_path / "out", BAD / "mimic", "mimic")
    assert reports == [
        ("s50000001", "FINAL REPORT\nFINDINGS: No pneumothorax.\n"),
        ("s50000002", "FINAL REPORT\nFINDINGS: Heart size normal.\n"),
    ]
    assert rejects == [
        (
            "p10/p10000003/s50000003.txt",
            "s50000003",
            "not_text",
            "expected text (at most 25% control characters or bytes that are not UTF-8), found binary "
            "data: 183 of 295 characters (3 NUL, 140 not UTF-8)",
        )
    ]


def test_unusable_inputs_are_one_line_before_any_flow_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    empty = runner.invoke(
        app, ["build", "--out", str(out), "--reports", str(BAD / "empty.csv"), "--report-format", "iu"]
    )
    assert _error_line(empty) == (
        f"error: {BAD / 'empty.csv'}: expected IU columns ['uid', 'indication', "
        "'comparison', 'findings', 'impression'], found an empty file"
    )
    columns = runner.invoke(
        app, ["build", "--out", str(out), "--reports", str(BAD / "reports_ragged.csv"), "--report-format", "iu"]
    )
    assert _error_line(columns) == (
        f"error: {BAD / 'reports_ragged.csv'}: expected IU columns ['uid', "
        "'indication', 'comparison', 'findings', 'impression'], found columns "
        "['study_id', 'patient_id', 'text']"
    )
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("\n\n")
    assert _error_line(runner.invoke(app, ["build", "--out", str(out), "--reports", str(empty_jsonl)])) == (
        f"error: {empty_jsonl}: expected a JSON-lines reports file, found an empty file"
    )
    fmt = runner.invoke(app, ["build", "--out", str(out), "--reports", str(empty_jsonl), "--report-format", "xml"])
    assert _error_line(fmt) == (
        "error: command-line options: report_format: Input should be 'iu', 'mimic', "
        "'jsonl', 'csv', 'chexpert_plus' or 'rexgradient'"
    )
    manifest = runner.invoke(
        app, ["build", "--out", str(out), "--images", str(tmp_path), "--manifest", str(BAD / "empty.csv")]
    )
    assert _error_line(manifest) == f"error: {BAD / 'empty.csv'}: expected a CSV manifest file, found an empty file"
    assert not (out / "cxrvqa.duckdb").exists()  # nothing started


def test_an_error_inside_a_flow_is_one_line_naming_the_log_with_the_traceback(tmp_path: Path) -> None:
    """A box file whose header is fine but whose third line is Latin-1 fails inside the build's QA flow."""
    out = tmp_path / "out"
    boxes = tmp_path / "boxes.csv"
    shutil.copy(BAD / "boxes_latin1_line.csv", boxes)
    result = runner.invoke(
        app, ["build", "--demo", "--out", str(out), "--stages", "reports,extract,qa", "--boxes", str(boxes)]
    )
    line = _error_line(result)
    logs = list((out / "logs").glob("build-*.log"))
    assert len(logs) == 1
    assert line == (
        f"error: {boxes}:3: expected UTF-8 text, found byte 0xe9 at byte offset 80 (line 3); convert the "
        f"file to UTF-8 (e.g. iconv -f cp1252 -t utf-8) (traceback in {logs[0]})"
    )
    assert "Traceback (most recent call last)" in logs[0].read_text()
    debug = runner.invoke(
        app, ["build", "--demo", "--out", str(out), "--stages", "reports,extract,qa", "--boxes", str(boxes), "--debug"]
    )
    assert debug.exit_code == 2 and "Traceback" in debug.output
    assert debug.output.rstrip().splitlines()[-1].startswith(f"error: {boxes}:3: expected UTF-8 text")
