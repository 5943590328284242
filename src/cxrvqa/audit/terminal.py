"""The audit as rich tables. Every value is a `Text` (never markup): report and header text cannot
inject rich markup."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cxrvqa.audit.diff import CAUSES, KINDS, TOP_CHANGED_TEMPLATES, DatasetDiff
from cxrvqa.audit.summary import (
    CHOICES_DROPPED_COLUMNS,
    COMPARE_TEMPLATE_COLUMNS,
    COMPARE_VALIDATOR_COLUMNS,
    DISAGREEMENT_COLUMNS,
    DISAGREEMENT_EXAMPLE_COLUMNS,
    PRIOR_TEMPLATE_COLUMNS,
    REASON_COLUMNS,
    RETIRED_COLUMNS,
    REVIEW_COLUMNS,
    REVIEW_TEMPLATE_COLUMNS,
    STAGE_COLUMNS,
    TEMPLATE_COLUMNS,
    TOO_FEW_COLUMNS,
    VALIDATOR_COLUMNS,
    AuditSummary,
    Comparison,
)
from cxrvqa.core.prior import FORMAT_COLUMNS, format_rows, strongest
from cxrvqa.review.accuracy import ReviewAccuracy
from cxrvqa.core.stats import Proportion

#: The longest example detail shown in a table cell (the JSON keeps all of it).
DETAIL_CHARS = 160


def _text(value: Any) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, float):
        return Text(f"{value:.3f}")
    return Text(str(value))


def _pct(value: float | None) -> Text:
    return Text("" if value is None else f"{100 * value:.1f}%")


def _short(text: str) -> Text:
    return Text(text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…")


#: Columns of free text: they wrap; the others (codes, counts) keep to one line.
WRAPPING = (
    "example detail",
    "detail",
    "detail now",
    "set by (criterion: items)",
    "source_path",
    "source",
    "source_file",
    "verdicts",
    "on faulty items",
    "on correct items",
    "largest dropped (items per answer)",
)


def _table(title: str, columns: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=column not in WRAPPING)
    return table


def render(summary: AuditSummary, out: Console, scope: str) -> None:
    """Print every section of the summary; `scope` names the build (its folder)."""
    _render_head(summary, out, scope)
    _render_counts(summary, out)
    if summary.review is not None:
        _render_review(summary.review, out)
    if summary.disagreements is not None:
        _render_disagreements(summary, out)
    if summary.prior:
        _render_prior(summary, out)
    if summary.dataset_checks_run is not None:
        _render_dataset_checks(summary, out)
    if summary.compare is not None:
        _render_comparison(summary.compare, out)
    if summary.changes is not None:
        render_changes(summary.changes, out, top=TOP_CHANGED_TEMPLATES)
    elif summary.changes_from is None and summary.as_of_run is not None:
        out.print(Text("changes: none to show, this is the build's first run"))
    if summary.retired:
        table = _table(
            f"Retired by run {summary.as_of_run.run_id}: {summary.retired_total} (build --prune; their "
            "items left the current dataset, their rows stay)",
            RETIRED_COLUMNS,
            ("items removed",),
        )
        for r in summary.retired:
            table.add_row(*map(_text, (r.kind, r.name, r.reason, r.items, r.detail)))
        out.print(table)
    _render_failing_items(summary, out)
    for stage, rows in summary.rejects.items():
        if rows:
            table = _table(f"{stage}: rejects and failures (first {len(rows)})", tuple(rows[0]))
            for row in rows:
                table.add_row(*(_short(str(v)) for v in row.values()))
            out.print(table)


def _render_head(summary: AuditSummary, out: Console, scope: str) -> None:
    """Which build, as of which run, with which filters, and the summary's notes."""
    run = summary.as_of_run
    head = Text("Audit of ", style="bold") + Text(scope)
    if run is not None:
        head += Text(f" as of run {run.run_id} ({run.status})")
        if run.run_id != summary.latest_run:
            head += Text(f"; the latest run is {summary.latest_run}")
    out.print(head)
    filters = {k: v for k, v in summary.filters.items() if v is not None}
    if filters:
        out.print(Text("filters: " + ", ".join(f"{k}={v}" for k, v in filters.items())))
    for note in summary.notes:
        out.print(Text("note: " + note, style="yellow"))


