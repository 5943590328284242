"""The QA items an export writes: one DuckDB query over the current dataset, filtered by grade and
split, shared by every item format (jsonl, parquet, hf, llava).

Rows come in a stable order (study, then item id) and carry every field of
`schemas/qa_item.schema.json`: the item's columns, the PNG path, the answer parts with their tags,
the evidence sentences, the grade (label and code) and the provenance. The formats write the query's
result with DuckDB's `COPY ... TO`: nothing is loaded into Python, and DuckDB spills beyond its memory limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from cxrvqa.config import QAConfig
from cxrvqa.core.balance import eval_thresholds
from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.errors import CxrvqaError
from cxrvqa.store import Store

EXPORT_DATA = "schemas/vocab/export.yaml"


@lru_cache(maxsize=1)
def export_data() -> dict[str, Any]:
    """schemas/vocab/export.yaml: card wording, source licences, LLaVA wording."""
    return load_checked_yaml(EXPORT_DATA, "export.schema.json")[0]


@dataclass(frozen=True)
class Selection:
    """Which current items an export takes: every item, or those at or above a grade, of one split."""

    min_grade: int | None = None  # grade code (grade_levels.grade); None: every item, graded or not
    min_grade_label: str | None = None
    split: str | None = None
    balance: str | None = None  # per-question: yes/no 50/50, each option equally often (evaluation)
    #: per-question with a grade: the profile's (template, version, split, question, answer, threshold) over the
    #: items graded min_grade or better (`graded_profile`); empty otherwise
    graded_thresholds: tuple[tuple[str, str, str, str, str, float], ...] = field(default=(), compare=False, repr=False)

    def describe(self) -> str:
        parts = [
            f"grade >= {self.min_grade_label}" if self.min_grade_label else "",
            f"split {self.split}" if self.split else "",
            f"balance {self.balance}" if self.balance else "",
        ]
        return ", ".join(p for p in parts if p) or "every current item"


#: The default selection: every current item, graded or not.
EVERY_ITEM = Selection()


@dataclass
class ExportSummary:
    """What an export wrote: where, how many items (per split), and what it left out and why."""

    format: str
    dest: Path
    items: int
    per_split: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> items left out
    image_root: Path | None = None  # the folder image paths are relative to


def grade_levels(store: Store) -> list[tuple[int, str]]:
    """(code, label) of the build's grades, best first (grade_levels mirrors schemas/vocab/grades.yaml)."""
    return [(code, label) for code, label in store.query("SELECT grade, label FROM grade_levels ORDER BY grade DESC")]


def split_names(store: Store) -> list[str]:
    """The splits the build's runs declared (qa.splits), in their order, then any other split an item has."""
    declared: list[str] = []
    for (keys,) in store.query("SELECT json_keys(config, '$.qa.splits') FROM runs ORDER BY started_at"):
        declared += [k for k in keys or [] if k not in declared]
    found = [s for (s,) in store.query("SELECT DISTINCT split FROM qa_items ORDER BY split") if s not in declared]
    return declared + found


#: Export profiles (--balance): per-question keeps, per split and question (template and arguments), as many
#: 'yes' as 'no' items, and per multiple-choice question (template and set of options) each option as the answer
#: as often as the rarest, so that the question alone answers about half of them: the items below the item-hash
#: thresholds the QA stage stored (`qa_eval_balance`), stable across rebuilds like the build's own balance.
BALANCE_PROFILES = ("per-question",)


