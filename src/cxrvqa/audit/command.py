"""`cxrvqa audit`: why items failed and what changed since another run (registered in cxrvqa.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cxrvqa.console import fail
from cxrvqa.errors import CxrvqaError
from cxrvqa.store import Store

#: Failing items shown in the terminal and the JSON by default (the HTML page: html.DEFAULT_ITEMS).
DEFAULT_EXAMPLES = 10


_AuditCompare = Annotated[
    Optional[str],
    typer.Option(
        "--compare",
        help=("Show what changed since this run: reasons that grew or shrank, templates whose counts or rates moved."),
    ),
]
_AuditStage = Annotated[
    Optional[str],
    typer.Option("--stage", help=("Only this stage: images | reports | extract | boxes | qa | validate | dataset.")),
]
_AuditLimit = Annotated[
    Optional[int],
    typer.Option(
        "--limit",
        min=0,
        help=(f"Failing items to show (default {DEFAULT_EXAMPLES}; with --html, embedded in the page: 200)."),
    ),
]
_AuditHtml = Annotated[
    Optional[Path],
    typer.Option(
        "--html",
        help=("Write a self-contained HTML audit page (charts, failing items with images and boxes) to this file."),
    ),
]
_AuditVerdicts = Annotated[
    Optional[Path],
    typer.Option(
        "--verdicts",
        help=(
            "Summarise a `cxrvqa validate-file` verdicts file instead of a build (no --out needed): rejects and "
            "warnings apart, per reason and template, the failing lines; with --html as a page."
        ),
    ),
]


def audit_command(
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder of a build.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Audit the dataset as it was after this run.")] = None,
    compare: _AuditCompare = None,
    stage: _AuditStage = None,
    validator: Annotated[Optional[str], typer.Option("--validator", help="Only this validator's failures.")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Only this reason code.")] = None,
    template: Annotated[Optional[str], typer.Option("--template", help="Only this template's items.")] = None,
    limit: _AuditLimit = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (one JSON document).")] = False,
    html: _AuditHtml = None,
    verdicts: _AuditVerdicts = None,
) -> None:
    """Counts, reasons, failure rates, grades, rules-vs-LLM disagreements and failing items of a build."""
    from cxrvqa.audit import html as page
    from cxrvqa.audit.summary import AuditFilters, as_of, audit
    from cxrvqa.audit.terminal import render

    if verdicts is not None:
        _audit_verdicts(verdicts, html, limit)
        return
    if out is None:
        fail(CxrvqaError("expected --out BUILD_FOLDER (or --verdicts FILE), found neither"))

    filters = AuditFilters(stage=stage, validator=validator, reason=reason, template=template)
    n_items = limit if limit is not None else (page.DEFAULT_ITEMS if html else DEFAULT_EXAMPLES)
    try:
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            summary = audit(store, filters, run_id=run, compare_run=compare, limit=n_items)
            if html is not None:
                with as_of(store, run):
                    extras = page.page_extras(store, summary, out)
    except CxrvqaError as exc:
        fail(exc)
        return
    if html is not None:
        size = page.write_page(html, page.render_page(summary, extras, str(out)))
        left_out = summary.failing_items - len(summary.examples)
        Console(stderr=True).print(
            f"wrote {escape(str(html))} ({size / 1024:.0f} KiB): {len(summary.examples)} failing items embedded"
            + (f", {left_out} left out (--limit)" if left_out else ""),
            soft_wrap=True,
        )
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    elif html is None:
        render(summary, Console(), str(out))


def _audit_verdicts(path: Path, html: Path | None, limit: int | None) -> None:
    from cxrvqa.audit import html as page
    from cxrvqa.audit.verdicts import read_verdicts, render_html, render_terminal

    try:
        shown = limit if limit is not None else (page.DEFAULT_ITEMS if html else DEFAULT_EXAMPLES)
        summary = read_verdicts(path, shown)
    except CxrvqaError as exc:
        fail(exc)
        return
    if html is not None:
        size = page.write_page(html, render_html(summary))
        Console(stderr=True).print(f"wrote {escape(str(html))} ({size / 1024:.0f} KiB)", soft_wrap=True)
    else:
        render_terminal(summary, Console())


def diff_command(
    run_a: Annotated[str, typer.Argument(help="The earlier run (cxrvqa status lists the runs).")],
    run_b: Annotated[str, typer.Argument(help="The later run.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    limit: Annotated[int, typer.Option("--limit", min=0, help="Changed items to show.")] = DEFAULT_EXAMPLES,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (one JSON document).")] = False,
) -> None:
    """The change log between two runs: items added, removed and changed, each with its cause (study or image
    retired, input edit, scene graph or images, template or generator, selection)."""
    from cxrvqa.audit.diff import dataset_diff
    from cxrvqa.audit.terminal import render_changes

    try:
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            diff = dataset_diff(store, run_a, run_b, limit)
    except CxrvqaError as exc:
        fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(diff.as_dict(), indent=2))
        return
    render_changes(diff, Console())