def _render_counts(summary: AuditSummary, out: Console) -> None:
    """Counts per stage, reasons, validators, templates and grades."""
    stages = _table("Counts per stage", STAGE_COLUMNS, STAGE_COLUMNS[2:])
    for s in summary.stages:
        stages.add_row(*map(_text, (s.stage, s.output, s.kept, s.warned, s.rejected, s.failed)))
    out.print(stages)

    if summary.reasons:
        reasons = _table(
            "Reasons (share: of the stage's failures; rate: of its inputs)", REASON_COLUMNS, ("count", "share", "rate")
        )
        for r in summary.reasons:
            reasons.add_row(
                *map(_text, (r.stage, r.validator, r.reason, r.status, r.n)),
                _pct(r.share),
                _pct(r.rate),
                _short(r.example),
            )
        out.print(reasons)
    else:
        out.print(Text("no rejects or failures in scope"))

    if summary.validators:
        validators = _table("Validators", VALIDATOR_COLUMNS, VALIDATOR_COLUMNS[2:-1])
        for v in summary.validators:
            validators.add_row(
                *map(_text, (v.validator, v.strictness, v.items, v.ok, v.warned, v.rejected)),
                _pct(v.failure_rate),
                _text(v.top_reason),
            )
        out.print(validators)
    if summary.templates:
        templates = _table("Templates", TEMPLATE_COLUMNS, TEMPLATE_COLUMNS[1:])
        for t in summary.templates:
            templates.add_row(
                *map(_text, (t.template_id, t.items, t.yes_no)),
                _pct(t.positive_share),
                _pct(t.target_share),
                _text(t.warned),
                _text(t.rejected),
                _pct(t.failure_rate),
            )
        out.print(templates)
    if summary.grades:
        grades = _table("Grades", ("grade", "items", "share", "set by (criterion: items)"), ("items", "share"))
        for g in summary.grades:
            criteria = ", ".join(
                f"{c.weakest or 'nothing capped it'}: {c.n}" for c in summary.grade_criteria if c.label == g.label
            )
            grades.add_row(_text(g.label), _text(g.n), _pct(g.share), Text(criteria))
        out.print(grades)


def _render_disagreements(summary: AuditSummary, out: Console) -> None:
    """Rules vs LLM: the findings the two backends read differently, with examples."""
    agreement = summary.disagreements
    if not agreement.studies_with_both:
        out.print(Text("rules vs llm: no study has graphs of both backends"))
        return
    table = _table(
        f"Rules vs LLM: {agreement.studies_disagreeing} of {agreement.studies_with_both} studies "
        "with both backends disagree",
        DISAGREEMENT_COLUMNS,
        ("studies",),
    )
    for row in agreement.by_finding:
        table.add_row(*map(_text, (row["finding"], row["disagreement"], row["n"])))
    out.print(table)
    examples = _table("Disagreement examples", DISAGREEMENT_EXAMPLE_COLUMNS)
    for row in agreement.examples:
        examples.add_row(
            _text(row["study_id"]),
            _text(row["finding"]),
            _text(" ".join(filter(None, (row["rules_presence"], row["rules_laterality"])))),
            _text(" ".join(filter(None, (row["llm_presence"], row["llm_laterality"])))),
        )
    out.print(examples)


def _render_dataset_checks(summary: AuditSummary, out: Console) -> None:
    failed = [c for c in summary.dataset_checks if not c.ok]
    passed = len(summary.dataset_checks) - len(failed)
    if not failed:
        out.print(Text(f"dataset checks of run {summary.dataset_checks_run}: all {passed} passed"))
        return
    checks = _table(
        f"Dataset checks of run {summary.dataset_checks_run}: {len(failed)} failed, {passed} passed",
        ("check", "subject", "value", "expected", "detail"),
        ("value",),
    )
    for c in failed:
        checks.add_row(*map(_text, (c.check, c.subject, c.value, c.expected, c.detail)))
    out.print(checks)


def _render_failing_items(summary: AuditSummary, out: Console) -> None:
    """The failing items shown (--limit): question, answer, options and the failures of each."""
    if not summary.examples:
        if summary.failing_items:
            out.print(Text(f"{summary.failing_items} failing items (none shown: --limit 0)"))
        return
    out.print(Text(f"Failing items: {len(summary.examples)} of {summary.failing_items} shown", style="bold"))
    for item in summary.examples:
        out.print(
            Text(
                f"{item.item_id}  {item.template_id}  study {item.study_id}  {item.view or 'no image'}  "
                f"grade {item.grade or '-'}",
                style="bold",
            )
        )
        out.print(Text("  Q: " + item.question))
        answer = item.answer + (f"  [{item.correct_option}]" if item.correct_option else "")
        out.print(Text("  A: " + answer))
        for part in item.answer_parts[1:]:
            out.print(Text(f"     {part['kind']}: {part['text']}"))
        if item.options:
            out.print(
                Text(
                    "  options: "
                    + "  ".join(f"{letter}) {option}" for letter, option in zip("ABCD", item.options, strict=False))
                )
            )
        for f in item.failures:
            out.print(
                Text(f"  {f.status} {f.validator}: {f.reason}: ", style="red" if f.status == "reject" else "yellow")
                + Text(f.detail)
            )


