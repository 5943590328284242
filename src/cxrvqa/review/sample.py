"""`cxrvqa review sample`: a reproducible random sample of the current items, written for reviewers.

The same dataset and seed give the same sample. `--stratify template|grade` gives every stratum an equal share
(a stratum with fewer items gives all it has, the rest goes to the others), so that each template or grade is
measured; without it the sample is uniform and its accuracy estimates the whole dataset's. Every format carries
each item's `item_version` (the hash of what the reviewer sees; macro `current_item_versions`), so that an
imported verdict applies to exactly the item that was reviewed.

Formats, chosen by --format or the destination's name:
- `jsonl` (`*.jsonl`): the jsonl export's lines (cxrvqa.export.items) plus `item_version`;
- `html` (`*.html`): the self-contained review page (cxrvqa.review.page);
- `label-studio` (`*.label-studio.json`): Label Studio tasks, and their labeling config beside them (`*.xml`);
- `argilla` (`*.argilla.json`): Argilla records (`Record.from_dict`), fields, metadata and no responses.
"""

from __future__ import annotations

import base64
import io
import json
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from cxrvqa.core.atomic import atomic_file
from cxrvqa.errors import ConfigError
from cxrvqa.export.items import EVERY_ITEM, items_query, sql_literal
from cxrvqa.store import Store

FORMATS = ("jsonl", "html", "label-studio", "argilla")
STRATA = ("template", "grade")
#: Longest side of the images given to reviewers (the page, Label Studio, Argilla), in pixels.
REVIEW_IMAGE_SIDE = 384
#: What a sample's destination name says about its format (longest suffix first).
_SUFFIXES = (
    (".label-studio.json", "label-studio"),
    (".labelstudio.json", "label-studio"),
    (".argilla.json", "argilla"),
    (".jsonl", "jsonl"),
    (".html", "html"),
    (".htm", "html"),
)


def format_of(dest: Path, fmt: str | None) -> str:
    """The format to write: --format, else the destination's suffix; a ConfigError naming both otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError("--format", f"unknown format {fmt!r}; formats are {list(FORMATS)}")
        return fmt
    name = dest.name.lower()
    for suffix, found in _SUFFIXES:
        if name.endswith(suffix):
            return found
    raise ConfigError(
        "--dest",
        f"cannot tell the format from {dest.name!r}: name it *.jsonl, *.html, "
        "*.label-studio.json or *.argilla.json, or give --format " + "|".join(FORMATS),
    )


@dataclass(frozen=True)
class Sample:
    """Which items were drawn, and how."""

    item_ids: list[str]  # in the order reviewers see them
    seed: int
    stratify: str | None
    population: int  # current items drawn from
    strata: dict[str, int]  # items drawn per stratum (empty without --stratify)

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "stratify": self.stratify,
            "n": len(self.item_ids),
            "population": self.population,
            "strata": self.strata,
        }


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Equal shares of `n` over the strata: a stratum smaller than its share gives all it has and the rest is
    shared by the others; what does not divide evenly goes to the strata with the most items left (then by name)."""
    taken = {stratum: 0 for stratum in sizes}
    left = min(n, sum(sizes.values()))
    while left:
        open_ = sorted(s for s in sizes if taken[s] < sizes[s])
        share = left // len(open_)
        if share == 0:
            for stratum in sorted(open_, key=lambda s: (taken[s] - sizes[s], s))[:left]:
                taken[stratum] += 1
            break
        for stratum in open_:
            more = min(share, sizes[stratum] - taken[stratum])
            taken[stratum] += more
            left -= more
    return taken


