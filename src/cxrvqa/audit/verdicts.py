"""`cxrvqa audit --verdicts FILE`: what `cxrvqa validate-file` found in a file of items, in the terminal or as
an HTML page: rejects and warnings apart, per reason and per template, and the failing lines with their items.

The verdicts file is self-contained (each line repeats its item's id, template, question and answer), so this
needs no build.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrvqa.core.text_input import encoding_problem, read_lines
from cxrvqa.errors import InputError

STATUSES = ("reject", "warn")


@dataclass
class VerdictsSummary:
    source: str
    lines: int = 0
    ok: int = 0
    not_items: int = 0  # lines that were no JSON object (a `parse` verdict)
    reasons: Counter = field(default_factory=Counter)  # (status, validator, reason) -> lines
    templates: dict[str, Counter] = field(default_factory=dict)  # template -> {lines, reject, warn}
    grades: Counter = field(default_factory=Counter)
    failing: list[dict[str, Any]] = field(default_factory=list)  # the first `limit` lines that are not ok


def read_verdicts(path: Path, limit: int = 10) -> VerdictsSummary:
    """The summary of a `validate-file` output; a line that is not one of its verdict lines is an InputError
    naming the line (a summary of half a file would mislead)."""
    if not path.is_file():
        raise InputError(str(path), "a verdicts file written by `cxrvqa validate-file`", "no such file")
    summary = VerdictsSummary(str(path))
    for line in read_lines(path):
        if not line.text.strip():
            continue
        problem = encoding_problem([line])
        try:
            row = None if problem else json.loads(line.text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line.number}", "a verdict line (JSON)", f"{exc.msg}") from exc
        if problem or not isinstance(row, dict) or not isinstance(row.get("verdicts"), list) or "ok" not in row:
            found = str(problem) if problem else f"{str(row)[:80]}"
            raise InputError(
                f"{path}:{line.number}", 'a verdict line {"line", "ok", "grade", "verdicts": [...]}', found
            )
        _add(summary, row, limit)
    return summary


def _add(summary: VerdictsSummary, row: dict[str, Any], limit: int) -> None:
    summary.lines += 1
    summary.ok += bool(row["ok"])
    summary.grades[row.get("grade") or "?"] += 1
    failures = [v for v in row["verdicts"] if not v.get("ok")]
    if any(v.get("validator") == "parse" for v in failures):
        summary.not_items += 1
    template = summary.templates.setdefault(str(row.get("template_id") or "(no template)"), Counter())
    template["lines"] += 1
    statuses = {v.get("strictness") or "reject" for v in failures}
    for status in STATUSES:
        template[status] += status in statuses
    for verdict in failures:
        summary.reasons[(verdict.get("strictness") or "reject", verdict.get("validator"), verdict.get("reason"))] += 1
    if failures and len(summary.failing) < limit:
        summary.failing.append(row)


def reason_rows(summary: VerdictsSummary) -> list[tuple[str, str, str, int]]:
    """(status, validator, reason, lines): rejects first, then warnings, most frequent first."""
    return sorted(
        ((s, str(v), str(r), n) for (s, v, r), n in summary.reasons.items() if s in STATUSES),
        key=lambda row: (STATUSES.index(row[0]), -row[3], row[1], row[2]),
    )


def template_rows(summary: VerdictsSummary) -> list[tuple[str, int, int, int]]:
    """(template, lines, rejected, warned), most rejected first."""
    return sorted(
        ((t, c["lines"], c["reject"], c["warn"]) for t, c in summary.templates.items()),
        key=lambda row: (-row[2], -row[3], row[0]),
    )


def render_terminal(summary: VerdictsSummary, console: Console) -> None:
    console.print(
        f"[bold]{escape(summary.source)}[/]: {summary.lines} line(s), {summary.ok} ok, "
        f"{summary.lines - summary.ok} not ok ({summary.not_items} not an item)"
    )
    reasons = Table(title="Reasons (rejects first)")
    for column in ("status", "validator", "reason", "lines"):
        reasons.add_column(column, justify="right" if column == "lines" else "left")
    for status, validator, reason, n in reason_rows(summary):
        reasons.add_row(status, escape(validator), escape(reason), str(n))
    console.print(reasons)
    templates = Table(title="Templates")
    for column in ("template", "lines", "rejected", "warned"):
        templates.add_column(column, justify="left" if column == "template" else "right")
    for template, lines, rejected, warned in template_rows(summary):
        templates.add_row(escape(template), str(lines), str(rejected), str(warned))
    console.print(templates)
    for row in summary.failing:
        console.print(
            f"line {row.get('line')} [{escape(str(row.get('grade')))}] {escape(str(row.get('item_id')))} "
            f"({escape(str(row.get('template_id')))}): {escape(str(row.get('question')))} -> "
            f"{escape(str(row.get('answer')))}",
            soft_wrap=True,
        )
        for verdict in row["verdicts"]:
            if not verdict.get("ok"):
                console.print(
                    f"    {verdict.get('strictness') or 'reject'} {escape(str(verdict.get('validator')))}:"
                    f" {escape(str(verdict.get('reason')))} {escape(str(verdict.get('detail') or ''))}",
                    soft_wrap=True,
                )


def render_html(summary: VerdictsSummary) -> str:
    """A self-contained page: the counts, reject and warning charts, the tables and the failing lines."""
    from cxrvqa.audit.html import asset, bar_chart, templates
    from cxrvqa.core import pages
    from cxrvqa.core.pages import document

    reasons = reason_rows(summary)
    charts = Markup("").join(
        bar_chart(
            f"chart-{status}",
            f"{'Rejects' if status == 'reject' else 'Warnings'} by reason",
            [(f"{v}: {r}", n, str(n)) for s, v, r, n in reasons if s == status],
        )
        for status in STATUSES
    )
    body = (
        templates()
        .get_template("verdicts.html.j2")
        .render(summary=summary, charts=charts, reasons=reasons, templates=template_rows(summary))
    )
    return document(
        f"cxrvqa verdicts: {summary.source}",
        pages.asset("view.css") + asset("audit.css"),
        Markup(body),
        "verdicts-data",
        {"lines": summary.lines, "ok": summary.ok},
        "",
    )