def render_changes(diff: DatasetDiff, out: Console, top: int | None = None) -> None:
    """The change log between two runs (`cxrvqa diff`, and the audit's section against the previous run): items
    by cause and by template (the ``top`` most changed, default all), then the examples."""
    total = sum(diff.counts.values())
    out.print(
        Text(
            f"Changes {diff.run_a} -> {diff.run_b}: {total} item(s) added, removed or changed; studies: "
            + ", ".join(f"{n} {kind}" for kind, n in diff.studies.items()),
            style="bold",
        )
    )
    templates = sorted(diff.templates.items(), key=lambda t: (-sum(t[1].values()), t[0]))
    for title, rows in (
        ("cause", [(c, {k: diff.counts.get((k, c), 0) for k in KINDS}) for c in CAUSES]),
        ("template", sorted(templates[:top])),
    ):
        shown = (
            ""
            if title == "cause" or top is None or len(templates) <= top
            else f" ({top} most changed of {len(templates)})"
        )
        table = _table(f"Items by {title}{shown}", (title, *KINDS), KINDS)
        for name, counts in rows:
            table.add_row(_text(name), *(_text(counts.get(kind, 0)) for kind in KINDS))
        out.print(table)
    for example in diff.examples:
        out.print(
            Text(
                f"{example['kind']} ({example['cause']}) {example['item_id']} {example['study_id']} "
                f"{example['template_id']}: {example['before']} -> {example['after']}"
            )
        )


def _render_prior(summary: AuditSummary, out: Console) -> None:
    """The question-only baseline per answer format, the templates with the strongest prior first, and the
    questions the per-question balance kept nothing of."""
    formats = _table(
        "Question-only baseline: the train split's majority answer per question, held-out items",
        FORMAT_COLUMNS,
        FORMAT_COLUMNS[1:],
    )
    for row in format_rows(summary.prior):
        formats.add_row(*map(_text, row))
    out.print(formats)
    templates = _table(
        "Templates, strongest prior first (accuracy of the question alone, best key)",
        PRIOR_TEMPLATE_COLUMNS,
        ("held-out", "accuracy", "chance"),
    )
    for f in strongest(summary.prior, 15):
        templates.add_row(
            *map(
                _text,
                (
                    f.template_id,
                    f.answer_format,
                    f.key,
                    f.n_items,
                    f"{f.accuracy:.3f}",
                    "" if f.chance is None else f"{f.chance:.2f}",
                ),
            ),
            _short("; ".join(f"{a} {acc:.2f} of {n}" for a, n, acc in f.worst[:3])),
        )
    out.print(templates)
    if summary.too_few:
        few = _table(
            "Per-question balance: questions with too few of one answer (nothing kept, no padding)",
            TOO_FEW_COLUMNS,
            TOO_FEW_COLUMNS[1:-1],
        )
        for t in summary.too_few:
            few.add_row(
                *map(_text, (t.template_id, t.questions, t.without_yes, t.without_no, t.items_left_out)),
                _short(t.examples),
            )
        out.print(few)
    if summary.choices_dropped:
        dropped = _table(
            "Per-question balance, multiple choice: sets of options one of which is never the true answer "
            "(the set is dropped: its options would give the answer away)",
            CHOICES_DROPPED_COLUMNS,
            CHOICES_DROPPED_COLUMNS[1:-1],
        )
        for c in summary.choices_dropped:
            dropped.add_row(
                *map(_text, (c.template_id, c.sets, c.dropped, c.candidates, c.items_left_out)), _short(c.examples)
            )
        out.print(dropped)


