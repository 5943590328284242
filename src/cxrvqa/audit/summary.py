"""The audit's read-only queries: what each stage kept, rejected and failed, and why, as typed summaries.

Everything is aggregated in DuckDB. The QA-level sections read three relations: the `current_*` views
(`cxrvqa status`, no filters) or, for `cxrvqa audit`, temporary tables that hold the current items,
grades and validation results once, already narrowed by --template and --validator (reading the views
once keeps the audit of ~2M results to seconds).

"As of run X" (`as_of`): every base table with a `run_id` column is shadowed, on this connection only,
by a temporary view of its rows from runs started up to X (the `latest` markers recomputed over those rows:
cxrvqa.store.latest), and the stored keys of the current dataset
(`qa_current`) by the rule that selects them (`qa_current_rule`). DuckDB resolves names in the temporary
catalog first, also inside the stored `current_*` views, so those views then select the dataset as it
was after run X, with no copy of their definitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cxrvqa.errors import ConfigError
from cxrvqa.core.prior import PriorFigure, stored_prior
from cxrvqa.review.accuracy import ReviewAccuracy, review_accuracy
from cxrvqa.store import Store
from cxrvqa.store.latest import MARKED, as_of_marker
from cxrvqa.core.grading import STATUS_RANK

if TYPE_CHECKING:
    from cxrvqa.audit.diff import DatasetDiff

#: Sections belong to one of these; --stage keeps one. `dataset` = the dataset-level checks.
STAGES = ("images", "reports", "extract", "boxes", "qa", "validate", "dataset")
#: Stages whose rows belong to no template or validator: --template / --validator leave them out.
INPUT_STAGES = ("images", "reports", "extract", "boxes")

# Column headers of the tables that the terminal and the HTML audit both show.
STAGE_COLUMNS = ("stage", "output", "kept", "warned", "rejected", "failed")
REASON_COLUMNS = ("stage", "validator", "reason", "status", "count", "share", "rate", "example detail")
VALIDATOR_COLUMNS = ("validator", "strictness", "items", "ok", "warned", "rejected", "failure rate", "top reason")
TEMPLATE_COLUMNS = ("template", "items", "yes/no", "positive share", "target", "warned", "rejected", "failure rate")
DISAGREEMENT_COLUMNS = ("finding", "disagreement", "studies")
DISAGREEMENT_EXAMPLE_COLUMNS = ("study", "finding", "rules", "llm")
RETIRED_COLUMNS = ("kind", "name", "reason", "items removed", "detail")
PRIOR_TEMPLATE_COLUMNS = ("template", "format", "key", "held-out", "accuracy", "chance", "best answered questions")
TOO_FEW_COLUMNS = ("template", "questions", "without a yes", "without a no", "items left out", "largest")
CHOICES_DROPPED_COLUMNS = (
    "template",
    "sets of options",
    "dropped",
    "candidates",
    "items left out",
    "largest dropped (items per answer)",
)
REVIEW_COLUMNS = ("measure", "share", "Wilson 95%", "items")
REVIEW_TEMPLATE_COLUMNS = ("template", "reviewed", "correct", "accuracy", "Wilson 95%", "verdicts")
COMPARE_TEMPLATE_COLUMNS = (
    "template",
    "items before",
    "items now",
    "failure rate before",
    "failure rate now",
    "positive share before",
    "positive share now",
)
COMPARE_VALIDATOR_COLUMNS = ("validator", "failing before", "failing now", "rate before", "rate now")


@dataclass(frozen=True)
class AuditFilters:
    """What to look at: every section applies the same filters (README, "Audit")."""

    stage: str | None = None
    validator: str | None = None
    reason: str | None = None
    template: str | None = None

    def shows(self, stage: str) -> bool:
        """Whether a section of this stage is shown under these filters."""
        if self.stage is not None and self.stage != stage:
            return False
        if stage == "dataset":  # checks are per template, not per validator
            return not self.validator
        return not (stage in INPUT_STAGES and (self.validator or self.template))

    @property
    def narrows_items(self) -> bool:
        """Items are those with a matching failure (not all items) when a validator or reason is given."""
        return bool(self.validator or self.reason)


NO_FILTERS = AuditFilters()


@dataclass(frozen=True)
class Relations:
    """Where the QA-level queries read current items, their grades and their validation results."""

    items: str = "current_qa_items"
    grades: str = "current_qa_grades"
    results: str = "current_validation_results"


VIEWS = Relations()
AUDIT_TABLES = Relations("_audit_items", "_audit_grades", "_audit_results")


# -- typed summaries ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageCount:
    stage: str
    output: str  # what `kept` counts
    kept: int
    warned: int = 0
    rejected: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ReasonCount:
    stage: str
    validator: str | None  # validate: the validator; dataset: None
    reason: str
    status: str  # reject | warn | failed
    n: int
    share: float  # of the stage's failures (validate: of all failing results)
    rate: float | None  # of the stage's inputs (validate: of the validator's items)
    example: str


@dataclass(frozen=True)
class TemplateSummary:
    template_id: str
    items: int
    yes_no: int
    positive_share: float | None  # 'yes' share of its yes/no items; of a list template's, the share naming a finding
    target_share: float | None
    warned: int  # items whose worst failure is a warning
    rejected: int
    failure_rate: float  # (warned + rejected) / items
    lists: bool = False  # its program answers with a list of findings


@dataclass(frozen=True)
class ValidatorSummary:
    validator: str
    strictness: str
    items: int
    ok: int
    warned: int
    rejected: int
    failure_rate: float
    top_reason: str | None


@dataclass(frozen=True)
class GradeCount:
    grade: int
    label: str
    n: int
    share: float


@dataclass(frozen=True)
class GradeCriterion:
    label: str
    weakest: str  # the criterion that set the grade ('' when none capped it)
    n: int


@dataclass(frozen=True)
class Disagreements:
    """Rules-vs-LLM graphs of the studies both backends extracted (view `backend_agreement`)."""

    studies_with_both: int
    studies_disagreeing: int
    by_finding: list[dict[str, Any]]  # finding, disagreement (presence | laterality), n
    examples: list[dict[str, Any]]


@dataclass(frozen=True)
class DatasetCheck:
    check: str
    subject: str
    value: float | None
    expected: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Failure:
    validator: str
    status: str
    reason: str
    detail: str
    strictness: str  # the validator's strictness in the run that checked the item: reject | warn


@dataclass(frozen=True)
class FailingItem:
    item_id: str
    study_id: str
    image_id: str | None
    view: str | None  # the image's view position and plane ('PA, frontal'); None: no image
    template_id: str
    question_type: str
    answer_format: str
    question: str
    answer: str
    answer_parts: list[dict[str, str]]  # kind, text; from current_qa_answer_parts
    options: list[str] | None
    correct_option: str | None
    findings: list[str]
    regions: list[str]
    boxes: list[dict[str, Any]]  # label, x_min, y_min, x_max, y_max in PNG pixels
    evidence_ids: list[int]
    grade: str | None
    status: str  # the worst of its failures
    failures: list[Failure]


@dataclass(frozen=True)
class Retired:
    """A study or image the audited run retired (`build --prune`): its items left the current dataset."""

    kind: str  # study | image
    key: str  # study_id | image_id
    name: str  # as the input named it: the study id, the image's source path
    reason: str  # absent_from_input
    detail: str  # the input it was looked for in
    items: int  # its items the run removed from the dataset (the change log's study/image retired)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    started_at: str


@dataclass(frozen=True)
class TooFew:
    """Per template, the questions (arguments) the per-question balance kept nothing of: one answer never came."""

    template_id: str
    questions: int  # questions with yes/no candidates
    without_yes: int
    without_no: int
    items_left_out: int  # their candidates
    examples: str  # the largest ones: 'arguments (n no, 0 yes)'


def too_few_answers(store: Store, filters: AuditFilters, limit: int = 3) -> list[TooFew]:
    """TooFew per template of the latest balance, the most items left out first."""
    return [
        TooFew(*row)
        for row in store.query(
            "WITH q AS (SELECT * FROM current_qa_question_balance WHERE $template IS NULL OR template_id = $template) "
            "SELECT template_id, count(*), count(*) FILTER (missing = 'yes'), count(*) FILTER (missing = 'no'), "
            "coalesce(sum(n_positive + n_negative) FILTER (missing IS NOT NULL), 0), "
            "coalesce(string_agg(arguments || ' (' || n_positive || ' yes, ' || n_negative || ' no)', '; ' "
            "ORDER BY n_positive + n_negative DESC, arguments) FILTER (missing IS NOT NULL AND rank <= $limit), '') "
            "FROM (SELECT *, row_number() OVER (PARTITION BY template_id, missing IS NOT NULL "
            "ORDER BY n_positive + n_negative DESC, arguments) AS rank FROM q) "
            "GROUP BY template_id HAVING count(*) FILTER (missing IS NOT NULL) > 0 ORDER BY 5 DESC, 1",
            {"template": filters.template, "limit": limit},
        )
    ]


@dataclass(frozen=True)
class ChoicesDropped:
    """Per multiple-choice template, the sets of options the per-question balance kept nothing of: one of the
    options is never the true answer of the set's candidates, so the option's value alone would tell the
    answer (the reader of the options, `cxrvqa.prior.OptionModel`)."""

    template_id: str
    sets: int  # sets of options with candidates
    dropped: int  # of them, those with an option that is never the answer
    candidates: int  # candidates of every set
    items_left_out: int  # candidates of the dropped sets
    examples: str  # the largest dropped sets: 'a | b (0 a, 51 b)'


def choices_dropped(store: Store, filters: AuditFilters, limit: int = 3) -> list[ChoicesDropped]:
    """ChoicesDropped per template of the latest balance, the most items left out first (empty for a
    per_template balance, which keeps every choice item)."""
    return [
        ChoicesDropped(*row)
        for row in store.query(
            "WITH s AS (SELECT template_id, options, min(n_items) = 0 AS dropped, sum(n_items) AS n, "
            "array_to_string(options, ' | ') || ' (' || string_agg(n_items || ' ' || answer, ', ' ORDER BY answer) "
            "|| ')' AS shown FROM current_qa_choice_balance WHERE $template IS NULL OR template_id = $template "
            "GROUP BY template_id, options), r AS (SELECT *, row_number() OVER (PARTITION BY template_id, dropped "
            "ORDER BY n DESC, shown) AS rank FROM s) "
            "SELECT template_id, count(*), count(*) FILTER (dropped), sum(n)::BIGINT, "
            "coalesce(sum(n) FILTER (dropped), 0)::BIGINT, "
            "coalesce(string_agg(shown, '; ' ORDER BY n DESC, shown) FILTER (dropped AND rank <= $limit), '') "
            "FROM r GROUP BY template_id HAVING count(*) FILTER (dropped) > 0 ORDER BY 5 DESC, 1",
            {"template": filters.template, "limit": limit},
        )
    ]


@dataclass
class AuditSummary:
    as_of_run: RunInfo | None  # None: an empty store
    latest_run: str | None
    filters: dict[str, str | None]
    stages: list[StageCount]
    reasons: list[ReasonCount]
    templates: list[TemplateSummary]
    validators: list[ValidatorSummary]
    grades: list[GradeCount]
    grade_criteria: list[GradeCriterion]
    disagreements: Disagreements | None
    dataset_checks_run: str | None
    dataset_checks: list[DatasetCheck]
    failing_items: int  # in scope; `examples` holds the first `limit` of them
    examples: list[FailingItem]
    rejects: dict[str, list[dict[str, Any]]]  # per input stage: example rows with reason and detail
    notes: list[str] = field(default_factory=list)
    compare: Comparison | None = None
    review: ReviewAccuracy | None = None  # what human review measured (None: no reviewed item in scope)
    prior: list[PriorFigure] = field(default_factory=list)  # the question-only baseline (cxrvqa.core.prior)
    too_few: list[TooFew] = field(default_factory=list)  # per-question balance: questions missing an answer
    choices_dropped: list[ChoicesDropped] = field(default_factory=list)  # choice sets an option never answers
    retired: list[Retired] = field(default_factory=list)  # the first of what the audited run retired
    retired_total: int = 0
    changes: DatasetDiff | None = None  # the change log from the run before the audited one (cxrvqa diff)
    changes_from: str | None = None  # that run (None: the audited run is the first)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, changes=None))
        data["changes"] = self.changes.as_dict() if self.changes is not None else None
        return json.loads(json.dumps(data, default=str))


# -- scope: as of a run, filtered tables ------------------------------------------------------------------
def run_info(store: Store, run_id: str | None) -> RunInfo | None:
    """The run (default: the latest); a ConfigError naming the known runs when it does not exist."""
    rows = store.query("SELECT run_id, status, started_at FROM runs ORDER BY started_at DESC")
    if run_id is None:
        return RunInfo(rows[0][0], rows[0][1], str(rows[0][2])) if rows else None
    for found, status, started in rows:
        if found == run_id:
            return RunInfo(found, status, str(started))
    known = ", ".join(r[0] for r in rows[:10]) or "none"
    raise ConfigError("--run/--compare", f"no run {run_id!r} in this build; latest runs: {known}")


def previous_run(store: Store, run_id: str) -> str | None:
    """The run started last before ``run_id`` (None: it is the first)."""
    rows = store.query(
        "SELECT run_id FROM runs WHERE started_at < (SELECT started_at FROM runs WHERE run_id = ?) "
        "ORDER BY started_at DESC LIMIT 1",
        [run_id],
    )
    return rows[0][0] if rows else None


@contextmanager
def as_of(store: Store, run_id: str | None) -> Iterator[None]:
    """Within the block, every `current_*` view selects the dataset as it was after run `run_id`."""
    if run_id is None:
        yield
        return
    run_info(store, run_id)
    runs = [
        r
        for (r,) in store.query(
            "SELECT run_id FROM runs WHERE started_at <= (SELECT started_at FROM runs "
            "WHERE run_id = ?) ORDER BY started_at",
            [run_id],
        )
    ]
    if len(runs) == store.query("SELECT count(*) FROM runs")[0][0]:
        yield  # as of the latest run = the current dataset
        return
    catalog = store.query("SELECT current_database()")[0][0].replace('"', '""')
    tables = [
        t
        for (t,) in store.query(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_catalog, table_schema, table_name) WHERE c.table_catalog = current_database() "
            "AND c.table_schema = 'main' AND t.table_type = 'BASE TABLE' AND c.column_name = 'run_id' ORDER BY 1"
        )
    ]
    # views take no parameters; a literal list (not a subquery) also keeps DuckDB's row estimates and plans
    # right (a subquery here made the validation view ~10x slower)
    listed = ", ".join("'" + r.replace("'", "''") + "'" for r in runs)
    created = []
    try:
        for table in tables:
            # a table's `latest` marker is today's: as of run X it is recomputed over the rows up to X
            marker = as_of_marker(table) if table in MARKED else ""
            store.con.execute(
                f'CREATE TEMP VIEW "{table}" AS SELECT * {marker} FROM "{catalog}".main."{table}" '
                f"WHERE run_id IN ({listed})"
            )
            created.append(table)
        # the stored keys of the current dataset are the latest QA stage's: as of run X, the rule over X's rows
        # (complementary pairs are not reconstructed as of a run)
        store.con.execute(
            "CREATE TEMP VIEW qa_current AS SELECT study_id, item_id, template_version, input_hash, "
            "NULL::VARCHAR AS pair_id FROM qa_current_rule"
        )
        created.append("qa_current")
        yield
    finally:
        for table in created:
            store.con.execute(f'DROP VIEW IF EXISTS temp.main."{table}"')


@contextmanager
def audit_tables(store: Store, filters: AuditFilters) -> Iterator[Relations]:
    """Current items (--template), their grades and validation results (--validator), held once
    (not at all when --stage shows no QA-level section)."""
    if not (filters.shows("qa") or filters.shows("validate")):
        yield VIEWS
        return
    try:
        store.con.execute(
            "CREATE OR REPLACE TEMP TABLE _audit_items AS SELECT item_id, template_version, input_hash, template_id, "
            "study_id, image_id, polarity, findings FROM current_qa_items "
            "WHERE $template IS NULL OR template_id = $template",
            {"template": filters.template},
        )
        store.con.execute(
            "CREATE OR REPLACE TEMP TABLE _audit_grades AS SELECT g.item_id, g.template_version, g.input_hash, "
            "g.grade, g.label, g.weakest FROM current_qa_grades g SEMI JOIN _audit_items "
            "USING (item_id, template_version, input_hash)"
        )
        store.con.execute(
            "CREATE OR REPLACE TEMP TABLE _audit_results AS SELECT r.item_id, r.template_version, r.input_hash, "
            "r.validator, r.strictness, r.status, r.reason, CASE WHEN r.status <> 'ok' THEN r.detail END AS detail "
            "FROM current_validation_results r SEMI JOIN _audit_items USING (item_id, template_version, input_hash) "
            "WHERE $validator IS NULL OR r.validator = $validator",
            {"validator": filters.validator},
        )
        yield AUDIT_TABLES
    finally:
        for table in ("_audit_items", "_audit_grades", "_audit_results"):
            store.con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")


def check_filters(store: Store, filters: AuditFilters) -> list[str]:
    """A ConfigError for a stage, validator or template this build does not have; notes for the rest."""
    if filters.stage is not None and filters.stage not in STAGES:
        raise ConfigError("--stage", f"unknown stage {filters.stage!r}; stages are {list(STAGES)}")
    for flag, value, sql in (
        (
            "--validator",
            filters.validator,
            "SELECT DISTINCT validator FROM validation_checks UNION SELECT DISTINCT validator FROM validation_results "
            "UNION SELECT DISTINCT 'human_review' FROM review_verdicts",
        ),
        ("--template", filters.template, "SELECT DISTINCT template_id FROM qa_templates"),
    ):
        if value is not None:
            known = sorted(r[0] for r in store.query(sql))
            if value not in known:
                raise ConfigError(flag, f"{value!r} is not in this build; found {known}")
    notes = []
    if filters.reason is not None and not store.query(
        "SELECT 1 FROM image_rejects WHERE reason = $r UNION ALL SELECT 1 FROM report_rejects WHERE reason = $r "
        "UNION ALL SELECT 1 FROM extraction_failures WHERE reason = $r UNION ALL SELECT 1 FROM box_rejects "
        "WHERE reason = $r UNION ALL SELECT 1 FROM validation_results WHERE reason = $r UNION ALL SELECT 1 "
        'FROM dataset_checks WHERE "check" = $r LIMIT 1',
        {"r": filters.reason},
    ):
        notes.append(f"reason {filters.reason!r} occurs in no run of this build")
    return notes


# -- sections shared with `cxrvqa status` -------------------------------------------------------------
#: Rows of the current dataset per table (`cxrvqa status`).
TABLE_COUNTS = {
    "images": "current_images",
    "image_rejects": "current_image_rejects",
    "reports": "current_reports",
    "sentences": "current_sentences",
    "report_rejects": "report_rejects",
    "scene_graphs": "current_scene_graphs",
    "observations": "current_observations",
    "extraction_failures": "current_extraction_failures",
    "boxes": "current_boxes",
    "qa_items": "qa_current",  # the current items' keys: counted without reading items
}


def table_counts(store: Store) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{name}', count(*) FROM {view}" for name, view in TABLE_COUNTS.items())
    return dict(store.query(sql))


#: Reject and failure rows of the input stages: (stage, status, source relation, detail column, total).
_INPUT_REASONS = (
    (
        "images",
        "reject",
        "current_image_rejects",
        "detail",
        "(SELECT count(*) FROM current_images) + (SELECT count(*) FROM current_image_rejects)",
    ),
    ("images", "warn", "image_manifest_gaps", "detail", "(SELECT count(*) FROM current_images)"),
    (
        "reports",
        "reject",
        "report_rejects",
        "detail",
        "(SELECT count(*) FROM current_reports) + (SELECT count(*) FROM report_rejects)",
    ),
    (
        "extract",
        "failed",
        "current_extraction_failures",
        "error",
        "(SELECT count(*) FROM current_scene_graphs) + (SELECT count(*) FROM current_extraction_failures)",
    ),
    (
        "boxes",
        "reject",
        "current_box_rejects",
        "detail",
        "(SELECT count(*) FROM current_boxes) + (SELECT count(*) FROM current_box_rejects)",
    ),
)
_LATEST_CHECKS = "(SELECT max(run_id) FROM dataset_checks)"


def reason_counts(store: Store, filters: AuditFilters = NO_FILTERS, relations: Relations = VIEWS) -> list[ReasonCount]:
    """Every reason with its count, share of its stage's failures, rate over its stage and an example detail.

    Ordered by stage (pipeline order), count (descending), reason.
    """
    parts = []
    for stage, status, source, detail, total in _INPUT_REASONS:
        if filters.shows(stage):
            parts.append(
                f"SELECT '{stage}' AS stage, NULL AS validator, reason, '{status}' AS status, count(*) AS n, "
                f"min({detail}) AS example, ({total}) AS total FROM {source} "
                "WHERE $reason IS NULL OR reason = $reason GROUP BY reason"
            )
    if filters.shows("validate"):
        # one pass: every (validator, status, reason) counted, each validator's items summed over its groups
        parts.append(
            "SELECT 'validate' AS stage, validator, reason, status, n, example, total FROM (SELECT validator, reason, "
            "status, count(*) AS n, min(detail) AS example, sum(count(*)) OVER (PARTITION BY validator) AS total "
            f"FROM {relations.results} GROUP BY validator, reason, status) "
            "WHERE status <> 'ok' AND ($reason IS NULL OR reason = $reason)"
        )
    if filters.shows("dataset"):
        parts.append(
            "SELECT 'dataset' AS stage, NULL AS validator, \"check\" AS reason, 'failed' AS status, count(*) AS n, "
            "min(subject || ': ' || detail) AS example, (SELECT count(*) FROM dataset_checks WHERE run_id = "
            f'{_LATEST_CHECKS} AND "check" = d."check") AS total '
            f"FROM dataset_checks d WHERE NOT ok AND run_id = {_LATEST_CHECKS} "
            'AND ($reason IS NULL OR "check" = $reason) AND ($template IS NULL OR subject = $template) GROUP BY ALL'
        )
    # one statement per stage: DuckDB plans a UNION ALL of these views with shared sub-plans that made the
    # validation part ~20x slower (2 s alone, 45 s in the union, on the IU dev build)
    rows = [row for part in parts for row in _query(store, part, filters)]
    failures: dict[str, int] = {}
    for row in rows:
        failures[row["stage"]] = failures.get(row["stage"], 0) + row["n"]
    rows.sort(key=lambda r: (STAGES.index(r["stage"]), -r["n"], r["validator"] or "", r["reason"]))
    return [
        ReasonCount(
            r["stage"],
            r["validator"],
            r["reason"],
            r["status"],
            r["n"],
            round(r["n"] / failures[r["stage"]], 4),
            round(r["n"] / r["total"], 4) if r["total"] else None,
            r["example"] or "",
        )
        for r in rows
    ]


def grade_counts(store: Store, filters: AuditFilters = NO_FILTERS, relations: Relations = VIEWS) -> list[GradeCount]:
    """Items per grade level, best first (every level, with 0 when none)."""
    sql = (
        f"SELECT l.grade, l.label, count(g.item_id) FROM grade_levels l LEFT JOIN (SELECT * FROM "
        f"{relations.grades} {_selected_items(filters, relations)}) g ON g.grade = l.grade GROUP BY ALL "
        "ORDER BY l.grade DESC"
    )
    rows = store.query(sql, _bind(sql, filters))
    total = sum(n for _, _, n in rows)
    return [GradeCount(grade, label, n, round(n / total, 4) if total else 0.0) for grade, label, n in rows]


# -- the audit ------------------------------------------------------------------------------------------
def _selected_items(filters: AuditFilters, relations: Relations) -> str:
    """A WHERE clause keeping the items that have a failure matching --validator / --reason."""
    if not filters.narrows_items:
        return ""
    return (
        f"WHERE (item_id, template_version, input_hash) IN (SELECT (item_id, template_version, input_hash) "
        f"FROM {relations.results} WHERE status <> 'ok' AND ($reason IS NULL OR reason = $reason))"
    )


def _bind(sql: str, filters: AuditFilters, **values: Any) -> dict[str, Any]:
    """The named parameters the statement uses ($reason, $template, ...): DuckDB refuses unused ones."""
    given = {"reason": filters.reason, "template": filters.template, "validator": filters.validator, **values}
    return {name: value for name, value in given.items() if f"${name}" in sql}


def _query(store: Store, sql: str, filters: AuditFilters, **values: Any) -> list[dict[str, Any]]:
    return store.query_dicts(sql, _bind(sql, filters, **values))


def stage_counts(store: Store, filters: AuditFilters, relations: Relations, tables: dict[str, int]) -> list[StageCount]:
    """Kept / warned / rejected / failed per stage; reject and failure counts follow --reason."""
    reason = "WHERE $reason IS NULL OR reason = $reason"
    # not_in_manifest images (status warn) are kept, not rejected
    rejected = {stage: source for stage, status, source, _, _ in _INPUT_REASONS if status != "warn"}
    counts = {
        stage: _query(store, f"SELECT count(*) AS n FROM {source} {reason}", filters)[0]["n"]
        for stage, source in rejected.items()
        if filters.shows(stage)
    }
    rows = []
    for stage, output, kept in (
        ("images", "images", "images"),
        ("reports", "reports", "reports"),
        ("extract", "scene graphs", "scene_graphs"),
        ("boxes", "boxes", "boxes"),
    ):
        if filters.shows(stage):
            n = counts[stage]
            rows.append(
                StageCount(stage, output, tables[kept], failed=n)
                if stage == "extract"
                else StageCount(stage, output, tables[kept], rejected=n)
            )
    if filters.shows("qa"):
        items = _query(
            store, f"SELECT count(*) AS n FROM {relations.items} {_selected_items(filters, relations)}", filters
        )[0]["n"]
        rows.append(StageCount("qa", "QA items", items))
    if filters.shows("validate"):
        rows.append(_validate_count(store, filters, relations))
    if filters.shows("dataset"):
        checks = _query(
            store,
            "SELECT count(*) FILTER (ok) AS passed, count(*) FILTER (NOT ok) AS failed FROM "
            f"dataset_checks WHERE run_id = {_LATEST_CHECKS} AND ($template IS NULL OR "
            'subject = $template) AND ($reason IS NULL OR "check" = $reason)',
            filters,
        )[0]
        rows.append(StageCount("dataset", "checks passed", checks["passed"], failed=checks["failed"]))
    return rows


def _validate_count(store: Store, filters: AuditFilters, relations: Relations) -> StageCount:
    """Items by their worst validator status, counting only the failures that --reason keeps."""
    worst = _query(
        store,
        (
            "WITH w AS (SELECT i.item_id, max(CASE r.status WHEN 'reject' THEN 2 WHEN 'warn' THEN 1 ELSE 0 END) "
            "FILTER (r.status = 'ok' OR $reason IS NULL OR r.reason = $reason) AS worst, count(r.item_id) AS n "
            f"FROM {relations.items} i LEFT JOIN {relations.results} r USING (item_id, "
            "template_version, input_hash) "
            "GROUP BY ALL) SELECT count(*) FILTER (n > 0 AND worst = 0) AS kept, count(*) FILTER (worst = 1) AS "
            "warned, count(*) FILTER (worst = 2) AS rejected FROM w"
        ),
        filters,
    )[0]
    return StageCount(
        "validate",
        "items validated ok",
        worst["kept"] or 0,
        warned=worst["warned"] or 0,
        rejected=worst["rejected"] or 0,
    )


def template_summaries(store: Store, filters: AuditFilters, relations: Relations) -> list[TemplateSummary]:
    rows = _query(
        store,
        (
            "WITH worst AS (SELECT item_id, template_version, input_hash, "
            "max(CASE status WHEN 'reject' THEN 2 ELSE 1 END) AS worst FROM "
            f"{relations.results} WHERE status <> 'ok' AND ($reason IS NULL OR reason = $reason) GROUP BY ALL) "
            "SELECT i.template_id, count(*) AS items, count(i.polarity) AS yes_no, coalesce(any_value(t.lists), false) "
            "AS lists, CASE WHEN count(i.polarity) > 0 THEN avg(i.polarity::INTEGER) WHEN any_value(t.lists) THEN "
            "avg((len(i.findings) > 0)::INTEGER) END AS pos, "
            "any_value(b.target_share) AS target, count(*) FILTER (w.worst = 1) AS warned, "
            "count(*) FILTER (w.worst = 2) AS rejected "
            f"FROM {relations.items} i LEFT JOIN worst w USING (item_id, template_version, input_hash) "
            "LEFT JOIN current_qa_balance b ON b.template_id = i.template_id AND b.template_version = "
            "i.template_version "
            "LEFT JOIN current_qa_templates t ON t.template_id = i.template_id "
            "GROUP BY i.template_id ORDER BY (warned + rejected) / count(*) DESC, i.template_id"
        ),
        filters,
    )
    return [
        TemplateSummary(
            r["template_id"],
            r["items"],
            r["yes_no"],
            _round(r["pos"]),
            r["target"] if r["yes_no"] else None,
            r["warned"],
            r["rejected"],
            round((r["warned"] + r["rejected"]) / r["items"], 4),
            r["lists"],
        )
        for r in rows
    ]


def validator_summaries(store: Store, filters: AuditFilters, relations: Relations) -> list[ValidatorSummary]:
    rows = _query(
        store,
        (
            "WITH failing AS (SELECT *, status <> 'ok' AND ($reason IS NULL OR reason = $reason) AS failing "
            f"FROM {relations.results}), top AS (SELECT validator, reason FROM failing WHERE failing GROUP BY 1, 2 "
            "QUALIFY row_number() OVER (PARTITION BY validator ORDER BY count(*) DESC, reason) = 1) "
            "SELECT f.validator, string_agg(DISTINCT f.strictness, ',' ORDER BY f.strictness) AS strictness, "
            "count(*) AS items, count(*) FILTER (NOT failing) AS ok, count(*) FILTER (failing AND status = 'warn') AS "
            "warned, count(*) FILTER (failing AND status = 'reject') AS rejected, any_value(t.reason) AS top_reason "
            "FROM failing f LEFT JOIN top t USING (validator) GROUP BY f.validator "
            "ORDER BY (warned + rejected) / count(*) DESC, f.validator"
        ),
        filters,
    )
    return [
        ValidatorSummary(
            r["validator"],
            r["strictness"],
            r["items"],
            r["ok"],
            r["warned"],
            r["rejected"],
            round((r["warned"] + r["rejected"]) / r["items"], 4),
            r["top_reason"],
        )
        for r in rows
    ]


def grade_criteria(store: Store, filters: AuditFilters, relations: Relations) -> list[GradeCriterion]:
    selected = _selected_items(filters, relations)
    rows = _query(
        store,
        f"SELECT label, weakest, count(*) AS n FROM {relations.grades} {selected} GROUP BY ALL "
        "ORDER BY any_value(grade) DESC, n DESC, weakest",
        filters,
    )
    return [GradeCriterion(r["label"], r["weakest"], r["n"]) for r in rows]


def disagreements(store: Store, limit: int) -> Disagreements:
    both = store.query(
        "SELECT count(*) FROM (SELECT study_id FROM current_scene_graphs GROUP BY study_id "
        "HAVING count(DISTINCT backend) = 2)"
    )[0][0]
    if not both:
        return Disagreements(0, 0, [], [])
    store.con.execute("CREATE OR REPLACE TEMP TABLE _audit_agreement AS SELECT * FROM backend_agreement")
    try:
        studies = store.query("SELECT count(DISTINCT study_id) FROM _audit_agreement")[0][0]
        by_finding = store.query_dicts(
            "SELECT finding, disagreement, count(*) AS n FROM _audit_agreement "
            "GROUP BY ALL ORDER BY n DESC, finding, disagreement"
        )
        examples = store.query_dicts("SELECT * FROM _audit_agreement ORDER BY study_id, finding LIMIT ?", [limit])
    finally:
        store.con.execute("DROP TABLE IF EXISTS temp.main._audit_agreement")
    return Disagreements(both, studies, by_finding, examples)


def dataset_check_rows(store: Store, filters: AuditFilters) -> tuple[str | None, list[DatasetCheck]]:
    run = store.query(f"SELECT {_LATEST_CHECKS}")[0][0]
    rows = _query(
        store,
        'SELECT "check", subject, value, expected, ok, detail FROM dataset_checks WHERE run_id = '
        "$run AND ($template IS NULL OR subject = $template) AND ($reason IS NULL OR (NOT ok AND "
        '"check" = $reason)) ORDER BY ok, "check", subject',
        filters,
        run=run,
    )
    return run, [DatasetCheck(**row) for row in rows]


def failing_items(
    store: Store, filters: AuditFilters, relations: Relations, limit: int
) -> tuple[int, list[FailingItem]]:
    """(how many items fail in scope, the first `limit`): rejects first, then one item per
    (validator, reason) in turn, so that every reason shows an example before any shows two."""
    reason = "$reason IS NULL OR reason = $reason"
    total = _query(
        store,
        f"SELECT count(DISTINCT (item_id, template_version, input_hash)) AS n FROM "
        f"{relations.results} WHERE status <> 'ok' AND ({reason})",
        filters,
    )[0]["n"]
    if not total or limit <= 0:
        return total, []
    order = "status = 'reject' DESC, turn, validator, reason, item_id"
    sql = (
        f"CREATE OR REPLACE TEMP TABLE _audit_picked AS WITH f AS (SELECT * FROM {relations.results} "
        f"WHERE status <> 'ok' AND ({reason})), primary_failure AS (SELECT item_id, template_version, input_hash, "
        "validator, reason, status FROM f QUALIFY row_number() OVER (PARTITION BY item_id, template_version, "
        "input_hash ORDER BY status = 'reject' DESC, validator, reason) = 1), "
        "ranked AS (SELECT *, row_number() OVER (PARTITION BY validator, reason ORDER BY item_id) AS turn "
        f"FROM primary_failure) SELECT item_id, template_version, input_hash, row_number() OVER (ORDER BY {order}) "
        f"AS position FROM ranked ORDER BY {order} LIMIT {int(limit)}"
    )
    store.con.execute(sql, _bind(sql, filters))
    try:
        items, parts, failures = _read_picked(store, relations)
    finally:
        store.con.execute("DROP TABLE IF EXISTS temp.main._audit_picked")
    return total, [_failing_item(row, parts.get(row["item_id"], []), failures.get(row["item_id"], [])) for row in items]


def _read_picked(
    store: Store, relations: Relations
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, str]]], dict[str, list[Failure]]]:
    """The items in temp table _audit_picked (in its order), their answer parts and their failures, by item."""
    items = store.query_dicts(
        "SELECT p.position, q.item_id, q.study_id, q.image_id, concat_ws(', ', im.view_position, q.view_plane) "
        "AS view, q.template_id, q.question_type, q.answer_format, q.question, q.answer, q.options, "
        "q.correct_option, q.findings, q.regions, q.boxes, q.evidence_ids, g.label AS grade "
        "FROM _audit_picked p JOIN current_qa_items q USING (item_id, template_version, input_hash) "
        f"LEFT JOIN {relations.grades} g USING (item_id, template_version, input_hash) "
        "LEFT JOIN (SELECT image_id, any_value(view_position) AS view_position FROM images GROUP BY 1) im "
        "ON im.image_id = q.image_id ORDER BY p.position"
    )
    parts: dict[str, list[dict[str, str]]] = {}
    for item_id, kind, text in store.query(
        "SELECT a.item_id, a.kind, a.text FROM current_qa_answer_parts a SEMI JOIN _audit_picked p "
        "USING (item_id, template_version, input_hash) ORDER BY a.item_id, a.part_index"
    ):
        parts.setdefault(item_id, []).append({"kind": kind, "text": text})
    failures: dict[str, list[Failure]] = {}
    for item_id, *failure in store.query(
        f"SELECT item_id, validator, status, reason, detail, strictness FROM {relations.results} r SEMI JOIN "
        f"_audit_picked p USING (item_id, template_version, input_hash) WHERE status <> 'ok' "
        "ORDER BY item_id, status = 'reject' DESC, validator"
    ):
        failures.setdefault(item_id, []).append(Failure(*failure))
    return items, parts, failures


def _failing_item(row: dict[str, Any], parts: list[dict[str, str]], failures: list[Failure]) -> FailingItem:
    """One picked item; its status is its worst failure's."""
    return FailingItem(
        row["item_id"],
        row["study_id"],
        row["image_id"],
        row["view"] if row["image_id"] else None,
        row["template_id"],
        row["question_type"],
        row["answer_format"],
        row["question"],
        row["answer"],
        parts,
        row["options"],
        row["correct_option"],
        row["findings"],
        row["regions"],
        row["boxes"],
        row["evidence_ids"],
        row["grade"],
        max((f.status for f in failures), key=STATUS_RANK.__getitem__, default="ok"),
        failures,
    )


