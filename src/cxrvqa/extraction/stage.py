"""The extraction stage over batches of studies: current report sentences -> scene graphs.

A study is done when a graph exists for (study, backend, input_hash, extractor_version), so a
rerun extracts only new or changed reports, or everything after the rules/vocabulary changed.
A study whose extraction raises becomes an `extraction_failures` row; the batch goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from cxrvqa.config import Config
from cxrvqa.extraction.llm import (
    INJECTION_REASON,
    LLMContext,
    answer_to_graph,
    cached_answer,
    injection_patterns,
    prepare_llm,
    request_outcomes,
)
from cxrvqa.core.scene_graph import SceneGraph, Sentence
from cxrvqa.core.parallel import collector_paused, pool_chunks, process_map
from cxrvqa.core.provenance import code_digest, code_version, stable_hash
from cxrvqa.store import StageCounts, Store, in_studies, study_params
from cxrvqa.store.shards import Tables, merged, write_tables

#: The stage's name (config `stages`, `run_stages.stage`, the flow's batch task `extract-batch`).
NAME = "extract"

#: Studies per unit of work sent to a worker process, and the fewest pending studies worth a pool
#: (`parallel.with_workers_for`).
CHUNK, POOL_MIN_STUDIES = 100, 5000
TABLES = ("scene_graphs", "observations", "obs_regions", "obs_sentences", "extraction_failures")
#: Where a report stops being plausible English: share of its words that are English stop words
#: or vocabulary words, among reports with at least MIN_WORDS words.
ENGLISH_SHARE, MIN_WORDS = 0.2, 5
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class ExtractStageContext:
    backend: str
    extractor_version: str
    workers: int
    llm: LLMContext | None = None
    only_failed: bool = False  # extract only studies whose extraction by this extractor failed


@dataclass(frozen=True)
class StudyInput:
    """What the extractor reads of one study (from `current_reports` / `current_sentences`)."""

    study_id: str
    report_hash: str
    parser_version: str
    indication: str
    sentences: tuple[tuple[int, str, str, int, int, bool], ...]  # id, section, text, start, end, deid_only

    @property
    def input_hash(self) -> str:
        return stable_hash({"report": self.report_hash, "parser": self.parser_version})


def rules_extractor_version() -> str:
    """Changes when the rules, the vocabularies or the extractor's code change."""
    from cxrvqa.extraction import rules

    code = code_digest(Path(rules.__file__))
    return stable_hash({"backend": "rules", "rules": rules.rules_content_hash(), "code": code})


def prepare(config: Config) -> ExtractStageContext:
    if config.extraction.backend == "llm":
        llm_context, version = prepare_llm(config.extraction.llm)
        _load_report_checks()
        return ExtractStageContext(
            backend="llm", extractor_version=version, workers=1, llm=llm_context, only_failed=config.only_failed
        )
    return ExtractStageContext(
        backend="rules",
        extractor_version=rules_extractor_version(),
        workers=config.extraction.workers,
        only_failed=config.only_failed,
    )


def restore_current(store: Store, context: ExtractStageContext) -> None:
    """Make this extractor's stored graph current again where a later graph of another extractor version (of the
    same report) is current: a rule edited and edited back, an extraction setting set back. Without it, those
    studies were not pending (a graph of this version exists) and kept the other version's graph. The graph
    is not made again: its `created_at` (which the current view orders by) becomes now."""
    own = [
        graph
        for (graph,) in store.query(
            "SELECT g.graph_id FROM scene_graphs g "
            "JOIN current_reports r USING (study_id, report_hash, parser_version) "
            "WHERE g.backend = ? AND g.extractor_version = ? AND EXISTS (SELECT 1 FROM current_scene_graphs c "
            "WHERE c.study_id = g.study_id AND c.backend = g.backend AND c.extractor_version <> g.extractor_version)",
            [context.backend, context.extractor_version],
        )
    ]
    if own:
        store.con.execute(
            "UPDATE scene_graphs SET created_at = ? WHERE graph_id IN (SELECT unnest(?::VARCHAR[]))",
            [datetime.now(timezone.utc), own],
        )