def _render_review(review: ReviewAccuracy, out: Console) -> None:
    """Accuracy from the reviews, per template, and how the checks did on the reviewed items."""
    verdicts = ", ".join(f"{verdict} {n}" for verdict, n in review.verdicts.items())
    table = _table(
        f"Human review: {review.reviewed_items} items reviewed by {len(review.reviewers)} reviewer(s) ({verdicts})",
        REVIEW_COLUMNS,
        REVIEW_COLUMNS[1:],
    )
    for name, value in (
        ("accuracy (correct)", review.accuracy),
        ("grammar errors", review.grammar_errors),
        ("recall (faulty, demoted)", review.recall),
        ("false demotion (correct, demoted)", review.false_demotion),
    ):
        table.add_row(Text(name), *_proportion(value))
    out.print(table)
    templates = _table("Human review: accuracy per template", REVIEW_TEMPLATE_COLUMNS, REVIEW_TEMPLATE_COLUMNS[1:-1])
    for row in review.per_template:
        share, interval, _ = _proportion(row.accuracy)
        templates.add_row(
            _text(row.template_id),
            _text(row.accuracy.n),
            _text(row.accuracy.k),
            share,
            interval,
            Text(", ".join(f"{v} {n}" for v, n in row.verdicts.items())),
        )
    out.print(templates)
    if review.per_check:
        checks = _table(
            "Human review: where each validator failed (faulty: judged wrong, unsupported or a bad question)",
            ("validator", "on faulty items", "on correct items"),
            ("on faulty items", "on correct items"),
        )
        for row in review.per_check:
            checks.add_row(_text(row.validator), Text(row.faulty_failed.text()), Text(row.correct_failed.text()))
        out.print(checks)
    if review.stale_verdicts:
        out.print(
            Text(
                f"{review.stale_verdicts} verdict(s) no longer apply: their items changed since they were "
                "reviewed (review them again)",
                style="yellow",
            )
        )


def _proportion(value: Proportion) -> tuple[Text, Text, Text]:
    if not value.n:
        return Text("n/a"), Text(""), Text("0")
    return (_pct(value.share), Text(f"{100 * value.low:.1f}%-{100 * value.high:.1f}%"), Text(f"{value.k}/{value.n}"))


def _render_comparison(comparison: Comparison, out: Console) -> None:
    base = comparison.baseline.run_id if comparison.baseline else "?"
    if not any(
        (
            comparison.stages,
            comparison.reasons,
            comparison.templates,
            comparison.validators,
            comparison.grades,
            comparison.dataset_checks,
        )
    ):
        out.print(Text(f"Compared with run {base}: nothing changed", style="bold"))
        return
    out.print(Text(f"Compared with run {base}", style="bold"))
    for title, rows in (
        ("stage counts", comparison.stages),
        ("reasons", comparison.reasons),
        ("grades", comparison.grades),
    ):
        if rows:
            table = _table(
                f"Changed {title}", ("what", f"run {base}", "now", "change"), (f"run {base}", "now", "change")
            )
            for c in rows:
                table.add_row(_text(c.key), _text(c.before), _text(c.after), Text(f"{c.delta:+d}"))
            out.print(table)
    _render_changed_rows(comparison, out)


def _render_changed_rows(comparison: Comparison, out: Console) -> None:
    """The templates, validators and dataset checks that changed, a table each."""
    if comparison.templates:
        table = _table("Changed templates", COMPARE_TEMPLATE_COLUMNS, COMPARE_TEMPLATE_COLUMNS[1:])
        for t in comparison.templates:
            table.add_row(
                _text(t.template_id),
                _text(t.items_before),
                _text(t.items_after),
                _pct(t.failure_rate_before),
                _pct(t.failure_rate_after),
                _pct(t.positive_share_before),
                _pct(t.positive_share_after),
            )
        out.print(table)
    if comparison.validators:
        table = _table("Changed validators", COMPARE_VALIDATOR_COLUMNS, COMPARE_VALIDATOR_COLUMNS[1:])
        for v in comparison.validators:
            table.add_row(
                _text(v.validator),
                _text(v.failing_before),
                _text(v.failing_after),
                _pct(v.failure_rate_before),
                _pct(v.failure_rate_after),
            )
        out.print(table)
    if comparison.dataset_checks:
        table = _table("Changed dataset checks", ("check", "subject", "before", "now", "detail now"))
        for c in comparison.dataset_checks:
            table.add_row(
                _text(c.check),
                _text(c.subject),
                _text(_verdict(c.ok_before)),
                _text(_verdict(c.ok_after)),
                _text(c.detail_after or c.detail_before),
            )
        out.print(table)


def _verdict(ok: bool | None) -> str:
    return "absent" if ok is None else ("ok" if ok else "failed")
