"""The independent reader's sentence readings kept in the store (cxrvqa.validation.readings, migration 0027)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cxrvqa.cli import _demo_inputs
from cxrvqa.config import load_config
from cxrvqa.core.batch import run_batch
from cxrvqa.store import Store
from cxrvqa.validation import independent, readings, stage

NOW = datetime.now(timezone.utc)
SENTENCE = "Small left pleural effusion, possibly atelectasis at the right base."


@pytest.fixture
def demo(demo_build: Path, tmp_path: Path) -> Path:
    shutil.copy(demo_build / "cxrvqa.duckdb", tmp_path / "cxrvqa.duckdb")
    return tmp_path


def _context(out: Path, **overrides: object) -> stage.ValidateStageContext:
    # another strictness: every item of the demo is pending again
    return stage.prepare(load_config(None, {**_demo_inputs(), "out_dir": out, "strictness": {"answer_leak": "warn"}}))


def _validated(store: Store, context: stage.ValidateStageContext, kept: bool) -> dict[str, list[dict]]:
    """Every pending item validated in one chunk, every in-process cache cleared first; ``kept``: with the readings
    the store kept for its studies."""
    studies = stage.pending_studies(store, context)[2]
    work, _ = stage.load_batch(store, studies, context)
    assert (work.readings != {}) == kept
    chunk = next(stage._chunks(work, len(work.payloads)))
    independent.clear_caches()
    parts = stage.validate_chunk(chunk, context, "r-test", NOW)
    return {name: table.to_pylist() for name, table in parts.items()}


def test_a_reading_is_encoded_and_decoded_unchanged() -> None:
    read = independent.read_sentence_afresh(SENTENCE)
    assert [m.finding for m in read] == ["pleural_effusion", "atelectasis"]
    assert readings.decode(readings.encode(read), independent.Mention) == read
    assert readings.decode(readings.encode(()), independent.Mention) == ()


def test_a_kept_reading_is_taken_without_reading_and_a_new_one_comes_back_as_a_row() -> None:
    kept = readings.encode(independent.read_sentence_afresh(SENTENCE))

    def unread(text: str) -> tuple:
        raise AssertionError(f"read {text!r}")

    readings.use({SENTENCE: kept})
    assert readings.kept(SENTENCE, unread, independent.Mention) == independent.read_sentence_afresh(SENTENCE)
    negated = readings.kept("No effusion.", independent.read_sentence_afresh, independent.Mention)
    assert [m.status for m in negated] == ["negated"]
    rows = readings.made("v1", "r1").to_pylist()
    assert rows == [
        {"reader_version": "v1", "text": "No effusion.", "reading": readings.encode(negated), "run_id": "r1"}
    ]
    assert readings.made("v1", "r1").num_rows == 0  # forgotten, and so is the kept one:
    assert readings.kept(SENTENCE, lambda text: (), independent.Mention) == ()
    readings.use({})


def test_the_reader_version_follows_the_checks_version_and_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    first = readings.reader_version()
    assert readings.reader_version() == first
    monkeypatch.setattr(independent, "VERSION", independent.VERSION + 1)
    assert readings.reader_version() != first
    monkeypatch.undo()
    monkeypatch.setattr(readings, "version", lambda name: "0.0" if name == "spacy" else "1.3.1")
    assert readings.reader_version() != first


def test_the_reader_version_is_of_the_code_loaded_not_of_the_files_now(monkeypatch: pytest.MonkeyPatch) -> None:
    first = readings.reader_version()
    edited = {Path(independent.__file__).resolve(), Path(readings.__file__).resolve()}
    read_bytes = Path.read_bytes

    def as_edited(path: Path) -> bytes:  # the reader's files edited while a build runs
        return read_bytes(path) + b"\n# edited\n" if path.resolve() in edited else read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", as_edited)
    monkeypatch.setattr(Path, "read_text", lambda path, *a, **k: as_edited(path).decode())
    assert readings.reader_version() == first


def test_a_batch_keeps_its_readings_and_a_revalidation_takes_them_with_the_same_verdicts(demo: Path) -> None:
    with Store(demo / "cxrvqa.duckdb") as store:
        store.con.execute("DELETE FROM sentence_readings")  # what the demo kept depends on what this process read
        context = _context(demo)
        fresh = _validated(store, dataclasses.replace(context, reader_version=""), kept=False)
        assert "sentence_readings" not in fresh  # no reader version: nothing kept, nothing made to keep
        studies = stage.pending_studies(store, context)[2]
        independent.clear_caches()
        run_batch(stage, store, "r-keep", studies, context)  # validated, and the readings it made written
        kept = store.query(
            "SELECT count(*), count(DISTINCT reader_version), min(reader_version) FROM sentence_readings"
        )
        assert kept[0][0] > 0 and kept[0][1:] == (1, context.reader_version)
        store.con.execute("DELETE FROM validation_done WHERE run_id = 'r-keep'")  # pending again
        taken = _validated(store, context, kept=True)
        # every report sentence's reading was kept: only answers' sentences (never loaded) are read again
        report = {text for (text,) in store.query("SELECT text FROM current_sentences")}
        again = {row["text"] for row in taken.pop("sentence_readings")}
        assert again and not again & report and all(text.startswith("The chest X-ray shows") for text in again)
        assert taken == fresh
        other = _validated(store, dataclasses.replace(context, reader_version="another"), kept=False)
        made = other.pop("sentence_readings")
        assert other == fresh and len(made) > 0 and {r["reader_version"] for r in made} == {"another"}
        assert independent.read_sentence.cache_info().misses >= len(made)


def test_a_reading_is_stored_once(demo: Path) -> None:
    row = {"reader_version": "v", "text": "No effusion.", "reading": "[]", "run_id": "r1"}
    with Store(demo / "cxrvqa.duckdb") as store:
        assert store.insert("sentence_readings", [row, {**row, "run_id": "r2"}]) == 2
        store.insert("sentence_readings", [{**row, "reading": "changed", "run_id": "r3"}])
        assert store.query("SELECT reading, run_id FROM sentence_readings WHERE reader_version = 'v'") == [("[]", "r1")]


def test_the_readings_of_other_reader_versions_are_forgotten(demo: Path) -> None:
    row = {"text": "No effusion.", "reading": "[]", "run_id": "r1"}
    with Store(demo / "cxrvqa.duckdb") as store:
        store.con.execute("DELETE FROM sentence_readings")
        store.insert("sentence_readings", [{**row, "reader_version": v} for v in ("old", "current", "older")])
        assert readings.forget_others(store, "current") == 2
        assert readings.forget_others(store, "") == 0  # no reader version (tests): nothing to compare with
        assert store.query("SELECT reader_version FROM sentence_readings") == [("current",)]


def test_the_workers_read_the_unread_sentences_ahead_and_the_rows_are_kept(demo: Path) -> None:
    """`stage.read_ahead`: each current sentence with no kept reading of this reader version, read once by the pool's
    workers as the validation would read it; `keep_read_ahead` keeps the rows, so nothing is unread after."""
    from cxrvqa.core.parallel import shutdown_pools

    reader = readings.reader_version()
    with Store(demo / "cxrvqa.duckdb") as store:
        store.con.execute("DELETE FROM sentence_readings")
        sentences = sorted({text for (text,) in store.query("SELECT text FROM current_sentences")})
        kept = {"reader_version": reader, "text": sentences[0], "reading": "[]", "run_id": "r-before"}
        other = {**kept, "reader_version": "another", "text": sentences[1]}
        store.insert("sentence_readings", [kept, other])
        assert sorted(readings.unread(store, reader)) == sentences[1:]  # another version's reading is not this one's
        assert stage.keep_read_ahead(store, stage.read_ahead(store, "r-ahead", workers=1)) == 0  # no pool
        try:
            assert stage.keep_read_ahead(store, stage.read_ahead(store, "r-ahead", workers=2)) == len(sentences) - 1
        finally:
            shutdown_pools()
        rows = store.query(
            "SELECT text, reading FROM sentence_readings WHERE run_id = 'r-ahead' AND reader_version = ? ORDER BY 1",
            [reader],
        )
        assert rows == [(text, readings.encode(independent.read_sentence_afresh(text))) for text in sentences[1:]]
        assert readings.unread(store, reader) == []


def test_a_failed_reading_ahead_is_a_warning_and_keeps_nothing(demo: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The validation reads what the workers could not (`keep_read_ahead`): the build goes on."""
    from cxrvqa.core.parallel import BackgroundMap, shutdown_pools

    with Store(demo / "cxrvqa.duckdb") as store:
        before = store.query("SELECT count(*) FROM sentence_readings")
        try:
            failing = BackgroundMap(independent.read_sentence_afresh, [None], workers=2)  # not a text
            assert stage.keep_read_ahead(store, failing) == 0
        finally:
            shutdown_pools()
        assert store.query("SELECT count(*) FROM sentence_readings") == before
    assert "reading the sentences ahead of the validation failed, the validation reads them" in caplog.text
