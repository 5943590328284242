"""The audit as one self-contained HTML page: inline CSS, script, SVG charts and thumbnails (data: URIs).

Nothing from the data reaches the page as markup. Python writes text through `html.escape`; the failing
items travel as JSON in a `<script type="application/json">` block (every `<`, `>` and `&` written as a
`\\u` escape, so no `</script>` or `<!--` can close it) and the page's script puts them into the page
with `textContent` only. A Content-Security-Policy allows nothing but the page's own script (by hash),
inline styles and data: images: no network, and no injected handler could run even if one got in.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from cxrvqa.audit.diff import CAUSES, KINDS, TOP_CHANGED_TEMPLATES
from cxrvqa.audit.summary import AuditSummary, Comparison, reason_key
from cxrvqa.prior import FORMAT_COLUMNS, format_rows, strongest
from cxrvqa.review.accuracy import ReviewAccuracy
from cxrvqa.review.stats import Proportion
from cxrvqa.store import Store

#: Longest side of an embedded thumbnail, in pixels.
THUMBNAIL_SIDE = 192
#: Failing items embedded by default (--limit).
DEFAULT_ITEMS = 200
#: Images shown with all their annotated boxes (those with boxes first).
GALLERY_IMAGES = 24


# -- what the items need beyond the summary ------------------------------------------------------------
def page_extras(store: Store, summary: AuditSummary, out_dir: Path) -> dict[str, Any]:
    """Thumbnails of the example items' images and their studies' reports, split at sentences.

    Run it in the same `as_of` scope as the summary, so images and reports are those of that run.
    """
    media = item_media(store, out_dir, [item.image_id for item in summary.examples if item.image_id],
                       [item.study_id for item in summary.examples])
    images = media["images"]
    gallery = []
    for image_id, study_id, view, png_path, cols, rows, boxes in store.query(
            "SELECT i.image_id, i.study_id, i.view_position, i.png_path, i.png_cols, i.png_rows, "
            "list({'label': b.label, 'x_min': b.x_min, 'y_min': b.y_min, 'x_max': b.x_max, 'y_max': b.y_max} "
            "ORDER BY b.label, b.box_id) FILTER (b.box_id IS NOT NULL) "
            "FROM current_images i LEFT JOIN current_boxes b USING (image_id) "
            "GROUP BY ALL ORDER BY count(b.box_id) = 0, i.study_id, i.image_id LIMIT $n",
            {"n": GALLERY_IMAGES if show_gallery(summary) else 0}):
        path = out_dir / png_path
        if path.is_file():
            images.setdefault(image_id, {"src": thumbnail(path), "width": cols, "height": rows})
            gallery.append({"image_id": image_id, "study_id": study_id, "view": view, "boxes": boxes or []})
    return {"images": images, "reports": media["reports"], "gallery": gallery}


def item_media(store: Store, out_dir: Path, image_ids: list[str], study_ids: list[str],
               side: int = THUMBNAIL_SIDE) -> dict[str, Any]:
    """What a page needs to show items: thumbnails of their images ({image_id: src, width, height}, sizes in
    PNG pixels, the space of the items' boxes) and their studies' reports split at sentences ({study_id:
    segments}). Shared by the audit page and the review page (cxrvqa.review.page)."""
    images = {}
    for image_id, png_path, cols, rows in store.query(
            "SELECT image_id, png_path, png_cols, png_rows FROM current_images WHERE image_id IN "
            "(SELECT unnest($ids))", {"ids": sorted(set(image_ids))}):
        path = out_dir / png_path
        if path.is_file():
            images[image_id] = {"src": thumbnail(path, side), "width": cols, "height": rows}
    studies = sorted(set(study_ids))
    texts = dict(store.query("SELECT study_id, text FROM current_reports WHERE study_id IN (SELECT unnest($ids))",
                             {"ids": studies}))
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for study_id, sentence_id, start, end in store.query(
            'SELECT study_id, sentence_id, start, "end" FROM current_sentences WHERE study_id IN '
            '(SELECT unnest($ids)) ORDER BY study_id, start', {"ids": studies}):
        spans.setdefault(study_id, []).append((sentence_id, start, end))
    return {"images": images,
            "reports": {study_id: report_segments(text, spans.get(study_id, [])) for study_id, text in texts.items()}}


def show_gallery(summary: AuditSummary) -> bool:
    """The image gallery belongs to the input stages: --stage images/boxes, or no stage, validator or template."""
    return bool(summary.filters["stage"] in (None, "images", "boxes") and not summary.filters["validator"]
                and not summary.filters["template"] and not summary.filters["reason"])


def report_segments(text: str, sentences: list[tuple[int, int, int]]) -> list[list[Any]]:
    """The report as [text, sentence id or None] pieces covering all of it, in order (the page marks the
    pieces whose sentence is evidence of an item; splitting here keeps offsets in Python's characters)."""
    segments: list[list[Any]] = []
    position = 0
    for sentence_id, start, end in sorted(sentences, key=lambda s: s[1]):
        if start < position or end > len(text):
            continue
        if start > position:
            segments.append([text[position:start], None])
        segments.append([text[start:end], sentence_id])
        position = end
    if position < len(text):
        segments.append([text[position:], None])
    return segments


def thumbnail(path: Path, side: int = THUMBNAIL_SIDE) -> str:
    """A PNG data: URI of the image shrunk to `side` pixels on its longest side."""
    with Image.open(path) as image:
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- the page --------------------------------------------------------------------------------------------
def json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> block: '<', '>' and '&' as \\u escapes (valid JSON, same value)."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def bar_chart(chart_id: str, title: str, rows: list[tuple[str, float, str]], *, maximum: float | None = None,
              markers: dict[str, float] | None = None, intervals: dict[str, tuple[float, float]] | None = None
              ) -> str:
    """A horizontal bar chart as inline SVG: one (label, value, value text) per row; markers draw a tick
    (e.g. a target share) on a row's scale, intervals a whisker (e.g. a Wilson 95% interval)."""
    head = f'<figure class="chart" id="{escape(chart_id)}"><figcaption>{escape(title)}</figcaption>'
    if not rows:
        return head + '<p class="empty">none</p></figure>'
    label_w, bar_w, row_h = 190, 200, 18
    top = max([value for _, value, _ in rows] + list((markers or {}).values())) if maximum is None else maximum
    top = top or 1.0
    height = row_h * len(rows) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">']
    for index, (label, value, text) in enumerate(rows):
        y = index * row_h + 2
        width = max(0.0, min(1.0, value / top)) * bar_w
        short = label if len(label) <= 30 else label[:29] + "…"
        whisker = [label_w + max(0.0, min(1.0, v / top)) * bar_w for v in intervals[label]] \
            if intervals and label in intervals else []
        text_x = max([label_w + width, *whisker]) + 4        # the value text after the bar and its whisker
        parts.append(f'<g class="bar" data-label="{escape(label)}" data-value="{value}">'
                     f'<title>{escape(label)}: {escape(text)}</title>'
                     f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(short)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 5}"></rect>'
                     f'<text x="{text_x:.1f}" y="{y + 12}">{escape(text)}</text>')
        if markers and label in markers:
            x = label_w + max(0.0, min(1.0, markers[label] / top)) * bar_w
            parts.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + row_h - 1}"></line>')
        if whisker:
            low, high = whisker
            middle = y + row_h / 2
            parts.append(f'<path class="interval" d="M{low:.1f} {middle - 3:.1f}v6M{low:.1f} {middle:.1f}'
                         f'H{high:.1f}M{high:.1f} {middle - 3:.1f}v6"></path>')
        parts.append("</g>")
    return head + "".join(parts) + "</svg></figure>"