def select(
    store: Store, min_grade: str | None = None, split: str | None = None, balance: str | None = None
) -> Selection:
    """A Selection from a grade label, a split name and a balance profile, checked against the build."""
    if balance is not None and balance not in BALANCE_PROFILES:
        raise CxrvqaError(f"unknown --balance {balance!r}; profiles are {list(BALANCE_PROFILES)}")
    code = None
    if min_grade is not None:
        levels = grade_levels(store)
        if not levels:
            raise CxrvqaError(
                f"--min-grade {min_grade}: the build has no grades; run the validate stage first "
                f"(cxrvqa build ... --stages validate)"
            )
        codes = {label: c for c, label in levels}
        if min_grade not in codes:
            raise CxrvqaError(
                f"unknown grade {min_grade!r}; grades are {[label for _, label in levels]} "
                f"(best first, schemas/vocab/grades.yaml)"
            )
        code = codes[min_grade]
    if split is not None:
        names = split_names(store)
        if split not in names:
            raise CxrvqaError(f"unknown split {split!r}; the build's splits are {names}")
    if (
        balance is not None
        and not store.query("SELECT count(*) FROM current_qa_eval_balance")[0][0]
        and store.query(
            "SELECT count(*) FROM current_qa_items WHERE polarity IS NOT NULL OR answer_format = 'multiple_choice'"
        )[0][0]
    ):
        raise CxrvqaError(
            f"--balance {balance}: the build has no evaluation thresholds yet (a build made before "
            f"them); run the QA stage once: cxrvqa build --out {store.path.parent} --stages qa"
        )
    graded = graded_profile(store, code) if balance is not None and code is not None else ()
    return Selection(code, min_grade if code is not None else None, split, balance, graded)


def graded_profile(store: Store, min_grade: int) -> tuple[tuple[str, str, str, str, str, float], ...]:
    """The evaluation profile over the items graded ``min_grade`` or better (a grade filter after the stored
    profile would unbalance it: a question losing rejected 'yes' items keeps all its 'no'). Per question, the
    stored thresholds while the graded items they keep stay within the build's balance tolerance of an even
    split, else as many graded items per answer as the rarest answer has, the lowest item hashes
    (`eval_thresholds`)."""
    recorded = store.query(
        "SELECT json_extract(config, '$.qa.balance_tolerance')::DOUBLE FROM runs "
        "WHERE run_id = (SELECT any_value(run_id) FROM current_qa_eval_balance)"
    )
    tolerance = recorded[0][0] if recorded and recorded[0][0] is not None else QAConfig().balance_tolerance
    rows = eval_thresholds(store, tolerance, min_grade)
    return tuple(
        (r["template_id"], r["template_version"], r["split"], r["question"], r["answer"], r["threshold"]) for r in rows
    )


#: Columns of Selection.graded_thresholds, registered as `graded_eval_balance` while an export reads its items.
GRADED_COLUMNS = ("template_id", "template_version", "split", "question", "answer", "threshold")


def _items_cte(selection: Selection) -> tuple[str, list[Any]]:
    """`items`: the selected current items with their grade (NULL when not validated)."""
    where, params = [], []
    if selection.min_grade is not None:
        where.append("g.grade >= ?")
        params.append(selection.min_grade)
    if selection.split is not None:
        where.append("q.split = ?")
        params.append(selection.split)
    chosen = (
        "SELECT q.*, g.label AS grade, g.grade AS grade_code FROM current_qa_items q "
        "LEFT JOIN current_qa_grades g USING (item_id, template_version, input_hash)"
        + (" WHERE " + " AND ".join(where) if where else "")
    )
    if selection.balance == "per-question" and selection.min_grade is not None:
        # the profile over the graded items (graded_profile), registered by ordered_items
        chosen = (
            f"SELECT * FROM ({chosen}) SEMI JOIN (SELECT k.item_id FROM current_qa_eval_keys k "
            "LEFT JOIN graded_eval_balance b USING (template_id, template_version, split, question, answer) "
            "WHERE k.question IS NULL OR k.sample_u < b.threshold) USING (item_id)"
        )
    elif selection.balance == "per-question":
        # the thresholds the QA stage chose per split and question (view current_qa_eval_items): stable across
        # rebuilds, so an edit to a few studies changes the profile only in the questions they ask
        chosen = f"SELECT * FROM ({chosen}) SEMI JOIN current_qa_eval_items USING (item_id)"
    # a pair whose partner is not selected is no pair in this export
    sql = (
        f"items AS (SELECT * REPLACE (CASE WHEN count(*) OVER (PARTITION BY pair_id) = 2 THEN pair_id END "
        f"AS pair_id) FROM ({chosen}))"
    )
    return sql, params