def pending_studies(store: Store, context: ExtractStageContext) -> tuple[int, list[str]]:
    """(number of current reports, study ids of those without a graph for this extractor).

    With `only_failed`, only studies whose extraction by this extractor failed (and still has no graph).
    Otherwise, for the llm backend, a study whose answer ended in a cached terminal error (refusal, answers
    still invalid after every attempt) is not pending: asking again with the same prompt cannot help.
    Nor is one held back as a suspected prompt injection by this extractor version (whose hash covers
    the injection patterns): its report has not changed, so it would be held back again.
    """
    total = store.query("SELECT count(*) FROM current_reports")[0][0]
    pending = store.query(
        "SELECT r.study_id, r.report_hash, r.parser_version FROM current_reports r WHERE NOT EXISTS (SELECT 1 "
        "FROM scene_graphs g WHERE g.study_id = r.study_id AND g.report_hash = r.report_hash AND "
        "g.parser_version = r.parser_version AND g.backend = ? AND g.extractor_version = ?) ORDER BY r.study_id",
        [context.backend, context.extractor_version],
    )
    if context.only_failed:  # asked again even after a terminal error: the user asks for it
        failed = {
            study
            for (study,) in store.query(
                "SELECT DISTINCT study_id FROM extraction_failures WHERE backend = ? AND extractor_version = ?",
                [context.backend, context.extractor_version],
            )
        }
        return total, [row[0] for row in pending if row[0] in failed]
    if context.llm is not None:
        inputs = {
            study: StudyInput(study, report_hash, parser, "", ()).input_hash for study, report_hash, parser in pending
        }
        keys = {study: context.llm.cache.key(input_hash) for study, input_hash in inputs.items()}
        terminal = {
            key for key, entry in context.llm.cache.lookup(store, keys.values()).items() if entry.status == "error"
        }
        held_back = set(
            store.query(
                "SELECT study_id, input_hash FROM extraction_failures WHERE backend = 'llm' AND reason = ? "
                "AND extractor_version = ?",
                [INJECTION_REASON, context.extractor_version],
            )
        )
        pending = [row for row in pending if keys[row[0]] not in terminal and (row[0], inputs[row[0]]) not in held_back]
    return total, [row[0] for row in pending]


def load_inputs(store: Store, study_ids: list[str]) -> list[StudyInput]:
    reports = store.query(
        "SELECT study_id, report_hash, parser_version, indication FROM current_reports "
        f"WHERE {in_studies('study_id')} ORDER BY study_id",
        study_params(study_ids),
    )
    sentences: dict[str, list[tuple]] = {}
    for study_id, *sentence in store.query(
        'SELECT study_id, sentence_id, section, text, start, "end", deid_only FROM current_sentences '
        f"WHERE {in_studies('study_id')} ORDER BY study_id, sentence_id",
        study_params(study_ids),
    ):
        sentences.setdefault(study_id, []).append(tuple(sentence))
    return [
        StudyInput(study, report_hash, parser, indication, tuple(sentences.get(study, ())))
        for study, report_hash, parser, indication in reports
    ]


@lru_cache(maxsize=1)
def _english_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    from cxrvqa.core.vocab import vocabulary

    vocab = vocabulary()
    phrases = [
        s
        for item in [
            *vocab.findings.values(),
            *vocab.regions.values(),
            *vocab.severity,
            *vocab.change,
            *vocab.laterality,
        ]
        for s in item.get("synonyms", [])
    ]
    return frozenset(STOP_WORDS) | {w for p in phrases for w in _WORD.findall(p.lower())}


def _finding_sentences(study: StudyInput) -> list[tuple[int, str, str, int, int, bool]]:
    from cxrvqa.core.scene_graph import FINDING_SECTIONS

    return [s for s in study.sentences if s[1] in FINDING_SECTIONS]