def draw(store: Store, n: int, seed: int | None = None, stratify: str | None = None) -> Sample:
    """A random sample of `n` current items (all of them when there are fewer), reproducible from the seed
    (a fresh one when None)."""
    if n < 1:
        raise ConfigError("--n", f"expected a positive number of items, found {n}")
    if stratify is not None and stratify not in STRATA:
        raise ConfigError("--stratify", f"unknown stratum {stratify!r}; choose {' or '.join(STRATA)}")
    seed = secrets.randbelow(2**31) if seed is None else seed
    rows = store.query(
        "SELECT q.item_id, q.template_id, coalesce(g.label, 'not graded') FROM current_qa_items q "
        "LEFT JOIN current_qa_grades g USING (item_id, template_version, input_hash) ORDER BY q.item_id"
    )
    rng = random.Random(seed)
    if stratify is None:
        return Sample(rng.sample([r[0] for r in rows], min(n, len(rows))), seed, None, len(rows), {})
    members: dict[str, list[str]] = defaultdict(list)
    for item_id, template_id, grade in rows:
        members[template_id if stratify == "template" else grade].append(item_id)
    taken = allocate({s: len(ids) for s, ids in members.items()}, n)
    chosen = [item_id for stratum in sorted(members) for item_id in rng.sample(members[stratum], taken[stratum])]
    rng.shuffle(chosen)
    return Sample(chosen, seed, stratify, len(rows), {s: k for s, k in sorted(taken.items()) if k})


def _sample_sql(sample: Sample) -> tuple[str, list[Any]]:
    """The sampled items in the jsonl export's columns (cxrvqa.export.items) plus `item_version`, in sample order."""
    sql, params = items_query(EVERY_ITEM)
    return (
        f"SELECT e.*, v.item_version FROM ({sql}) e "
        "JOIN (SELECT unnest($1::VARCHAR[]) AS item_id, unnest(range(len($1::VARCHAR[]))) AS position) o "
        "USING (item_id) JOIN current_item_versions($1::VARCHAR[]) v USING (item_id) "
        "WHERE e.item_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY o.position",
        [sample.item_ids, *params],
    )


def sampled_items(store: Store, sample: Sample) -> list[dict[str, Any]]:
    """The sampled items as the jsonl export has them (plus `item_version`), in sample order."""
    sql, params = _sample_sql(sample)
    return store.query_dicts(sql, params)


@dataclass(frozen=True)
class SampleSummary:
    format: str
    dest: Path
    sample: Sample
    extra_files: tuple[Path, ...] = ()


def write_sample(store: Store, out_dir: Path, dest: Path, sample: Sample, fmt: str) -> SampleSummary:
    """Write the sample to `dest` in `fmt` (atomically: a killed run leaves no half file under the name)."""
    if fmt == "jsonl":
        sql, params = _sample_sql(sample)
        with atomic_file(dest) as partial:
            store.query(f"COPY ({sql}) TO {sql_literal(str(partial))} (FORMAT json)", params)
        return SampleSummary(fmt, dest, sample)
    items = sampled_items(store, sample)
    extra: tuple[Path, ...] = ()
    if fmt == "html":
        from cxrvqa.review.page import render_review_page

        text = render_review_page(store, out_dir, items, sample, build=str(out_dir), file_name=dest.name)
    elif fmt == "label-studio":
        items = with_reports(store, items)
        tasks = [_label_studio_task(item, _boxed_image(out_dir, item)) for item in items]
        text = json.dumps(tasks, indent=1, ensure_ascii=False)
        config = dest.with_suffix(".xml")
        with atomic_file(config) as partial:
            partial.write_text(label_studio_config(any(t["data"]["image"] for t in tasks)), encoding="utf-8")
        extra = (config,)
    else:
        items = with_reports(store, items)
        text = json.dumps(
            [_argilla_record(item, _boxed_image(out_dir, item)) for item in items], indent=1, ensure_ascii=False
        )
    with atomic_file(dest) as partial:
        partial.write_text(text, encoding="utf-8")
    return SampleSummary(fmt, dest, sample, extra)


# -- what the review tools show --------------------------------------------------------------------------------
def _boxed_image(out_dir: Path, item: dict[str, Any]) -> str:
    """The item's image as a JPEG data: URI with its boxes drawn in (review tools show one picture; JPEG keeps
    300 tasks to a few MB), or '' without an image."""
    if not item["image"] or not (out_dir / item["image"]).is_file():
        return ""
    with Image.open(out_dir / item["image"]) as image:
        picture = image.convert("RGB" if item["boxes"] else "L")
    scale = REVIEW_IMAGE_SIDE / max(picture.size)
    if scale < 1:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    else:
        scale = 1.0
    draw_ = ImageDraw.Draw(picture)
    for box in item["boxes"] or []:
        draw_.rectangle(
            [box["x_min"] * scale, box["y_min"] * scale, box["x_max"] * scale, box["y_max"] * scale],
            outline=(255, 255, 0),
            width=2,
        )
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _options_text(item: dict[str, Any]) -> str:
    return "\n".join(f"{letter}) {option}" for letter, option in zip("ABCD", item["options"] or [], strict=False))


