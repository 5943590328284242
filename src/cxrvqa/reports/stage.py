"""The report stage over batches: skip what is done, split sections and sentences, write rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

from cxrvqa.config import Config
from cxrvqa.core.parallel import pool_chunks, process_map
from cxrvqa.core.provenance import code_version, file_stats, stable_hash
from cxrvqa.core.text import SECTIONS, is_deid_only, section_rules, split_sections, split_sentences
from cxrvqa.errors import InputError
from cxrvqa.reports import loaders
from cxrvqa.reports.loaders import RawReject, RawReport, ReportReason
from cxrvqa.store import StageCounts, Store
from cxrvqa.store.retire import logger as retire_logger
from cxrvqa.store.retire import reconcile
from cxrvqa.store.shards import Tables, as_rows, merged, write_tables

#: The stage's name (config `stages`, `run_stages.stage`, the flow's batch task `reports-batch`).
NAME = "reports"

#: Bump when the section or sentence code changes its output.
PARSER_RECIPE = "report-sections/2"


#: Records per worker task, at most; the records a build reads before its batches are parsed by the process pool
#: (the extraction's threshold: a smaller build starts no pool, a larger one has it warm for the extraction).
CHUNK, POOL_MIN_RECORDS = 100, 5000
#: The tables a batch writes.
TABLES = ("reports", "sentences", "report_rejects")


@dataclass(frozen=True)
class ReportStageContext:
    report_format: str
    parser_version: str
    max_chars: int
    workers: int = 1  # parsing processes (`extraction.workers`, from POOL_MIN_RECORDS records on)


def prepare(config: Config) -> ReportStageContext:
    if config.reports is None:
        raise InputError("--reports", "a reports file or folder for the reports stage", "none given")
    return ReportStageContext(
        report_format=config.report_format,
        parser_version=stable_hash({"recipe": PARSER_RECIPE, "rules": section_rules().content_hash}),
        max_chars=config.report_limits.max_chars,
        workers=config.extraction.workers,
    )


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def parse_report(
    report: RawReport, context: ReportStageContext, run_id: str, input_hash: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `reports` row and `sentences` rows of one report (pure)."""
    text = report.text
    sections = split_sections(text)
    bodies: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for span in sections:
        bodies[span.section].append(text[span.start : span.end].strip())
    sentences = split_sentences(text, sections)
    report_hash = _sha256(text)
    row = {
        "study_id": report.study_id,
        "patient_id": report.patient_id,
        "source": report.source,
        "source_format": context.report_format,
        "text": text,
        **{name: "\n".join(parts) for name, parts in bodies.items()},
        "n_sentences": len(sentences),
        "report_hash": report_hash,
        "parser_version": context.parser_version,
        "run_id": run_id,
        "input_hash": input_hash,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }
    sentence_rows = [
        {
            "study_id": report.study_id,
            "report_hash": report_hash,
            "parser_version": context.parser_version,
            "sentence_id": index,
            "section": s.section,
            "text": s.text,
            "start": s.start,
            "end": s.end,
            "deid_only": is_deid_only(s.text),
            "run_id": run_id,
        }
        for index, s in enumerate(sentences)
    ]
    return row, sentence_rows


def reject_duplicate_studies(records: Iterable[RawReport | RawReject]) -> Iterator[RawReport | RawReject]:
    """The first record of a study decides it (its report, or the reject of its record: `not_text`,
    `invalid_encoding`); a later one becomes a `duplicate_study` reject.

    Done on the stream, before batching, so the outcome never depends on batch boundaries or on
    which records an earlier run already stored: a study with a report and a rejected record had the outcome
    of whichever batch was written last.
    """
    first_source: dict[str, str] = {}
    for record in records:
        if _is_outcome(record):
            seen = first_source.setdefault(record.study_id, record.source)
            if seen != record.source:
                record = RawReject(
                    record.source,
                    record.study_id,
                    ReportReason.duplicate_study,
                    f"study {record.study_id!r} was already loaded from {seen}",
                )
        yield record