def unreadable_reason(study: StudyInput) -> str | None:
    """Why the rules cannot read this report at all, as a quality code (None when they can).

    no_report_findings: no findings/impression text; deid_only: that text is only de-identification
    tokens; not_english: too few English words (the rules would read "kein Erguss" as an effusion).
    """
    finding_sentences = _finding_sentences(study)
    if not finding_sentences:
        return "no_report_findings"
    if all(s[5] for s in finding_sentences):
        return "deid_only"
    words = [w.lower() for s in finding_sentences for w in _WORD.findall(s[2])]
    known = _english_words()
    if len(words) >= MIN_WORDS and sum(w in known for w in words) < ENGLISH_SHARE * len(words):
        return "not_english"
    return None


def _load_report_checks() -> None:
    """Load what `unreadable_reason` needs (the rules and spaCy's stop words: ~0.5 s) while the llm stage is
    prepared, so that the first batch's requests are not held up by it."""
    _finding_sentences(StudyInput("", "", "", "", ()))
    _english_words()


def _readable_sentences(study: StudyInput) -> list[Sentence]:
    return [
        Sentence(id=i, section=section, text=text, start=start, end=end)
        for i, section, text, start, end, deid_only in study.sentences
        if not deid_only
    ]


def extract_study(study: StudyInput) -> tuple[SceneGraph, list[str]]:
    """The rules graph of one study and its quality codes (pure). An unreadable report gets a graph
    without observations and the code saying why; a readable one without any is `no_observations`."""
    from cxrvqa.extraction.rules import extract_scene_graph

    sentences = _readable_sentences(study)
    reason = unreadable_reason(study)
    if reason is not None:
        graph = SceneGraph(
            study_id=study.study_id,
            backend="rules",
            indication=study.indication or None,
            sentences=sentences,
            observations=[],
        )
        return graph, [reason]
    graph = extract_scene_graph(study.study_id, sentences, study.indication or None)
    return graph, [] if graph.observations else ["no_observations"]


def graph_id(study: StudyInput, context: ExtractStageContext) -> str:
    return stable_hash(
        {
            "study": study.study_id,
            "backend": context.backend,
            "input": study.input_hash,
            "extractor": context.extractor_version,
        },
        length=24,
    )


