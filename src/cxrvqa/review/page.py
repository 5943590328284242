"""The review page: one self-contained HTML file for reviewers, written by `cxrvqa review sample --dest *.html`.

Per item: the image with the item's boxes, the report with the evidence sentences marked, question, options,
answer and its parts; buttons correct / wrong / unsupported / bad question (their meanings from grades.yaml's
`review`), a grammar tick and a note. There is no server: "Save verdicts" downloads a JSON file
(`format: cxrvqa-review-verdicts`) that `cxrvqa review import` reads; the browser also keeps the verdicts in its
local storage, so a reload or a crash loses nothing.

Built from the audit page's pieces (cxrvqa.audit.html): the same thumbnails, report segments, item views,
escaping and Content-Security-Policy. Nothing from the data becomes markup: Python escapes what it writes and
the script sets text only (`textContent`, form values).
"""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from cxrvqa.audit.html import asset, document, item_media
from cxrvqa.core.resources import resource
from cxrvqa.review.sample import REVIEW_IMAGE_SIDE, Sample
from cxrvqa.store import Store
from cxrvqa.core.grading import grading

#: What the page's file is called in the saved JSON (`format`), and its version.
SAVED_FORMAT = "cxrvqa-review-verdicts"
SAVED_VERSION = 1
#: Fields of an item the page shows.
#: Not its grade or validator results: reviewers judge blind, or the review could not measure the checks.
ITEM_FIELDS = ("item_id", "item_version", "template_id", "study_id", "image_id", "answer_format", "question",
               "answer", "options", "correct_option", "boxes", "evidence_ids")


def sample_key(items: list[dict[str, Any]]) -> str:
    """Names the sample in the browser's storage: the same items at the same versions, the same saved state."""
    digest = hashlib.sha256("\n".join(f"{i['item_id']} {i['item_version']}" for i in items).encode("utf-8"))
    return digest.hexdigest()[:16]


def render_review_page(store: Store, out_dir: Path, items: list[dict[str, Any]], sample: Sample, build: str,
                       file_name: str) -> str:
    """The page of these sampled items (the jsonl export's fields plus `item_version`, cxrvqa.review.sample)."""
    review = grading().review
    media = item_media(store, out_dir, [i["image_id"] for i in items if i["image_id"]], [i["study_id"] for i in items],
                       side=REVIEW_IMAGE_SIDE)
    shown = [{**{k: item[k] for k in ITEM_FIELDS},
              "answer_parts": [{"kind": p["kind"], "text": p["text"]} for p in item["answer_parts"]],
              "boxes": item["boxes"] or []} for item in items]
    data = {"sample": {**sample.describe(), "build": build, "file": file_name, "key": sample_key(items)},
            "verdicts": {verdict: spec["meaning"] for verdict, spec in review["verdicts"].items()},
            "grammar": review["grammar"]["meaning"], "format": SAVED_FORMAT, "version": SAVED_VERSION,
            "items": shown, **media}
    legend = "".join(f"<dt>{escape(verdict.replace('_', ' '))}</dt><dd>{escape(meaning)}</dd>"
                     for verdict, meaning in data["verdicts"].items())
    strata = (f", stratified by {escape(sample.stratify)}" if sample.stratify else ", uniform")
    body = (f"<header><h1>cxrvqa review</h1><p class=meta>{len(items)} items of <code>{escape(build)}</code> "
            f"(seed {sample.seed}{strata}, drawn from {sample.population} current items). Judge each answer "
            "against its report; the image is there to place boxes.</p>"
            f'<details><summary>What the verdicts mean</summary><dl class="legend">{legend}'
            f"<dt>grammar</dt><dd>{escape(data['grammar'])}</dd></dl></details></header>"
            '<div id="toolbar"><label>reviewer <input id="reviewer" autocomplete="name" placeholder="your name">'
            '</label><span id="progress"></span><label><input type="checkbox" id="only-open"> only items without '
            'a verdict</label><button id="save" type="button">Save verdicts</button><span id="message" '
            'role="status"></span></div><main id="items"></main>')
    own = resource("review", "page")    # the review page's own style sheet and script
    style, script = (own.joinpath(name).read_text(encoding="utf-8") for name in ("review.css", "review.js"))
    return document(f"cxrvqa review: {build}", asset("view.css") + style, Markup(body), "review-data", data,
                    asset("view.js") + script)