def _answer_text(item: dict[str, Any]) -> str:
    """The answer as a reviewer reads it: the chosen option, the answer, its further parts."""
    lines = [(f"[{item['correct_option']}] " if item["correct_option"] else "") + item["answer"]]
    lines += [f"{part['kind']}: {part['text']}" for part in item["answer_parts"][1:]]
    return "\n".join(lines)


def _evidence_text(item: dict[str, Any]) -> str:
    return (
        "\n".join(f"[{e['section']}] {e['text']}" for e in item["evidence"] or [])
        or "(none: the answer comes from the template, the header or boxes)"
    )


def _label_studio_task(item: dict[str, Any], image: str) -> dict[str, Any]:
    """A Label Studio task: `data` holds what the labeling config shows and what the import needs back."""
    return {
        "data": {
            "item_id": item["item_id"],
            "item_version": item["item_version"],
            "template_id": item["template_id"],
            "image": image,
            "report": item.get("report", ""),
            "evidence": _evidence_text(item),
            "question": item["question"],
            "options": _options_text(item),
            "answer": _answer_text(item),
        }
    }


def _argilla_record(item: dict[str, Any], image: str) -> dict[str, Any]:
    """An Argilla record in the layout of `Record.to_dict` / `Record.from_dict` (id = the item id)."""
    fields = {
        "report": item.get("report", ""),
        "evidence": _evidence_text(item),
        "question": item["question"],
        "options": _options_text(item) or "(not a multiple-choice question)",
        "answer": _answer_text(item),
    }
    if image:
        fields["image"] = image
    return {
        "id": item["item_id"],
        "fields": fields,
        "metadata": {
            "item_version": item["item_version"],
            "template_id": item["template_id"],
            "study_id": item["study_id"],
        },
        "suggestions": {},
        "responses": {},
        "vectors": {},
    }


def label_studio_config(with_image: bool) -> str:
    """The labeling config the tasks are made for: the item, then the verdict (required), a grammar tick and a
    note, named as `cxrvqa review import` reads them back."""
    from cxrvqa.core.grading import grading

    review = grading().review
    choices = "".join(
        f'<Choice value="{escape(v)}" hint="{escape(spec["meaning"])}"/>' for v, spec in review["verdicts"].items()
    )
    image = '  <Image name="image" value="$image" maxWidth="480px"/>\n' if with_image else ""
    return (
        "<View>\n"
        '  <Header value="$template_id"/>\n'
        f"{image}"
        '  <Header value="Report" size="5"/>\n  <Text name="report" value="$report"/>\n'
        '  <Header value="Evidence the answer cites" size="5"/>\n  <Text name="evidence" value="$evidence"/>\n'
        '  <Header value="Question" size="5"/>\n  <Text name="question" value="$question"/>\n'
        '  <Text name="options" value="$options"/>\n'
        '  <Header value="Answer" size="5"/>\n  <Text name="answer" value="$answer"/>\n'
        f'  <Choices name="verdict" toName="question" choice="single-radio" required="true">{choices}</Choices>\n'
        '  <Choices name="grammar" toName="question" choice="multiple">'
        f'<Choice value="grammar error" hint="{escape(review["grammar"]["meaning"])}"/></Choices>\n'
        '  <TextArea name="note" toName="question" placeholder="note (optional)" maxSubmissions="1" '
        'editable="true"/>\n'
        "</View>\n"
    )


def with_reports(store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items with their study's current report text (`report`), for the review tools."""
    texts = dict(
        store.query(
            "SELECT study_id, text FROM current_reports WHERE study_id IN (SELECT unnest(?))",
            [sorted({i["study_id"] for i in items})],
        )
    )
    return [{**item, "report": texts.get(item["study_id"], "")} for item in items]
