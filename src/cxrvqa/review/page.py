"""The review page: one self-contained HTML file for reviewers, written by `cxrvqa review sample --dest *.html`.

Per item: the image with the item's boxes, the report with the evidence sentences marked, question, options,
answer and its parts; buttons correct / wrong / unsupported / bad question (their meanings from grades.yaml's
`review`), a grammar tick and a note. There is no server: "Save verdicts" downloads a JSON file
(`format: cxrvqa-review-verdicts`) that `cxrvqa review import` reads; the browser also keeps the verdicts in its
local storage, so a reload or a crash loses nothing.

Built from the pieces every page shares (cxrvqa.core.pages): the same thumbnails, report segments, item views,
escaping and Content-Security-Policy. Nothing from the data becomes markup: the body is an autoescaped Jinja template
(review/page/review.html.j2) and the script sets text only (`textContent`, form values).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from cxrvqa.core.grading import grading
from cxrvqa.core.pages import asset, document, item_media
from cxrvqa.core.resources import resource
from cxrvqa.review.sample import REVIEW_IMAGE_SIDE, Sample
from cxrvqa.store import Store

#: What the page's file is called in the saved JSON (`format`), and its version.
SAVED_FORMAT = "cxrvqa-review-verdicts"
SAVED_VERSION = 1
#: Fields of an item the page shows.
#: Not its grade or validator results: reviewers judge blind, or the review could not measure the checks.
ITEM_FIELDS = (
    "item_id",
    "item_version",
    "template_id",
    "study_id",
    "image_id",
    "answer_format",
    "question",
    "answer",
    "options",
    "correct_option",
    "boxes",
    "evidence_ids",
)


def sample_key(items: list[dict[str, Any]]) -> str:
    """Names the sample in the browser's storage: the same items at the same versions, the same saved state."""
    digest = hashlib.sha256("\n".join(f"{i['item_id']} {i['item_version']}" for i in items).encode("utf-8"))
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _templates() -> Environment:
    """The review page's body template (package data in review/page/): autoescaped, so data reaches it as text."""
    return Environment(
        loader=PackageLoader("cxrvqa.review", "page"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_review_page(
    store: Store, out_dir: Path, items: list[dict[str, Any]], sample: Sample, build: str, file_name: str
) -> str:
    """The page of these sampled items (the jsonl export's fields plus `item_version`, cxrvqa.review.sample)."""
    review = grading().review
    media = item_media(
        store,
        out_dir,
        [i["image_id"] for i in items if i["image_id"]],
        [i["study_id"] for i in items],
        side=REVIEW_IMAGE_SIDE,
    )
    shown = [
        {
            **{k: item[k] for k in ITEM_FIELDS},
            "answer_parts": [{"kind": p["kind"], "text": p["text"]} for p in item["answer_parts"]],
            "boxes": item["boxes"] or [],
        }
        for item in items
    ]
    data = {
        "sample": {**sample.describe(), "build": build, "file": file_name, "key": sample_key(items)},
        "verdicts": {verdict: spec["meaning"] for verdict, spec in review["verdicts"].items()},
        "grammar": review["grammar"]["meaning"],
        "format": SAVED_FORMAT,
        "version": SAVED_VERSION,
        "items": shown,
        **media,
    }
    body = (
        _templates()
        .get_template("review.html.j2")
        .render(n_items=len(items), build=build, sample=sample, verdicts=data["verdicts"], grammar=data["grammar"])
    )
    own = resource("review", "page")  # the review page's own style sheet and script
    style, script = (own.joinpath(name).read_text(encoding="utf-8") for name in ("review.css", "review.js"))
    return document(
        f"cxrvqa review: {build}",
        asset("view.css") + style,
        Markup(body),
        "review-data",
        data,
        asset("view.js") + script,
    )
