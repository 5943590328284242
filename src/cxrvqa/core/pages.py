"""What the self-contained HTML pages share (the audit page, the verdicts page, the review page): the document
skeleton with its Content-Security-Policy (core/page/document.html.j2), the shared style sheet and script (view.css,
view.js), thumbnails as data: URIs, reports split at sentences, and JSON that cannot end a script block."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from PIL import Image

from cxrvqa.core.resources import resource
from cxrvqa.store import Store

#: Longest side of an embedded thumbnail, in pixels.
THUMBNAIL_SIDE = 192


@lru_cache(maxsize=1)
def templates() -> Environment:
    """The shared page templates (package data in core/page/): autoescaped, so data reaches a page as text only."""
    return Environment(
        loader=PackageLoader("cxrvqa.core", "page"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A style sheet or script every page uses (core/page/<name>: view.css, view.js)."""
    return resource("core", "page", name).read_text(encoding="utf-8")


def item_media(
    store: Store, out_dir: Path, image_ids: list[str], study_ids: list[str], side: int = THUMBNAIL_SIDE
) -> dict[str, Any]:
    """What a page needs to show items: thumbnails of their images ({image_id: src, width, height}, sizes in
    PNG pixels, the space of the items' boxes) and their studies' reports split at sentences ({study_id:
    segments}). Shared by the audit page and the review page."""
    images = {}
    for image_id, png_path, cols, rows in store.query(
        "SELECT image_id, png_path, png_cols, png_rows FROM current_images WHERE image_id IN (SELECT unnest($ids))",
        {"ids": sorted(set(image_ids))},
    ):
        path = out_dir / png_path
        if path.is_file():
            images[image_id] = {"src": thumbnail(path, side), "width": cols, "height": rows}
    studies = sorted(set(study_ids))
    texts = dict(
        store.query(
            "SELECT study_id, text FROM current_reports WHERE study_id IN (SELECT unnest($ids))", {"ids": studies}
        )
    )
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for study_id, sentence_id, start, end in store.query(
        'SELECT study_id, sentence_id, start, "end" FROM current_sentences WHERE study_id IN '
        "(SELECT unnest($ids)) ORDER BY study_id, start",
        {"ids": studies},
    ):
        spans.setdefault(study_id, []).append((sentence_id, start, end))
    return {
        "images": images,
        "reports": {study_id: report_segments(text, spans.get(study_id, [])) for study_id, text in texts.items()},
    }


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


def json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> block: '<', '>' and '&' as \\u escapes (valid JSON, same value)."""
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def document(title: str, style: str, body: Markup, data_id: str, data: Any, script: str) -> str:
    """A self-contained page (core/page/document.html.j2): `body` (markup whose data was escaped), `data` as JSON
    in a script block with id `data_id`, and `script`, the only one the Content-Security-Policy lets run (by its
    hash). No network, images only as data: URIs. Shared by the audit, verdicts and review pages."""
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    policy = (
        f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        templates()
        .get_template("document.html.j2")
        .render(
            title=title,
            policy=policy,
            style=Markup(style),
            body=body,
            data_id=data_id,
            data_json=Markup(json_for_script(data)),
            script=Markup(script),
        )
    )