def _table(table_id: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], *,
           cell_data: tuple[str, ...] | None = None, row_keys: list[str] | None = None) -> str:
    """An HTML table of escaped values; with `cell_data`, each cell carries data-key (row key) and
    data-field (its column's field name), which the browser test reads."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for position, value in enumerate(row):
            attrs = ""
            if cell_data and row_keys:
                attrs = f' data-key="{escape(row_keys[index])}" data-field="{escape(cell_data[position])}"'
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td{attrs}{" class=num" if numeric else ""}>{escape("" if value is None else str(value))}'
                         "</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            if rows else f'<p class="empty" id="{escape(table_id)}">none</p>')


def _rate_rows(rows: list[Any], name: str, kind: str) -> list[tuple[str, float, str]]:
    """(label, share of items, text) per validator or template that has any ``kind`` (rejected | warned), highest
    first: rejects and warnings apart, so that a report-only build's warnings do not hide its rejects."""
    found = [(getattr(r, name), getattr(r, kind) / r.items, f"{getattr(r, kind)} of {r.items}")
             for r in rows if r.items and getattr(r, kind)]
    return sorted(found, key=lambda row: -row[1])


def _charts(summary: AuditSummary) -> str:
    charts = [
        bar_chart("chart-validators", "Reject rate by validator (items graded D by it)",
                  _rate_rows(summary.validators, "validator", "rejected")),
        bar_chart("chart-templates", "Reject rate by template",
                  _rate_rows(summary.templates, "template_id", "rejected")),
        bar_chart("chart-validator-warnings", "Warning rate by validator",
                  _rate_rows(summary.validators, "validator", "warned")),
        bar_chart("chart-template-warnings", "Warning rate by template",
                  _rate_rows(summary.templates, "template_id", "warned")),
        bar_chart("chart-positive", "Positive share per yes/no template ('yes') and list template (items whose "
                  "list names a finding) (tick: target)",
                  [(t.template_id, t.positive_share, f"{_pct(t.positive_share)} of {t.yes_no or t.items}"
                    + (" (list)" if t.lists else ""))
                   for t in sorted(summary.templates, key=lambda t: t.template_id) if t.positive_share is not None],
                  maximum=1.0, markers={t.template_id: t.target_share for t in summary.templates
                                        if t.target_share is not None}),
        bar_chart("chart-grades", "Grade distribution", [(g.label, g.n, f"{g.n} ({_pct(g.share)})")
                                                         for g in summary.grades]),
        bar_chart("chart-image-rejects", "Image reject reasons",
                  [(r.reason, r.n, str(r.n)) for r in summary.reasons if r.stage == "images"]),
        bar_chart("chart-extraction-failures", "Extraction failures",
                  [(r.reason, r.n, str(r.n)) for r in summary.reasons if r.stage == "extract"]),
    ]
    return '<section id="charts"><h2>Charts</h2><div class="charts">' + "".join(charts) + "</div></section>"