#: Example rows of the input stages' rejects and failures.
_REJECT_EXAMPLES = {
    "images": "SELECT source_path, reason, detail FROM current_image_rejects UNION ALL "
    "SELECT source_path, reason, detail FROM image_manifest_gaps",
    "reports": "SELECT source, study_id, reason, detail FROM report_rejects",
    "extract": "SELECT study_id, backend, reason, error AS detail, attempts FROM current_extraction_failures",
    "boxes": "SELECT source_file, source_line, reason, detail FROM current_box_rejects",
}


def retired_by(store: Store, run_id: str, limit: int, changes: DatasetDiff | None) -> tuple[int, list[Retired]]:
    """(how many studies and images run ``run_id`` retired, the first ``limit``: studies first), each with the
    items it had, as the change log against the run before (``changes``) removed them (outside any `as_of`
    block: it opens its own)."""
    with as_of(store, run_id):
        total = store.query("SELECT count(*) FROM current_retirements WHERE run_id = ?", [run_id])[0][0]
        rows = store.query(
            "SELECT r.kind, r.key, coalesce(i.source_path, r.key), r.reason, r.detail FROM current_retirements r "
            "LEFT JOIN (SELECT image_id, any_value(source_path) AS source_path FROM images GROUP BY 1) i "
            "ON r.kind = 'image' AND i.image_id = r.key WHERE r.run_id = ? ORDER BY r.kind DESC, 3 LIMIT ?",
            [run_id, max(limit, 0)],
        )
    removed = changes.retired if changes is not None else {}
    return total, [Retired(*row, removed.get(f"{row[0]}:{row[1]}", 0)) for row in rows]