class InputStudies:
    """The study ids of the records a build reads, counted as they stream past (rejected records too: their
    study is in the input), for `retire_absent`."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def count(self, records: Iterable[RawReport | RawReject]) -> Iterator[RawReport | RawReject]:
        for record in records:
            if record.study_id:
                self.ids.add(record.study_id)
            yield record


def retire_absent(store: Store, run_id: str, config: Config, studies: InputStudies) -> str | None:
    """After the stage: the current studies whose report the input lacks, retired with --prune (a warning
    without it); retired studies back in the input restored. Nothing under --limit (a part of the input says
    nothing of what is absent). Returns the warning given, if any."""
    if config.limit is None:
        source = f"--reports {config.reports}"
        return reconcile(store, run_id, "study", studies.ids, source, config.prune).message(source)
    return None


# -- a rebuild of an unchanged input reads nothing (table report_inputs) -----------------------------------
#: The stored rows a complete read leaves (`Store.rows_state`): what a later read of the same input compares against.
_STORE_STATE_SOURCES = ("reports", "report_rejects", "retirements WHERE kind = 'study'")


def input_fingerprint(config: Config, context: ReportStageContext) -> str | None:
    """The fingerprint of a complete read of the reports input as it is now (its files' stats, the stage's
    versions, --prune); None where a read is never skipped (--limit, --rehash)."""
    if config.limit is not None or config.report_limits.reread or config.reports is None:
        return None
    stats = file_stats(str(config.reports.resolve()))
    if any(len(stat) == 2 for stat in stats):
        return None  # a file gone or a dangling link: the loader says what it finds
    return stable_hash(
        {
            "files": stats,
            "format": context.report_format,
            "parser": context.parser_version,
            "max_chars": context.max_chars,
            "code": code_version(),  # the loaders, text normalisation, CSV reading, reconciliation
            "tables": loaders.report_tables(),
            "prune": config.prune,
        },
        length=32,
    )


def known_input(store: Store, fingerprint: str | None) -> int | None:
    """The number of records of the last complete read of this input, if the stored reports, rejects and
    retirements are still as it left them (then a read now would skip every record and reconcile nothing new);
    that read's warning of absent studies is given again."""
    if fingerprint is None:
        return None
    found = store.query(
        "SELECT n_input, store_state, warning FROM report_inputs WHERE fingerprint = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [fingerprint],
    )
    if not found or found[0][1] != _store_state(store):
        return None
    n_input, _, warning = found[0]
    if warning:
        retire_logger.warning(warning)
    return n_input


def record_input(store: Store, run_id: str, fingerprint: str | None, n_input: int, warning: str | None) -> None:
    """After a complete read and its reconciliation: what a rebuild of the same input compares against."""
    if fingerprint is None:
        return
    store.insert(
        "report_inputs",
        [
            {
                "fingerprint": fingerprint,
                "n_input": n_input,
                "store_state": _store_state(store),
                "warning": warning,
                "run_id": run_id,
                "created_at": datetime.now(timezone.utc),
            }
        ],
    )


def _store_state(store: Store) -> str:
    return stable_hash([str(value) for value in store.rows_state(_STORE_STATE_SOURCES)], length=32)


def _is_outcome(record: RawReport | RawReject) -> bool:
    """Whether the record decides its study's report: a report, or a reject of the study's record (not of a
    second copy of the study, nor of a record without a study)."""
    if isinstance(record, RawReport):
        return True
    return bool(record.study_id) and record.reason != ReportReason.duplicate_study


@dataclass(frozen=True)
class ReportWork:
    """A batch after the store was read: the records still to parse or reject, with their input hashes."""

    todo: list[tuple[RawReport | RawReject, str]]


def load_batch(
    store: Store, batch: list[RawReport | RawReject], context: ReportStageContext
) -> tuple[ReportWork, StageCounts]:
    """Leave out the records already stored (a study's current report with its input hash, or a reject); the
    counts so far."""
    hashes = [
        _sha256(r.study_id, r.patient_id, r.text) if isinstance(r, RawReport) else _sha256(r.source, r.reason, r.detail)
        for r in batch
    ]
    rejected_before = set(
        store.query(
            "SELECT source, input_hash FROM report_rejects WHERE parser_version = ? AND input_hash IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [context.parser_version, hashes],
        )
    )
    # a study's latest outcome (report or reject) only: an edit undone (A, B, then A again) must make A's
    # outcome current again
    studies = [r.study_id for r in batch if _is_outcome(r)]
    latest = dict(
        store.query(
            "SELECT study_id, arg_max(input_hash, created_at) FROM ("
            "  SELECT study_id, input_hash, parser_version, created_at FROM reports"
            "  UNION ALL SELECT study_id, input_hash, parser_version, created_at FROM report_rejects"
            f"  WHERE reason <> '{ReportReason.duplicate_study.value}'"
            ") WHERE study_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY study_id "
            "HAVING arg_max(parser_version, created_at) = ?",
            [studies, context.parser_version],
        )
    )
    todo = [
        (raw, input_hash)
        for raw, input_hash in zip(batch, hashes, strict=True)
        if (
            latest.get(raw.study_id) != input_hash
            if _is_outcome(raw)
            else (raw.source, input_hash) not in rejected_before
        )
    ]
    return ReportWork(todo), StageCounts(n_input=len(batch), n_skipped=len(batch) - len(todo))