def _comparison(comparison: Comparison) -> str:
    base = comparison.baseline.run_id if comparison.baseline else "?"
    parts = [f'<section id="compare"><h2>Compared with run {escape(base)}</h2>']
    if not any((comparison.stages, comparison.reasons, comparison.templates, comparison.validators,
                comparison.grades, comparison.dataset_checks)):
        parts.append("<p>nothing changed</p>")
    for title, rows in (("Stage counts", comparison.stages), ("Reasons", comparison.reasons),
                        ("Grades", comparison.grades)):
        if rows:
            parts.append(f"<h3>{title}</h3>" + _table(
                f"compare-{title.split()[0].lower()}", ("what", "before", "now", "change"),
                [(c.key, c.before, c.after, f"{c.delta:+d}") for c in rows]))
    if comparison.templates:
        parts.append("<h3>Templates</h3>" + _table(
            "compare-templates", ("template", "items before", "items now", "failure rate before", "failure rate now",
                                  "positive share before", "positive share now"),
            [(t.template_id, t.items_before, t.items_after, _pct(t.failure_rate_before), _pct(t.failure_rate_after),
              _pct(t.positive_share_before), _pct(t.positive_share_after)) for t in comparison.templates]))
    if comparison.validators:
        parts.append("<h3>Validators</h3>" + _table(
            "compare-validators", ("validator", "failing before", "failing now", "rate before", "rate now"),
            [(v.validator, v.failing_before, v.failing_after, _pct(v.failure_rate_before),
              _pct(v.failure_rate_after)) for v in comparison.validators]))
    if comparison.dataset_checks:
        parts.append("<h3>Dataset checks</h3>" + _table(
            "compare-checks", ("check", "subject", "before", "now", "detail"),
            [(c.check, c.subject, c.ok_before, c.ok_after, c.detail_after or c.detail_before)
             for c in comparison.dataset_checks]))
    return "".join(parts) + "</section>"


def changes_section(summary: AuditSummary) -> str:
    """The change log against the run before the audited one (`cxrvqa diff`): items by cause, the most changed
    templates."""
    diff = summary.changes
    if diff is None:
        return ('<section id="changes"><h2>Changes</h2><p>none to show: this is the build\'s first run</p></section>'
                if summary.changes_from is None and summary.as_of_run is not None else "")
    total = sum(diff.counts.values())
    studies = ", ".join(f"{n} {kind}" for kind, n in diff.studies.items())
    templates = sorted(diff.templates.items(), key=lambda t: (-sum(t[1].values()), t[0]))[:TOP_CHANGED_TEMPLATES]
    return (f'<section id="changes"><h2>Changes since run {escape(diff.run_a)}: {total} items</h2>'
            f'<p class="hint">items added, removed or changed by run {escape(diff.run_b)}, each with its first cause; '
            f"studies: {escape(studies)} (cxrvqa diff {escape(diff.run_a)} {escape(diff.run_b)}: every template and "
            "more examples)</p>"
            + _table("changes-causes", ("cause", *KINDS),
                     [(c, *(diff.counts.get((k, c), 0) for k in KINDS)) for c in CAUSES])
            + f"<h3>The {len(templates)} most changed templates</h3>"
            + _table("changes-templates", ("template", *KINDS),
                     [(t, *(counts.get(k, 0) for k in KINDS)) for t, counts in templates])
            + "</section>")


