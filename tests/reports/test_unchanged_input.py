"""A rebuild whose reports input is unchanged reads nothing (table report_inputs), through the real flow: the
files' stats, --rehash, --prune and the store's state each make it read again. Inputs: four short synthetic
reports written here (nobody's data) and one broken line."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import flows.build
from cxrvqa.config import load_config
from cxrvqa.store import Store

pytestmark = pytest.mark.flow

TEXTS = {
    "u-s1": "FINDINGS: Small left pleural effusion. IMPRESSION: Left effusion.",
    "u-s2": "FINDINGS: Right lower lobe consolidation. IMPRESSION: Pneumonia.",
    "u-s3": "FINDINGS: The lungs are clear. IMPRESSION: Normal chest.",
}


def _write(path: Path, leave_out: str | None = None) -> Path:
    lines = [json.dumps({"study_id": s, "patient_id": "p", "text": t}) for s, t in TEXTS.items() if s != leave_out]
    path.write_text("\n".join([*lines, "{broken"]) + "\n")
    return path


class _Reads:
    """Counts the flow's reads of a reports input."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = flows.build.load_reports

        def counted(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(flows.build, "load_reports", counted)


def _build(out: Path, reports: Path, **settings) -> dict[str, int]:
    config = load_config(None, {"out_dir": out, "reports": reports, "report_format": "jsonl", "stages": ["reports"]})
    config = config.model_copy(update=settings) if settings else config
    return flows.build.build_dataset(config)["stages"]["reports"]


def test_a_reports_folder_with_a_dangling_link_is_read_in_full(tmp_path: Path) -> None:
    """Its stats cannot all be taken: no fingerprint, so no skip (the loader says what it finds)."""
    from cxrvqa.reports import stage

    folder = tmp_path / "files" / "p10" / "p100"
    folder.mkdir(parents=True)
    (folder / "s1.txt").write_text("FINDINGS: Clear lungs.")
    config = load_config(None, {"out_dir": tmp_path / "out", "reports": tmp_path / "files", "report_format": "mimic"})
    assert stage.input_fingerprint(config, stage.prepare(config)) is not None
    (folder / ".#s1.txt").symlink_to(folder / "gone.txt")
    assert stage.input_fingerprint(config, stage.prepare(config)) is None


def test_an_unchanged_input_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads, out, reports = _Reads(monkeypatch), tmp_path / "out", _write(tmp_path / "r.jsonl")
    first = _build(out, reports)
    assert (reads.n, first) == (1, {"n_input": 4, "n_skipped": 0, "n_done": 3, "n_rejected": 1})
    skipped = {"n_input": 4, "n_skipped": 4, "n_done": 0, "n_rejected": 0}
    assert (_build(out, reports), reads.n) == (skipped, 1)  # counted as a full read would count it
    stat = reports.stat()
    os.utime(reports, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched: read again
    assert (_build(out, reports), reads.n) == (skipped, 2)
    assert (_build(out, reports), reads.n) == (skipped, 2)
    config = load_config(None, {"out_dir": out, "reports": reports, "report_format": "jsonl", "stages": ["reports"]})
    reread = config.model_copy(update={"report_limits": config.report_limits.model_copy(update={"reread": True})})
    assert (flows.build.build_dataset(reread)["stages"]["reports"], reads.n) == (skipped, 3)
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        # one row per complete read of a fingerprint: the first and the touched file's (a reread records none)
        assert store.query("SELECT count(*), count(DISTINCT fingerprint) FROM report_inputs") == [(2, 2)]


class _Warnings(logging.Handler):
    """The warnings of cxrvqa's loggers (whatever their propagation: the CLI stops it at `cxrvqa`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_store_changed_since_the_last_read_makes_a_rebuild_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads, out = _Reads(monkeypatch), tmp_path / "out"
    three, two = _write(tmp_path / "three.jsonl"), _write(tmp_path / "two.jsonl", leave_out="u-s3")
    _build(out, three)
    # without --prune the absent study's warning is given again by a rebuild that reads nothing
    warnings = _Warnings()
    logging.getLogger("cxrvqa").addHandler(warnings)
    try:
        _build(out, two)
        _build(out, two)
    finally:
        logging.getLogger("cxrvqa").removeHandler(warnings)
    assert reads.n == 2
    assert [m.split(" (")[0] for m in warnings.messages if "no report in" in m] == [
        "1 study of the current dataset"
    ] * 2
    _build(out, two, prune=True)  # another fingerprint: read, and u-s3 retired
    assert reads.n == 3
    # the first input again: its fingerprint is stored, but the retirement changed the store since: read, restored
    assert _build(out, three)["n_input"] == 4 and reads.n == 4
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT key, action FROM retirements ORDER BY created_at") == [
            ("u-s3", "retired"),
            ("u-s3", "restored"),
        ]
