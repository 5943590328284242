"""The audit as one self-contained HTML page: inline CSS, script, SVG charts and thumbnails (data: URIs).

The page is package data (audit/page/): Jinja templates for the markup, the style sheets and scripts as files.
Nothing from the data reaches the page as markup. The templates escape every value (autoescape); the failing
items travel as JSON in a `<script type="application/json">` block (every `<`, `>` and `&` written as a
`\\u` escape, so no `</script>` or `<!--` can close it) and the page's script puts them into the page
with `textContent` only. A Content-Security-Policy allows nothing but the page's own script (by hash),
inline styles and data: images: no network, and no injected handler could run even if one got in.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from cxrvqa.audit import summary as audit_summary
from cxrvqa.audit.diff import CAUSES, KINDS, TOP_CHANGED_TEMPLATES, DatasetDiff
from cxrvqa.audit.summary import AuditSummary, reason_key
from cxrvqa.core import pages
from cxrvqa.core.pages import document, item_media, thumbnail
from cxrvqa.core.prior import FORMAT_COLUMNS, format_rows, strongest
from cxrvqa.core.resources import resource
from cxrvqa.core.stats import Proportion
from cxrvqa.review.accuracy import ReviewAccuracy
from cxrvqa.store import Store

#: Failing items embedded by default (--limit).
DEFAULT_ITEMS = 200
#: Images shown with all their annotated boxes (those with boxes first).
GALLERY_IMAGES = 24


# -- what the items need beyond the summary ------------------------------------------------------------
def page_extras(store: Store, summary: AuditSummary, out_dir: Path) -> dict[str, Any]:
    """Thumbnails of the example items' images and their studies' reports, split at sentences.

    Run it in the same `as_of` scope as the summary, so images and reports are those of that run.
    """
    media = item_media(
        store,
        out_dir,
        [item.image_id for item in summary.examples if item.image_id],
        [item.study_id for item in summary.examples],
    )
    images = media["images"]
    gallery = []
    for image_id, study_id, view, png_path, cols, rows, boxes in store.query(
        "SELECT i.image_id, i.study_id, i.view_position, i.png_path, i.png_cols, i.png_rows, "
        "list({'label': b.label, 'x_min': b.x_min, 'y_min': b.y_min, 'x_max': b.x_max, 'y_max': b.y_max} "
        "ORDER BY b.label, b.box_id) FILTER (b.box_id IS NOT NULL) "
        "FROM current_images i LEFT JOIN current_boxes b USING (image_id) "
        "GROUP BY ALL ORDER BY count(b.box_id) = 0, i.study_id, i.image_id LIMIT $n",
        {"n": GALLERY_IMAGES if show_gallery(summary) else 0},
    ):
        path = out_dir / png_path
        if path.is_file():
            images.setdefault(image_id, {"src": thumbnail(path), "width": cols, "height": rows})
            gallery.append({"image_id": image_id, "study_id": study_id, "view": view, "boxes": boxes or []})
    return {"images": images, "reports": media["reports"], "gallery": gallery}


def show_gallery(summary: AuditSummary) -> bool:
    """The image gallery belongs to the input stages: --stage images/boxes, or no stage, validator or template."""
    return bool(
        summary.filters["stage"] in (None, "images", "boxes")
        and not summary.filters["validator"]
        and not summary.filters["template"]
        and not summary.filters["reason"]
    )


# -- the page --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def templates() -> Environment:
    """The page templates (package data in audit/page/): autoescaped, so that data reaches a page as text only."""
    env = Environment(
        loader=PackageLoader("cxrvqa.audit", "page"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # the column headers the terminal audit shows too (audit.summary *_COLUMNS)
    env.globals.update({name: getattr(audit_summary, name) for name in dir(audit_summary) if name.endswith("_COLUMNS")})
    env.globals.update(
        FORMAT_COLUMNS=FORMAT_COLUMNS,
        KINDS=KINDS,
        pct=_pct,
        bar_chart=bar_chart,
        rate_rows=_rate_rows,
        reason_key=reason_key,
        format_rows=format_rows,
        strongest=strongest,
        proportion_cells=_proportion_cells,
        most_changed=_most_changed,
        changes_by_cause=_changes_by_cause,
        worst_questions=_worst_questions,
        review_chart_rows=_review_chart_rows,
        review_intervals=_review_intervals,
        positive_rows=_positive_rows,
        target_shares=_target_shares,
        grade_rows=_grade_rows,
        reason_rows=_reason_rows,
    )
    return env


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A style sheet or script of the audit pages (audit/page/<name>); those every page uses are core.pages.asset."""
    return resource("audit", "page", name).read_text(encoding="utf-8")


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def bar_chart(
    chart_id: str,
    title: str,
    rows: list[tuple[str, float, str]],
    *,
    maximum: float | None = None,
    markers: dict[str, float] | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Markup:
    """A horizontal bar chart as inline SVG: one (label, value, value text) per row; markers draw a tick
    (e.g. a target share) on a row's scale, intervals a whisker (e.g. a Wilson 95% interval)."""
    label_w, bar_w, row_h = 190, 200, 18
    top = (
        (max([value for _, value, _ in rows] + list((markers or {}).values())) if maximum is None else maximum)
        if rows
        else 1.0
    )
    top = top or 1.0

    def scaled(value: float) -> float:
        return max(0.0, min(1.0, value / top)) * bar_w

    bars = []
    for index, (label, value, text) in enumerate(rows):
        whisker = [label_w + scaled(v) for v in intervals[label]] if intervals and label in intervals else []
        width = scaled(value)
        bars.append(
            {
                "label": label,
                "value": value,
                "text": text,
                "y": index * row_h + 2,
                "short": label if len(label) <= 30 else label[:29] + "…",
                "width": width,
                "text_x": max([label_w + width, *whisker]) + 4,  # the value text after the bar and its whisker
                "marker": label_w + scaled(markers[label]) if markers and label in markers else None,
                "whisker": whisker,
                "middle": index * row_h + 2 + row_h / 2,
            }
        )
    macros = templates().get_template("macros.html.j2").module
    return macros.svg_bars(
        chart_id, title, bars, label_w + bar_w + 90, row_h * len(rows) + 4, label_w - 6, label_w, row_h
    )


def _rate_rows(rows: list[Any], name: str, kind: str) -> list[tuple[str, float, str]]:
    """(label, share of items, text) per validator or template that has any ``kind`` (rejected | warned), highest
    first: rejects and warnings apart, so that a report-only build's warnings do not hide its rejects."""
    found = [
        (getattr(r, name), getattr(r, kind) / r.items, f"{getattr(r, kind)} of {r.items}")
        for r in rows
        if r.items and getattr(r, kind)
    ]
    return sorted(found, key=lambda row: -row[1])


def _positive_rows(rows: list[Any]) -> list[tuple[str, float, str]]:
    return [
        (
            t.template_id,
            t.positive_share,
            f"{_pct(t.positive_share)} of {t.yes_no or t.items}" + (" (list)" if t.lists else ""),
        )
        for t in sorted(rows, key=lambda t: t.template_id)
        if t.positive_share is not None
    ]


def _target_shares(rows: list[Any]) -> dict[str, float]:
    return {t.template_id: t.target_share for t in rows if t.target_share is not None}


def _grade_rows(grades: list[Any]) -> list[tuple[str, float, str]]:
    return [(g.label, g.n, f"{g.n} ({_pct(g.share)})") for g in grades]


def _reason_rows(reasons: list[Any], stage: str) -> list[tuple[str, float, str]]:
    return [(r.reason, r.n, str(r.n)) for r in reasons if r.stage == stage]


def _most_changed(diff: DatasetDiff) -> list[tuple[Any, ...]]:
    """(template, added, removed, changed) of the most changed templates, most first."""
    templates = sorted(diff.templates.items(), key=lambda t: (-sum(t[1].values()), t[0]))[:TOP_CHANGED_TEMPLATES]
    return [(t, *(counts.get(k, 0) for k in KINDS)) for t, counts in templates]


def _changes_by_cause(diff: DatasetDiff) -> list[tuple[Any, ...]]:
    return [(c, *(diff.counts.get((k, c), 0) for k in KINDS)) for c in CAUSES]


def _worst_questions(figure: Any) -> str:
    return "; ".join(f"{a} {acc:.2f} of {n}" for a, n, acc in figure.worst[:3])


def _proportion_cells(value: Proportion) -> tuple[str, str, str]:
    """(share, Wilson 95% interval, k/n) as table cells."""
    if not value.n:
        return "n/a", "", "0"
    return _pct(value.share), f"{_pct(value.low)} - {_pct(value.high)}", f"{value.k}/{value.n}"


def _review_chart_rows(review: ReviewAccuracy) -> list[tuple[str, float, str]]:
    return [
        (t.template_id, t.accuracy.share or 0.0, f"{_pct(t.accuracy.share)} of {t.accuracy.n}")
        for t in review.per_template
    ]


def _review_intervals(review: ReviewAccuracy) -> dict[str, tuple[float, float]]:
    return {t.template_id: (t.accuracy.low, t.accuracy.high) for t in review.per_template}


def review_section(review: ReviewAccuracy) -> Markup:
    """The human review section (audit/page/sections.html.j2 `review`)."""
    return templates().get_template("sections.html.j2").module.review(review)


def render_page(summary: AuditSummary, extras: dict[str, Any], scope: str) -> str:
    """The whole page as one string (audit/page/audit.html.j2)."""
    filters = ", ".join(f"{k}={v}" for k, v in summary.filters.items() if v is not None) or "none"
    images_kept = next((s.kept for s in summary.stages if s.stage == "images"), len(extras.get("gallery") or []))
    body = (
        templates()
        .get_template("audit.html.j2")
        .render(summary=summary, extras=extras, scope=scope, filters=filters, images_kept=images_kept)
    )
    data = {"items": [asdict(item) for item in summary.examples], **extras}
    return document(
        f"cxrvqa audit: {scope}",
        pages.asset("view.css") + asset("audit.css"),
        Markup(body),
        "audit-data",
        data,
        pages.asset("view.js") + asset("audit.js"),
    )


def write_page(dest: Path, page: str) -> int:
    """Write the page; returns its size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = page.encode("utf-8")
    dest.write_bytes(data)
    return len(data)