def retired_section(summary: AuditSummary) -> str:
    """What the audited run retired (`build --prune`)."""
    if not summary.retired:
        return ""
    shown = len(summary.retired)
    return (f'<section id="retired"><h2>Retired by run {escape(summary.as_of_run.run_id)}: {summary.retired_total}'
            + (f" (first {shown} shown)" if shown < summary.retired_total else "") + "</h2>"
            '<p class="hint">studies whose report and images whose file the run\'s complete input no longer had '
            "(build --prune): their items left the current dataset; their rows stay as history</p>"
            + _table("retired-table", ("kind", "name", "reason", "items removed", "detail"),
                     [(r.kind, r.name, r.reason, r.items, r.detail) for r in summary.retired])
            + "</section>")


def _proportion_cells(value: Proportion) -> tuple[str, str, str]:
    """(share, Wilson 95% interval, k/n) as table cells."""
    if not value.n:
        return "n/a", "", "0"
    return _pct(value.share), f"{_pct(value.low)} - {_pct(value.high)}", f"{value.k}/{value.n}"


def prior_section(summary: AuditSummary) -> str:
    """The question-only baseline per answer format, the templates with the strongest prior first, and the
    questions the per-question balance kept nothing of (cxrvqa.prior)."""
    formats = _table("prior-formats", FORMAT_COLUMNS, [tuple(row) for row in format_rows(summary.prior)])
    ranked = strongest(summary.prior)
    templates = _table("prior-templates", ("template", "format", "key", "held-out", "accuracy", "chance",
                                           "best answered questions"),
                       [(f.template_id, f.answer_format, f.key, f.n_items, round(f.accuracy, 3), f.chance,
                         "; ".join(f"{a} {acc:.2f} of {n}" for a, n, acc in f.worst[:3])) for f in ranked],
                       row_keys=[f.template_id or "" for f in ranked])
    few = _table("prior-too-few", ("template", "questions", "without a yes", "without a no", "items left out",
                                   "largest"),
                 [(t.template_id, t.questions, t.without_yes, t.without_no, t.items_left_out, t.examples)
                  for t in summary.too_few]) if summary.too_few else ""
    return ('<section id="prior"><h2>Question-only baseline</h2><p class="hint">A model that sees only the question '
            "and answers the train split's majority answer for it, scored on the held-out items; chance 1/2 yes/no, "
            f"1/number of options multiple choice.</p>{formats}<h3>Templates, strongest prior first</h3>{templates}"
            + (f"<h3>Per-question balance: questions with too few of one answer (nothing kept)</h3>{few}"
               if few else "")
            + "</section>")


def review_section(review: ReviewAccuracy) -> str:
    """Accuracy measured by human review (overall, per template, Wilson 95% intervals) and how the checks did on
    the reviewed items (cxrvqa.review.accuracy)."""
    verdicts = ", ".join(f"{verdict} {n}" for verdict, n in review.verdicts.items())
    rows = [("accuracy (judged correct)", review.accuracy), ("grammar errors", review.grammar_errors),
            ("checks' recall: faulty items they demoted", review.recall),
            ("checks' false demotion: correct items they demoted", review.false_demotion)]
    keys = ["accuracy", "grammar_errors", "recall", "false_demotion"]
    summary = _table("review-summary", ("measure", "share", "Wilson 95%", "items"),
                     [(name, *_proportion_cells(value)) for name, value in rows],
                     cell_data=("measure", "share", "interval", "items"), row_keys=keys)
    chart = bar_chart("chart-review-templates", "Accuracy per template (share judged correct, out of 100%; "
                      "whiskers: Wilson 95%)",
                      [(t.template_id, t.accuracy.share or 0.0, f"{_pct(t.accuracy.share)} of {t.accuracy.n}")
                       for t in review.per_template], maximum=1.0,
                      intervals={t.template_id: (t.accuracy.low, t.accuracy.high) for t in review.per_template})
    templates = _table("review-templates", ("template", "reviewed", "correct", "accuracy", "Wilson 95%", "verdicts"),
                       [(t.template_id, t.accuracy.n, t.accuracy.k, *_proportion_cells(t.accuracy)[:2],
                         ", ".join(f"{v} {n}" for v, n in t.verdicts.items())) for t in review.per_template],
                       cell_data=("template", "reviewed", "correct", "accuracy", "interval", "verdicts"),
                       row_keys=[t.template_id for t in review.per_template])
    checks = _table("review-checks", ("validator", "failed on faulty items", "failed on correct items"),
                    [(c.validator, c.faulty_failed.text(), c.correct_failed.text()) for c in review.per_check])
    stale = (f'<p class="note">{review.stale_verdicts} verdict(s) no longer apply: their items changed since they '
             "were reviewed (review them again)</p>" if review.stale_verdicts else "")
    return (f'<section id="review-accuracy"><h2>Human review: {review.reviewed_items} items reviewed by '
            f"{len(review.reviewers)} reviewer(s)</h2><p class=hint>{escape(verdicts)}. Faulty: judged wrong, "
            "unsupported or a bad question. The checks demote an item when a failed validator or the judge set its "
            "grade before the review (not the item's form, e.g. report-only).</p>"
            f'{summary}<div class="charts">{chart}</div><h3>Per template</h3>{templates}'
            f"<h3>Where each validator failed</h3>{checks}{stale}</section>")