def graph_rows(
    study: StudyInput, graph: SceneGraph, codes: list[str], context: ExtractStageContext, run_id: str, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """The rows of one graph in `scene_graphs`, `observations`, `obs_regions`, `obs_sentences`."""
    gid = graph_id(study, context)
    observations, regions, evidence = [], [], []
    for o in graph.observations:
        observations.append(
            {
                "graph_id": gid,
                "study_id": study.study_id,
                "backend": context.backend,
                "obs_id": o.id,
                "name": o.name,
                "finding": o.finding,
                "unresolved_text": o.unresolved_text,
                "category": o.category,
                "laterality": o.laterality,
                "presence": o.presence,
                "certainty": o.certainty,
                "severity": o.severity,
                "change": o.change,
                "modifiers": list(o.modifiers),
                "parent_id": o.parent_id,
                "from_report": o.from_report,
                "derived_from": list(o.derived_from),
            }
        )
        regions.extend({"graph_id": gid, "obs_id": o.id, "region": r} for r in dict.fromkeys(o.regions))
        evidence.extend(
            {"graph_id": gid, "obs_id": o.id, "sentence_id": e.sentence_id, "start": e.start, "end": e.end}
            for e in o.evidence
        )
    graph_row = {
        "graph_id": gid,
        "study_id": study.study_id,
        "backend": context.backend,
        "report_hash": study.report_hash,
        "parser_version": study.parser_version,
        "input_hash": study.input_hash,
        "extractor_version": context.extractor_version,
        "quality": codes,
        "n_observations": len(observations),
        "graph": graph.model_dump_json(),
        "run_id": run_id,
        "code_version": code_version(),
        "created_at": now,
    }
    return {
        "scene_graphs": [graph_row],
        "observations": observations,
        "obs_regions": regions,
        "obs_sentences": evidence,
    }


def _failure_row(
    study: StudyInput,
    context: ExtractStageContext,
    run_id: str,
    now: datetime,
    *,
    reason: str,
    error: str,
    attempts: int,
    raw_response: str | None = None,
    usage: str | None = None,
) -> dict[str, Any]:
    return {
        "study_id": study.study_id,
        "backend": context.backend,
        "input_hash": study.input_hash,
        "extractor_version": context.extractor_version,
        "reason": reason,
        "error": error,
        "attempts": attempts,
        "raw_response": raw_response,
        "usage": usage,
        "run_id": run_id,
        "code_version": code_version(),
        "created_at": now,
    }


def _extract_chunk(
    chunk: list[StudyInput], context: ExtractStageContext, run_id: str, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """The table rows of a chunk of studies (in a worker process): graphs, or failures for studies
    whose extraction raised; one bad study never stops the others."""
    tables: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    for study in chunk:
        try:
            graph, codes = extract_study(study)
        except Exception as exc:  # noqa: BLE001 - it becomes an extraction_failures row with its message
            tables["extraction_failures"].append(
                _failure_row(
                    study,
                    context,
                    run_id,
                    now,
                    reason="extractor_error",
                    error=f"study {study.study_id!r}: {type(exc).__name__}: {exc}"[:2000],
                    attempts=1,
                )
            )
            continue
        for table, rows in graph_rows(study, graph, codes, context, run_id, now).items():
            tables[table].extend(rows)
    return tables


def _llm_tables(
    store: Store, run_id: str, studies: list[StudyInput], context: ExtractStageContext, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Graphs from the cache or the server; failures; the cache rows and request log to write."""
    llm = context.llm
    assert llm is not None
    tables: dict[str, list[dict[str, Any]]] = {table: [] for table in (*TABLES, "llm_cache", "llm_calls")}
    keys = {study.study_id: llm.cache.key(study.input_hash) for study in studies}
    cached = {
        key: entry.response for key, entry in llm.cache.lookup(store, keys.values()).items() if entry.status == "ok"
    }
    budget = llm.cache.budget(store, run_id)
    with collector_paused():
        jobs, graphs, tables["extraction_failures"] = _triage(studies, keys, cached, context, run_id, now)
    if context.only_failed and jobs:  # terminal errors asked again: their new outcome replaces them in the cache
        llm.cache.forget_errors(store, [key for _, key, _, _ in jobs])
    first: dict[str, tuple[str, str, list[Sentence], str | None]] = {}
    for job in jobs:  # one request per report: two studies of one report text share its cache key and answer
        first.setdefault(job[1], job)
    asked = list(first.values())
    outcomes = dict(zip((key for _, key, _, _ in asked), request_outcomes(asked, llm, budget, run_id), strict=True))
    by_study = {study.study_id: study for study in studies}
    with collector_paused():
        for study_id, key, _, _ in asked:
            tables["llm_calls"].extend(outcomes[key].exchange.calls)
            cache_row = llm.cache.row(key, study_id, by_study[study_id].input_hash, outcomes[key].exchange, run_id, now)
            if cache_row is not None:
                tables["llm_cache"].append(cache_row)
        for study_id, key, _, _ in jobs:
            study, outcome = by_study[study_id], outcomes[key]
            if outcome.graph is not None:
                graphs.append((study, outcome.graph.model_copy(update={"study_id": study_id}), outcome.codes))
            else:
                tables["extraction_failures"].append(_failure_row(study, context, run_id, now, **outcome.failure))
        for study, graph, codes in graphs:
            for table, rows in graph_rows(study, graph, codes, context, run_id, now).items():
                tables[table].extend(rows)
    return tables


def _triage(
    studies: list[StudyInput],
    keys: dict[str, str],
    cached: dict[str, str | None],
    context: ExtractStageContext,
    run_id: str,
    now: datetime,
) -> tuple[
    list[tuple[str, str, list[Sentence], str | None]],
    list[tuple[StudyInput, SceneGraph, list[str]]],
    list[dict[str, Any]],
]:
    """(jobs for the server, graphs made without asking, failures): a report with nothing to ask about has an
    empty graph, one with a cached answer its graph; one that reads as instructions to the model is never
    sent and its cached answer not used (a failure)."""
    patterns = injection_patterns()
    jobs, graphs, failures = [], [], []
    for study in studies:
        sentences = _readable_sentences(study)
        indication = study.indication or None
        reason = unreadable_reason(study)
        if reason in ("no_report_findings", "deid_only"):  # nothing to ask about
            graphs.append(
                (
                    study,
                    SceneGraph(
                        study_id=study.study_id,
                        backend="llm",
                        indication=indication,
                        sentences=sentences,
                        observations=[],
                    ),
                    [reason],
                )
            )
        elif (suspect := patterns.suspect(sentences)) is not None:  # never sent; a cached answer is not used
            sentence, pattern_id = suspect
            failures.append(
                _failure_row(
                    study,
                    context,
                    run_id,
                    now,
                    reason=INJECTION_REASON,
                    attempts=0,
                    error=(
                        f"study {study.study_id!r}: sentence {sentence.id} reads as instructions to the model "
                        f"(pattern {pattern_id}), so the report was not sent: {sentence.text!r}"
                    )[:2000],
                )
            )
        elif keys[study.study_id] in cached:
            answer = cached_answer(cached[keys[study.study_id]])
            graphs.append((study, *answer_to_graph(study.study_id, sentences, indication, answer)))
        else:
            jobs.append((study.study_id, keys[study.study_id], sentences, indication))
    return jobs, graphs, failures


def load_batch(
    store: Store, study_ids: list[str], context: ExtractStageContext
) -> tuple[list[StudyInput], StageCounts]:
    return load_inputs(store, study_ids), StageCounts(n_input=len(study_ids))


def compute_batch(studies: list[StudyInput], context: ExtractStageContext, run_id: str) -> Iterator[Tables]:
    """The table rows of the rules backend's graphs, made in chunks over the worker processes and written
    at once (one insert per table and batch: chunks of 100 studies are small). Pure.

    The llm backend is not pure (its cache and budget live in the store): see `compute_here`."""
    if context.backend != "rules":
        raise ValueError(f"compute_batch runs the rules backend only, not {context.backend!r}")
    work = partial(_extract_chunk, context=context, run_id=run_id, now=datetime.now(timezone.utc))
    chunks = pool_chunks(studies, context.workers, CHUNK)
    return merged(process_map(work, chunks, context.workers, len(studies)), TABLES)


def starts_ahead(context: ExtractStageContext) -> bool:
    """The rules backend's batches may start before the one before is written (`cxrvqa.core.batch`); the llm
    backend's may not: each batch's requests count against a budget the store keeps."""
    return context.backend == "rules"


def write_batch(
    store: Store, counts: StageCounts, parts: Iterable[Tables], context: ExtractStageContext
) -> StageCounts:
    written = write_tables(store, parts)
    counts.n_done += written["scene_graphs"]
    counts.n_rejected += written["extraction_failures"]
    return counts


def compute_here(
    store: Store, studies: list[StudyInput], context: ExtractStageContext, run_id: str
) -> Iterable[Tables]:
    """A batch's tables computed beside the store (`cxrvqa.core.batch.run_batch`): the llm backend's request
    cache and budget live there; the rules backend is `compute_batch`."""
    if context.backend == "llm":
        return [_llm_tables(store, run_id, studies, context, datetime.now(timezone.utc))]
    return compute_batch(studies, context, run_id)