#: Columns of an exported item, in order (schemas/qa_item.schema.json); `{image}`: the format's image column.
ITEM_COLUMNS = """
    i.item_id, i.study_id, i.patient_id, i.image_id, {image} AS image, i.view_plane, i.template_id,
    i.question_type, i.strategy, i.skill, i.answer_format, i.question, i.answer,
    coalesce(p.answer_parts, []) AS answer_parts, i.options, i.correct_option, i.findings, i.regions, i.boxes,
    i.evidence_ids, {evidence} AS evidence, i.arguments, i.polarity, i.pair_id, i.split, i.grade, i.grade_code,
    {{'run_id': i.run_id, 'input_hash': i.input_hash, 'template_version': i.template_version,
      'code_version': i.code_version, 'graph_id': i.graph_id, 'backend': i.backend}} AS provenance"""

#: An item's evidence sentences in the order of its evidence_ids (an id without a current sentence is left out).
_EVIDENCE = (
    "list_filter(list_transform(i.evidence_ids, lambda k: list_filter(coalesce(s.sentences, []), "
    "lambda x: x.sentence_id = k)[1]), lambda x: x IS NOT NULL)"
)

#: The image column: the PNG path relative to the build folder (as stored in images.png_path).
RELATIVE_IMAGE = "im.png_path"


def items_query(selection: Selection, image: str = RELATIVE_IMAGE) -> tuple[str, list[Any]]:
    """(SQL, parameters) of the selected items with every exported field, ordered by study and item id.

    ``image`` is the SQL expression of the image column over ``im.png_path`` (NULL without an image)."""
    items, params = _items_cte(selection)
    sql = f"""
WITH {items},
parts AS (
    SELECT p.item_id, p.template_version, p.input_hash,
           list({{'kind': p.kind, 'text': p.text, 'findings': p.findings, 'regions': p.regions}}
                ORDER BY p.part_index) AS answer_parts
    FROM qa_answer_parts p SEMI JOIN items USING (item_id, template_version, input_hash)
    GROUP BY ALL
),
sentences AS (   -- each study's sentences; an item's evidence is looked up from its own evidence_ids
    SELECT study_id, list({{'sentence_id': sentence_id, 'section': section, 'text': text}} ORDER BY sentence_id)
               AS sentences
    FROM current_sentences SEMI JOIN items USING (study_id)
    GROUP BY study_id
)
SELECT {ITEM_COLUMNS.format(image=image, evidence=_EVIDENCE)}
FROM items i
LEFT JOIN parts p USING (item_id, template_version, input_hash)
LEFT JOIN sentences s USING (study_id)
LEFT JOIN current_images im ON im.image_id = i.image_id
ORDER BY i.study_id, i.item_id"""
    return sql, params


@contextmanager
def ordered_items(
    store: Store, selection: Selection, path: Path, image: str = RELATIVE_IMAGE
) -> Iterator[tuple[str, dict[str, int]]]:
    """The selected items written once, in order, to a temporary Parquet file at ``path`` (deleted on exit).

    Yields (a `read_parquet(...)` SQL source, items per split in the build's split order). The formats copy
    from it: a scan of one file keeps its order (DuckDB preserves insertion order), and the sort runs where
    DuckDB can spill it (a JSON `COPY` of the sorted query directly needs ~2x the memory)."""
    sql, params = items_query(selection, image)
    source = f"read_parquet({sql_literal(str(path))})"
    store.con.execute("SET enable_progress_bar = false")
    columns = list(zip(*selection.graded_thresholds)) or [() for _ in GRADED_COLUMNS]
    thresholds = pa.table(
        {
            name: pa.array(column, pa.float64() if name == "threshold" else pa.string())
            for name, column in zip(GRADED_COLUMNS, columns, strict=True)
        }
    )
    with store.registered("graded_eval_balance", thresholds):
        try:
            store.query(f"COPY ({sql}) TO {sql_literal(str(path))} (FORMAT parquet)", params)
            counts = dict(store.query(f"SELECT split, count(*) FROM {source} GROUP BY split"))
            yield source, {s: counts[s] for s in split_names(store) if s in counts}
        finally:
            path.unlink(missing_ok=True)


def sql_literal(text: str) -> str:
    """A single-quoted SQL string literal (COPY's target and options take no parameters)."""
    return "'" + text.replace("'", "''") + "'"