def _details(section_id: str, title: str, body: str, *, open_: bool = False) -> str:
    return (f'<section id="{section_id}"><details{" open" if open_ else ""}><summary><h2>{title}</h2></summary>'
            f"{body}</details></section>")


def render_page(summary: AuditSummary, extras: dict[str, Any], scope: str) -> str:
    """The whole page as one string."""
    run = summary.as_of_run
    filters = ", ".join(f"{k}={v}" for k, v in summary.filters.items() if v is not None) or "none"
    header = (f"<h1>cxrvqa audit</h1><p class=meta>build <code>{escape(scope)}</code>"
              + (f", as of run <code>{escape(run.run_id)}</code> ({escape(run.status)})" if run else ", no runs")
              + (f", latest run <code>{escape(summary.latest_run or '')}</code>"
                 if run and run.run_id != summary.latest_run else "")
              + f"; filters: {escape(filters)}</p>"
              + "".join(f'<p class="note">{escape(note)}</p>' for note in summary.notes))
    stages = _table("stage-counts", ("stage", "output", "kept", "warned", "rejected", "failed"),
                    [(s.stage, s.output, s.kept, s.warned, s.rejected, s.failed) for s in summary.stages],
                    cell_data=("stage", "output", "kept", "warned", "rejected", "failed"),
                    row_keys=[s.stage for s in summary.stages])
    reasons = _table("reasons", ("stage", "validator", "reason", "status", "count", "share", "rate", "example detail"),
                     [(r.stage, r.validator, r.reason, r.status, r.n, _pct(r.share), _pct(r.rate), r.example)
                      for r in summary.reasons], cell_data=("stage", "validator", "reason", "status", "n", "share",
                                                             "rate", "example"),
                     row_keys=[reason_key(r) for r in summary.reasons])
    sections = [header, f'<section id="stages"><h2>Counts per stage</h2>{stages}</section>']
    if summary.review is not None:
        sections.append(review_section(summary.review))
    if summary.prior:
        sections.append(prior_section(summary))
    if summary.compare is not None:
        sections.append(_comparison(summary.compare))
    sections += [changes_section(summary), retired_section(summary)]
    sections += [_charts(summary),
                 '<section id="reasons-section"><h2>Reasons</h2><p class="hint">share: of the stage\'s failures; '
                 f"rate: of its inputs (validation: of the validator's items)</p>{reasons}</section>"]
    shown = len(summary.examples)
    left_out = summary.failing_items - shown
    sections.append(
        f'<section id="failing"><h2>Failing items</h2><p id="items-summary" data-embedded="{shown}" '
        f'data-total="{summary.failing_items}" data-left-out="{left_out}">{shown} of {summary.failing_items} failing '
        "items embedded" + (f"; {left_out} left out (raise --limit to embed more)" if left_out else "") + "</p>"
        '<div id="filters"><label>validator <select id="filter-validator"></select></label>'
        '<label>reason <select id="filter-reason"></select></label>'
        '<label>template <select id="filter-template"></select></label>'
        '<label>grade <select id="filter-grade"></select></label>'
        '<label>search <input id="filter-search" type="search" placeholder="question, answer, report, detail">'
        '</label><span id="visible-count"></span></div><div id="items"></div></section>')
    for stage, title in (("images", "Rejected images"), ("extract", "Failed extractions"),
                         ("reports", "Rejected reports"), ("boxes", "Rejected box annotations")):
        rows = summary.rejects.get(stage)
        if rows is not None:
            n = sum(r.n for r in summary.reasons if r.stage == stage)
            sections.append(f'<section id="rejects-{stage}"><h2>{title}: {n}'
                            + (f" (first {len(rows)} shown)" if len(rows) < n else "") + "</h2>"
                            + _table(f"rejects-{stage}-table", tuple(rows[0]) if rows else (),
                                     [tuple(r.values()) for r in rows]) + "</section>")
    if extras.get("gallery"):
        total = next((s.kept for s in summary.stages if s.stage == "images"), len(extras["gallery"]))
        sections.append(f'<section id="gallery-section"><h2>Images and their boxes ({len(extras["gallery"])} of '
                        f'{total} images, those with boxes first)</h2><div id="gallery"></div></section>')
    agreement = summary.disagreements
    if agreement is not None:
        body = ("<p>no study has graphs of both backends</p>" if not agreement.studies_with_both else
                f"<p>{agreement.studies_disagreeing} of {agreement.studies_with_both} studies with both backends "
                "disagree</p>" + _table("disagreements", ("finding", "disagreement", "studies"),
                                        [(r["finding"], r["disagreement"], r["n"]) for r in agreement.by_finding])
                + _table("disagreement-examples", ("study", "finding", "rules", "llm"),
                         [(r["study_id"], r["finding"], f"{r['rules_presence'] or ''} {r['rules_laterality'] or ''}",
                           f"{r['llm_presence'] or ''} {r['llm_laterality'] or ''}") for r in agreement.examples]))
        sections.append(f'<section id="agreement"><h2>Rules vs LLM</h2>{body}</section>')
    if summary.dataset_checks_run is not None:
        failed = sum(not c.ok for c in summary.dataset_checks)
        sections.append(_details(
            "checks", f"Dataset checks of run {escape(summary.dataset_checks_run)}: {failed} failed, "
                      f"{len(summary.dataset_checks) - failed} passed",
            _table("dataset-checks", ("check", "subject", "ok", "value", "expected", "detail"),
                   [(c.check, c.subject, "ok" if c.ok else "FAILED", None if c.value is None else round(c.value, 4),
                     c.expected, c.detail) for c in summary.dataset_checks]), open_=bool(failed)))
    if summary.validators:
        sections.append(_details("validators-section", "Validators", _table(
            "validators", ("validator", "strictness", "items", "ok", "warned", "rejected", "failure rate",
                           "top reason"),
            [(v.validator, v.strictness, v.items, v.ok, v.warned, v.rejected, _pct(v.failure_rate), v.top_reason)
             for v in summary.validators])))
    if summary.templates:
        sections.append(_details("templates-section", "Templates", _table(
            "templates", ("template", "items", "yes/no", "positive share", "target", "warned", "rejected",
                          "failure rate"),
            [(t.template_id, t.items, t.yes_no, _pct(t.positive_share), _pct(t.target_share), t.warned, t.rejected,
              _pct(t.failure_rate)) for t in summary.templates],
            cell_data=("template", "items", "yes_no", "positive_share", "target", "warned", "rejected",
                       "failure_rate"), row_keys=[t.template_id for t in summary.templates])))
    if summary.grade_criteria:
        sections.append(_details("grades-section", "Grades: the criterion that set them", _table(
            "grade-criteria", ("grade", "set by", "items"),
            [(c.label, c.weakest or "nothing capped it", c.n) for c in summary.grade_criteria])))
    data = {"items": [asdict(item) for item in summary.examples], **extras}
    return document(f"cxrvqa audit: {scope}", _STYLE, "".join(sections), "audit-data", data, _SCRIPT)