def reject_examples(store: Store, filters: AuditFilters, limit: int) -> dict[str, list[dict[str, Any]]]:
    return {
        stage: _query(
            store,
            f"SELECT * FROM ({sql}) WHERE $reason IS NULL OR reason = $reason ORDER BY reason, 1, 2 LIMIT $limit",
            filters,
            limit=limit,
        )
        for stage, sql in _REJECT_EXAMPLES.items()
        if filters.shows(stage)
    }


def summarise(
    store: Store, filters: AuditFilters = NO_FILTERS, run_id: str | None = None, limit: int = 10
) -> AuditSummary:
    """The audit of the dataset as of run `run_id` (default: the current dataset)."""
    store.con.execute("SET enable_progress_bar = false")  # DuckDB would draw one over the tables and JSON
    notes = check_filters(store, filters)
    latest = run_info(store, None)
    with as_of(store, run_id), audit_tables(store, filters) as relations:
        qa = filters.shows("qa") or filters.shows("validate")
        checks_run, checks = dataset_check_rows(store, filters) if filters.shows("dataset") else (None, [])
        failing, examples = failing_items(store, filters, relations, limit) if qa else (0, [])
        return AuditSummary(
            as_of_run=run_info(store, run_id),
            latest_run=latest.run_id if latest else None,
            filters=asdict(filters),
            stages=stage_counts(store, filters, relations, table_counts(store)),
            reasons=reason_counts(store, filters, relations),
            templates=template_summaries(store, filters, relations) if qa else [],
            validators=validator_summaries(store, filters, relations) if filters.shows("validate") else [],
            grades=grade_counts(store, filters, relations) if qa else [],
            grade_criteria=grade_criteria(store, filters, relations) if qa else [],
            disagreements=disagreements(store, limit) if filters.shows("extract") and filters.reason is None else None,
            dataset_checks_run=checks_run,
            dataset_checks=checks,
            failing_items=failing,
            examples=examples,
            rejects=reject_examples(store, filters, limit),
            notes=notes,
            review=review_accuracy(store, relations.items, relations.results) if filters.shows("validate") else None,
            prior=[f for f in stored_prior(store) if filters.template in (None, f.template_id)] if qa else [],
            too_few=too_few_answers(store, filters) if qa else [],
            choices_dropped=choices_dropped(store, filters) if qa else [],
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- comparison ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CountChange:
    """One count that differs between the baseline run and the audited one."""

    key: str  # e.g. 'images.rejected', 'validate/image: no_image', 'A++'
    before: int
    after: int
    delta: int


@dataclass(frozen=True)
class TemplateChange:
    template_id: str
    items_before: int
    items_after: int
    failure_rate_before: float | None
    failure_rate_after: float | None
    positive_share_before: float | None
    positive_share_after: float | None


@dataclass(frozen=True)
class ValidatorChange:
    validator: str
    failing_before: int
    failing_after: int
    failure_rate_before: float | None
    failure_rate_after: float | None


@dataclass(frozen=True)
class CheckChange:
    check: str
    subject: str
    ok_before: bool | None  # None: the check did not exist in that run
    ok_after: bool | None
    detail_before: str
    detail_after: str


@dataclass(frozen=True)
class Comparison:
    baseline: RunInfo | None
    stages: list[CountChange]
    reasons: list[CountChange]  # largest change first: which reason grew, which shrank
    templates: list[TemplateChange]
    validators: list[ValidatorChange]
    grades: list[CountChange]
    dataset_checks: list[CheckChange]


def reason_key(reason: ReasonCount) -> str:
    return (
        f"{reason.stage}/{reason.validator}: {reason.reason}"
        if reason.validator
        else f"{reason.stage}: {reason.reason}"
    )


def _count_changes(before: dict[str, int], after: dict[str, int]) -> list[CountChange]:
    changes = [
        CountChange(key, before.get(key, 0), after.get(key, 0), after.get(key, 0) - before.get(key, 0))
        for key in list(before) + [k for k in after if k not in before]
    ]
    return sorted((c for c in changes if c.delta), key=lambda c: (-abs(c.delta), c.key))


def compare(before: AuditSummary, after: AuditSummary) -> Comparison:
    """What changed from the baseline (`before`) to the audited dataset (`after`); unchanged rows left out."""
    fields = ("kept", "warned", "rejected", "failed")

    def stage_values(summary: AuditSummary) -> dict[str, int]:
        return {f"{s.stage}.{name}": getattr(s, name) for s in summary.stages for name in fields}

    stages = sorted(
        _count_changes(stage_values(before), stage_values(after)),
        key=lambda c: (STAGES.index(c.key.split(".")[0]), fields.index(c.key.split(".")[1])),
    )
    reasons = _count_changes({reason_key(r): r.n for r in before.reasons}, {reason_key(r): r.n for r in after.reasons})
    grades = _count_changes({g.label: g.n for g in before.grades}, {g.label: g.n for g in after.grades})
    old_c = {(c.check, c.subject): c for c in before.dataset_checks}
    new_c = {(c.check, c.subject): c for c in after.dataset_checks}
    checks = [
        CheckChange(
            check,
            subject,
            old_c[key].ok if key in old_c else None,
            new_c[key].ok if key in new_c else None,
            old_c[key].detail if key in old_c else "",
            new_c[key].detail if key in new_c else "",
        )
        for key in sorted(old_c.keys() | new_c.keys())
        for check, subject in [key]
        if (old_c[key].ok if key in old_c else None) != (new_c[key].ok if key in new_c else None)
    ]
    return Comparison(
        before.as_of_run,
        stages,
        reasons,
        _template_changes(before, after),
        _validator_changes(before, after),
        grades,
        checks,
    )


def _template_changes(before: AuditSummary, after: AuditSummary) -> list[TemplateChange]:
    """Templates whose item count, failure rate or positive share moved; largest failure-rate move first."""
    old = {t.template_id: t for t in before.templates}
    new = {t.template_id: t for t in after.templates}
    templates = []
    for template_id in sorted(old.keys() | new.keys()):
        b, a = old.get(template_id), new.get(template_id)
        row = TemplateChange(
            template_id,
            b.items if b else 0,
            a.items if a else 0,
            b.failure_rate if b else None,
            a.failure_rate if a else None,
            b.positive_share if b else None,
            a.positive_share if a else None,
        )
        if (row.items_before, row.failure_rate_before, row.positive_share_before) != (
            row.items_after,
            row.failure_rate_after,
            row.positive_share_after,
        ):
            templates.append(row)
    return sorted(
        templates,
        key=lambda t: (
            -abs((t.failure_rate_after or 0) - (t.failure_rate_before or 0)),
            -abs(t.items_after - t.items_before),
            t.template_id,
        ),
    )


def _validator_changes(before: AuditSummary, after: AuditSummary) -> list[ValidatorChange]:
    """Validators whose failing items or failure rate moved, by name."""
    old_v = {v.validator: v for v in before.validators}
    new_v = {v.validator: v for v in after.validators}
    validators = []
    for name in sorted(old_v.keys() | new_v.keys()):
        b, a = old_v.get(name), new_v.get(name)
        row = ValidatorChange(
            name,
            b.warned + b.rejected if b else 0,
            a.warned + a.rejected if a else 0,
            b.failure_rate if b else None,
            a.failure_rate if a else None,
        )
        if (row.failing_before, row.failure_rate_before) != (row.failing_after, row.failure_rate_after):
            validators.append(row)
    return validators


#: Changed items the audit's change log shows (`cxrvqa diff` shows more).
CHANGE_EXAMPLES = 5


def audit(
    store: Store,
    filters: AuditFilters = NO_FILTERS,
    run_id: str | None = None,
    compare_run: str | None = None,
    limit: int = 10,
) -> AuditSummary:
    """The audit (as of `run_id`, default current), compared with the dataset as of `compare_run` if given."""
    from cxrvqa.audit.diff import dataset_diff  # diff reads the dataset through as_of (this module)

    summary = summarise(store, filters, run_id, limit)
    if compare_run is not None:
        summary.compare = compare(summarise(store, filters, compare_run, limit=0), summary)
    run = summary.as_of_run
    summary.changes_from = None if run is None else previous_run(store, run.run_id)
    inputs = filters.shows("reports") or filters.shows("images")
    if summary.changes_from is not None and (filters.shows("qa") or inputs):
        summary.changes = dataset_diff(store, summary.changes_from, run.run_id, limit=min(limit, CHANGE_EXAMPLES))
    if run is not None and inputs:
        summary.retired_total, summary.retired = retired_by(store, run.run_id, limit, summary.changes)
    return summary