def compute_batch(work: ReportWork, context: ReportStageContext, run_id: str) -> Iterator[Tables]:
    """The `reports`, `sentences` and `report_rejects` rows of the records to do (pure), parsed at most `CHUNK`
    records at a time over the worker processes and written as one part (the write reads the batch's stored reports
    once)."""
    parse = partial(_parsed, context=context, run_id=run_id, now=datetime.now(timezone.utc))
    return merged(process_map(parse, pool_chunks(work.todo, context.workers, CHUNK), context.workers), TABLES)


def _parsed(
    todo: list[tuple[RawReport | RawReject, str]], context: ReportStageContext, run_id: str, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """`compute_batch` of some records (in a worker, or here for a small input)."""
    rejects: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    sentence_rows: list[dict[str, Any]] = []

    def reject(source: str, study: str | None, reason: str, detail: str, input_hash: str | None) -> None:
        rejects.append(
            {
                "source": source,
                "study_id": study,
                "reason": ReportReason(reason).value,
                "detail": detail,
                "parser_version": context.parser_version,
                "run_id": run_id,
                "input_hash": input_hash,
                "code_version": code_version(),
                "created_at": now,
            }
        )

    for raw, input_hash in todo:
        if isinstance(raw, RawReject):
            reject(raw.source, raw.study_id, raw.reason, raw.detail, input_hash)
        elif not raw.text.strip():
            reject(raw.source, raw.study_id, ReportReason.empty_report, "expected report text, found none", input_hash)
        elif len(raw.text) > context.max_chars:
            reject(
                raw.source,
                raw.study_id,
                ReportReason.report_too_long,
                f"expected at most {context.max_chars} characters, found {len(raw.text)}",
                input_hash,
            )
        else:
            row, sentences = parse_report(raw, context, run_id, input_hash)
            rows.append(row)
            sentence_rows.extend(sentences)
    return {"reports": rows, "sentences": sentence_rows, "report_rejects": rejects}


def _restoring(store: Store, parts: Iterable[Tables], parser_version: str) -> Iterator[Tables]:
    """Each part, after the earlier rows of its reports are deleted (inside the batch's transaction): a study
    brought back to a version stored before (an edit undone: A, B, then A again) is written afresh, so that A is
    its latest report again; its sentences are the same rows, written again with it."""
    for part in parts:
        keys = [(row["study_id"], row["input_hash"], row["report_hash"]) for row in as_rows(part.get("reports", []))]
        stored = store.query(
            "SELECT study_id, input_hash, report_hash FROM reports WHERE parser_version = ? AND study_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [parser_version, [study for study, _, _ in keys]],
        )
        again = sorted(set(stored) & set(keys))
        if again:
            studies, inputs, texts = (list(column) for column in zip(*again, strict=True))
            store.con.execute(
                "DELETE FROM sentences WHERE parser_version = ? AND (study_id, report_hash) IN "
                "(SELECT (unnest(?::VARCHAR[]), unnest(?::VARCHAR[])))",
                [parser_version, studies, texts],
            )
            store.con.execute(
                "DELETE FROM reports WHERE parser_version = ? AND (study_id, input_hash) IN "
                "(SELECT (unnest(?::VARCHAR[]), unnest(?::VARCHAR[])))",
                [parser_version, studies, inputs],
            )
        yield part


def write_batch(store: Store, counts: StageCounts, parts: Iterable[Tables], context: ReportStageContext) -> StageCounts:
    written = write_tables(store, _restoring(store, parts, context.parser_version))
    counts.n_done += written["reports"]
    counts.n_rejected += written["report_rejects"]
    return counts
