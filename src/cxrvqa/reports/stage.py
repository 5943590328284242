"""The report stage over batches: skip what is done, split sections and sentences, write rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cxrvqa.config import Config
from cxrvqa.errors import InputError
from cxrvqa.provenance import code_version, stable_hash
from cxrvqa.reports.loaders import RawReject, RawReport
from cxrvqa.reports.text import SECTIONS, is_deid_only, section_rules, split_sections, split_sentences
from cxrvqa.store import StageCounts, Store

#: Bump when the section or sentence code changes its output.
PARSER_RECIPE = "report-sections/1"


@dataclass(frozen=True)
class ReportStageContext:
    report_format: str
    parser_version: str
    max_chars: int


def prepare(config: Config) -> ReportStageContext:
    if config.reports is None:
        raise InputError("--reports", "a reports file or folder for the reports stage", "none given")
    return ReportStageContext(
        report_format=config.report_format,
        parser_version=stable_hash({"recipe": PARSER_RECIPE, "rules": section_rules().content_hash}),
        max_chars=config.report_limits.max_chars,
    )


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def parse_report(report: RawReport, context: ReportStageContext, run_id: str, input_hash: str
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `reports` row and `sentences` rows of one report (pure)."""
    text = report.text
    sections = split_sections(text)
    bodies: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for span in sections:
        bodies[span.section].append(text[span.start:span.end].strip())
    sentences = split_sentences(text, sections)
    report_hash = _sha256(text)
    row = {
        "study_id": report.study_id, "patient_id": report.patient_id, "source": report.source,
        "source_format": context.report_format, "text": text,
        **{name: "\n".join(parts) for name, parts in bodies.items()},
        "n_sentences": len(sentences), "report_hash": report_hash, "parser_version": context.parser_version,
        "run_id": run_id, "input_hash": input_hash, "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }
    sentence_rows = [
        {"study_id": report.study_id, "report_hash": report_hash, "parser_version": context.parser_version,
         "sentence_id": index, "section": s.section, "text": s.text, "start": s.start, "end": s.end,
         "deid_only": is_deid_only(s.text), "run_id": run_id}
        for index, s in enumerate(sentences)
    ]
    return row, sentence_rows


def reject_duplicate_studies(records: Iterable[RawReport | RawReject]) -> Iterator[RawReport | RawReject]:
    """The first record of a study is its report; a later one becomes a `duplicate_study` reject.

    Done on the stream, before batching, so the outcome never depends on batch boundaries or on
    which records an earlier run already stored.
    """
    first_source: dict[str, str] = {}
    for record in records:
        if isinstance(record, RawReport):
            seen = first_source.setdefault(record.study_id, record.source)
            if seen != record.source:
                record = RawReject(record.source, record.study_id, "duplicate_study",
                                   f"study {record.study_id!r} was already loaded from {seen}")
        yield record


def ingest_batch(store: Store, run_id: str, batch: list[RawReport | RawReject],
                 context: ReportStageContext) -> StageCounts:
    """Write one batch of loaded records; every record ends as a report, a reject or a skip."""
    counts = StageCounts(n_input=len(batch))
    now = datetime.now(timezone.utc)

    def reject(source: str, study: str | None, reason: str, detail: str, input_hash: str | None) -> None:
        rejects.append({"source": source, "study_id": study, "reason": reason, "detail": detail,
                        "parser_version": context.parser_version, "run_id": run_id, "input_hash": input_hash,
                        "code_version": code_version(), "created_at": now})

    rejects: list[dict[str, Any]] = []
    reports = [r for r in batch if isinstance(r, RawReport)]
    hashes = {id(r): _sha256(r.study_id, r.patient_id, r.text) if isinstance(r, RawReport)
              else _sha256(r.source, r.reason, r.detail) for r in batch}
    rejected_before = set(store.query(
        "SELECT source, input_hash FROM report_rejects WHERE parser_version = ? AND input_hash IN "
        "(SELECT unnest(?::VARCHAR[]))", [context.parser_version, list(hashes.values())]))
    for raw in batch:
        if isinstance(raw, RawReject):
            if (raw.source, hashes[id(raw)]) in rejected_before:
                counts.n_skipped += 1
            else:
                reject(raw.source, raw.study_id, raw.reason, raw.detail, hashes[id(raw)])
    done = set(store.query(
        "SELECT study_id, input_hash FROM reports WHERE parser_version = ? AND study_id IN (SELECT unnest(?::VARCHAR[]))",
        [context.parser_version, [r.study_id for r in reports]]))

    rows: list[dict[str, Any]] = []
    sentence_rows: list[dict[str, Any]] = []
    for report in reports:
        input_hash = hashes[id(report)]
        if (report.source, input_hash) in rejected_before or (report.study_id, input_hash) in done:
            counts.n_skipped += 1
        elif not report.text.strip():
            reject(report.source, report.study_id, "empty_report", "expected report text, found none", input_hash)
        elif len(report.text) > context.max_chars:
            reject(report.source, report.study_id, "report_too_long",
                   f"expected at most {context.max_chars} characters, found {len(report.text)}", input_hash)
        else:
            row, sentences = parse_report(report, context, run_id, input_hash)
            rows.append(row)
            sentence_rows.extend(sentences)
    with store.transaction():
        store.insert("reports", rows)
        store.insert("sentences", sentence_rows)
        store.insert("report_rejects", rejects)
    counts.n_done += len(rows)
    counts.n_rejected += len(rejects)
    return counts