def document(title: str, style: str, body: str, data_id: str, data: Any, script: str) -> str:
    """A self-contained page: `body` (markup Python escaped), `data` as JSON in a script block with id
    `data_id`, and `script`, the only one the Content-Security-Policy lets run (by its hash). No network,
    images only as data: URIs. Shared by the audit page and the review page."""
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    policy = (f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f"<title>{escape(title)}</title><style>{style}</style></head><body>{body}"
            f'<script type="application/json" id="{escape(data_id)}">{json_for_script(data)}</script>'
            f"<script>{script}</script></body></html>")


def write_page(dest: Path, page: str) -> int:
    """Write the page; returns its size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = page.encode("utf-8")
    dest.write_bytes(data)
    return len(data)


#: Styles of what VIEW_SCRIPT draws (thumbnails with boxes, reports with marked evidence), shared by both pages.
VIEW_STYLE = """
.thumb{margin:0}.thumb svg{width:192px;height:auto;background:#000;display:block}
.thumb rect{fill:none;stroke:#ff0;stroke-width:2;vector-effect:non-scaling-stroke}
.thumb figcaption{font-size:12px;color:#555}
.noimage{width:192px;height:120px;display:flex;align-items:center;justify-content:center;background:#eee;color:#666;
font-size:12px;text-align:center}
.report{white-space:pre-wrap;background:#f4f4f4;padding:.4em;font-size:13px;margin-top:.4em}
mark{background:#fff176}
"""

_STYLE = VIEW_STYLE + """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:0 0 .2em}h2{margin:1.4em 0 .5em;border-bottom:1px solid #ccc}h3{margin:1em 0 .3em}
.meta,.hint{color:#555}.note{color:#a60}.empty{color:#777;font-style:italic}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top;max-width:40em}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#eee}
.charts{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.chart{margin:0;background:#fff;border:1px solid #ddd;padding:.5em}
.chart figcaption{font-weight:600;margin-bottom:.3em}.chart svg text{font-size:11px;fill:#333}
.chart rect{fill:#4a78b5}.chart .marker{stroke:#d33;stroke-width:2}.chart .interval{stroke:#222;fill:none}
#filters{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:.5em 0;position:sticky;top:0;
background:#fafafa;padding:.4em 0;z-index:1}#visible-count{font-weight:600}
[hidden]{display:none !important}
.item{display:grid;grid-template-columns:200px 1fr;gap:1em;background:#fff;border:1px solid #ddd;
border-left:4px solid #e0a800;padding:.6em;margin:.6em 0}.item.reject{border-left-color:#c62828}
.item h3{margin:0 0 .3em;font-size:14px}.item .ids{color:#666;font-weight:normal;font-size:12px}
.grade{display:inline-block;padding:0 .4em;border-radius:3px;background:#ddd;margin-left:.4em}
.q{font-weight:600}.parts{margin:.2em 0 .2em 1.2em;padding:0}.options .correct{font-weight:600;color:#1b5e20}
.failures{margin:.3em 0;padding-left:1.2em}.failures .reject{color:#c62828}.failures .warn{color:#a65f00}
details>summary{cursor:pointer;list-style:revert}details>summary h2{display:inline-block;border:0;margin:.6em 0}
#gallery{display:flex;flex-wrap:wrap;gap:1em}#gallery .thumb{background:#fff;border:1px solid #ddd;padding:.4em}
"""

#: Pieces of script both pages use to show an item: `itemViews(data)` gives `el` (an element with text, never
#: markup), `thumb(item)` (the image as SVG with the item's boxes drawn over it) and `report(item)` (the report
#: with the item's evidence sentences marked), over the page data's `images` and `reports` (`item_media`).
VIEW_SCRIPT = """
"use strict";
function itemViews(data) {
  const SVG = "http://www.w3.org/2000/svg";
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function thumb(item) {
    const figure = el("figure", "thumb");
    const image = item.image_id ? data.images[item.image_id] : null;
    if (!image || !String(image.src).startsWith("data:image/png;base64,")) {
      figure.appendChild(el("div", "noimage", item.image_id ? "image file not found" : "no image (report-only)"));
      return figure;
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + Number(image.width) + " " + Number(image.height));
    const picture = document.createElementNS(SVG, "image");
    picture.setAttribute("href", image.src);
    picture.setAttribute("width", Number(image.width));
    picture.setAttribute("height", Number(image.height));
    svg.appendChild(picture);
    for (const box of item.boxes) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", Number(box.x_min));
      rect.setAttribute("y", Number(box.y_min));
      rect.setAttribute("width", Number(box.x_max) - Number(box.x_min));
      rect.setAttribute("height", Number(box.y_max) - Number(box.y_min));
      const title = document.createElementNS(SVG, "title");
      title.textContent = String(box.label);
      rect.appendChild(title);
      svg.appendChild(rect);
    }
    figure.appendChild(svg);
    if (item.boxes.length) {
      figure.appendChild(el("figcaption", null, "boxes: " + item.boxes.map(b => b.label).join(", ")));
    }
    return figure;
  }
  function report(item) {
    const box = el("div", "report");
    const segments = data.reports[item.study_id];
    if (!segments) { box.textContent = "(no current report)"; return box; }
    const evidence = new Set(item.evidence_ids);
    for (const [text, sentence] of segments) {
      box.appendChild(sentence !== null && evidence.has(sentence) ? el("mark", null, text)
                                                                  : document.createTextNode(text));
    }
    return box;
  }
  return {el: el, thumb: thumb, report: report};
}
"""

_SCRIPT = VIEW_SCRIPT + """
(function () {
  const data = JSON.parse(document.getElementById("audit-data").textContent);
  const views = itemViews(data);
  const el = views.el, thumb = views.thumb, report = views.report;
  function card(item) {
    const article = el("article", "item " + item.status);
    article.dataset.itemId = item.item_id;
    article.appendChild(thumb(item));
    const body = el("div", "body");
    const title = el("h3", null, item.template_id + " ");
    title.appendChild(el("span", "ids", item.item_id + " · study " + item.study_id + " · " + item.answer_format
                                          + " · " + (item.view ? "view " + item.view : "no image")));
    title.appendChild(el("span", "grade", "grade " + (item.grade || "-")));
    body.appendChild(title);
    body.appendChild(el("div", "q", "Q: " + item.question));
    const correct = item.correct_option ? "  [" + item.correct_option + "]" : "";
    body.appendChild(el("div", "a", "A: " + item.answer + correct));
    if (item.answer_parts.length > 1) {
      const parts = el("ol", "parts");
      for (const part of item.answer_parts) parts.appendChild(el("li", null, part.kind + ": " + part.text));
      body.appendChild(parts);
    }
    if (item.options) {
      const options = el("div", "options");
      item.options.forEach(function (option, index) {
        const letter = "ABCD"[index];
        const cls = letter === item.correct_option ? "correct" : null;
        options.appendChild(el("span", cls, letter + ") " + option + "  "));
      });
      body.appendChild(options);
    }
    const failures = el("ul", "failures");
    for (const f of item.failures) {
      const line = el("li", f.status);
      line.appendChild(el("b", null, f.status + " " + f.validator + ": " + f.reason));
      line.appendChild(el("span", "strictness", " (strictness " + f.strictness + ")"));
      line.appendChild(document.createTextNode(" — " + f.detail));
      failures.appendChild(line);
    }
    body.appendChild(failures);
    body.appendChild(report(item));
    article.appendChild(body);
    return article;
  }
  const list = document.getElementById("items");
  const cards = [];
  for (const item of data.items) {
    const node = card(item);
    const reportText = (data.reports[item.study_id] || []).map(s => s[0]).join("");
    const text = [item.question, item.answer, reportText].concat(
      item.answer_parts.map(p => p.text), item.failures.map(f => f.detail)).join("\\n").toLowerCase();
    cards.push({node: node, item: item, text: text});
    list.appendChild(node);
  }
  const gallery = document.getElementById("gallery");
  for (const entry of (gallery ? data.gallery : [])) {
    const figure = thumb({image_id: entry.image_id, boxes: entry.boxes});
    figure.insertBefore(el("figcaption", null, "study " + entry.study_id + " · " + entry.view), figure.firstChild);
    gallery.appendChild(figure);
  }
  const filters = {
    validator: item => item.failures.map(f => f.validator),
    reason: item => item.failures.map(f => f.reason),
    template: item => [item.template_id],
    grade: item => [item.grade || "-"],
  };
  const selects = {};
  for (const name of Object.keys(filters)) {
    const select = document.getElementById("filter-" + name);
    const values = new Set();
    for (const item of data.items) for (const value of filters[name](item)) values.add(value);
    select.appendChild(el("option", null, "all"));
    select.options[0].value = "";
    for (const value of Array.from(values).sort()) {
      const option = el("option", null, value);
      option.value = value;
      select.appendChild(option);
    }
    select.addEventListener("change", apply);
    selects[name] = select;
  }
  const search = document.getElementById("filter-search");
  search.addEventListener("input", apply);
  const count = document.getElementById("visible-count");
  function apply() {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const entry of cards) {
      let visible = !needle || entry.text.includes(needle);
      for (const name of Object.keys(filters)) {
        const wanted = selects[name].value;
        if (visible && wanted && !filters[name](entry.item).includes(wanted)) visible = false;
      }
      entry.node.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = shown + " of " + cards.length + " shown";
    count.dataset.shown = shown;
  }
  apply();
})();
"""
