"""`cxrvqa validate-file`: every validator over QA items given as JSON lines (hand-edited items, items
from another generator, an old export), against the images, reports and scene graphs of a build.

One output line per input line, in order; a line that is not a JSON object gets a verdict too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrvqa.core.grading import grade_item, grading
from cxrvqa.core.parallel import batched
from cxrvqa.core.text_input import Line, encoding_problem, read_lines, unstorable_char
from cxrvqa.errors import InputError
from cxrvqa.store import Store
from cxrvqa.validation.stage import ValidateStageContext, study_contexts
from cxrvqa.validation.validators import run_validators

LINES_PER_BATCH = 2000
#: What a verdict line repeats of its item, so that it can be read (and audited) without the items file.
IDENTITY = ("item_id", "template_id", "study_id", "image_id", "question", "answer")


@dataclass
class FileSummary:
    lines: int = 0
    ok: int = 0
    rejected: int = 0
    unreadable: int = 0


def _parsed(lines: Iterator[Line]) -> Iterator[tuple[int, dict[str, Any] | None, tuple[str, str]]]:
    """(line number, the item or None, (reason, detail) when it is not a JSON object of storable text)."""
    for line in lines:
        number, text = line.number, line.text
        problem = encoding_problem([line])
        if problem is not None:
            yield number, None, ("invalid_encoding", f"line {number}: {problem}")
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield (
                number,
                None,
                (
                    "invalid_json",
                    f"line {number}: expected a JSON object, found invalid JSON ({exc.msg} at column {exc.colno})",
                ),
            )
            continue
        if not isinstance(value, dict):
            yield (
                number,
                None,
                ("not_an_object", f"line {number}: expected a JSON object, found {type(value).__name__}"),
            )
            continue
        problem = next(
            (
                p
                for key, v in value.items()
                if isinstance(v, str)
                for p in [unstorable_char(v, f"field {key!r}")]
                if p is not None
            ),
            None,
        )
        if problem is not None:
            yield number, None, ("invalid_encoding", f"line {number}: {problem}")
            continue
        yield number, value, ("", "")


def validate_file(store: Store, source: Path, dest: Path, context: ValidateStageContext) -> FileSummary:
    """Write one verdict line per line of ``source`` to ``dest`` (atomically); returns the counts."""
    if not source.is_file():
        raise InputError(str(source), "a JSON-lines file of QA items", "no such file")
    rules = grading()
    templates = {t.id: t for t, _ in context.settings.templates}
    summary = FileSummary()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        numbered = (line for line in read_lines(source) if line.text.strip())
        for batch in batched(_parsed(numbered), LINES_PER_BATCH):
            studies = sorted({str(item.get("study_id")) for _, item, _ in batch if item is not None})
            contexts, quality = study_contexts(store, studies, context)
            for number, item, problem in batch:
                summary.lines += 1
                if item is None:
                    summary.unreadable += 1
                    reason, detail = problem
                    worst = rules.label(min(c for c, _, _ in rules.levels))
                    out.write(
                        json.dumps(
                            {
                                "line": number,
                                "ok": False,
                                "grade": worst,
                                "verdicts": [{"validator": "parse", "ok": False, "reason": reason, "detail": detail}],
                            }
                        )
                        + "\n"
                    )
                    continue
                study = str(item.get("study_id"))
                verdicts, failed = [], []
                for validator, verdict, level in run_validators(item, contexts[study], context.strictness):
                    verdicts.append(
                        {
                            "validator": validator.name,
                            "ok": verdict.ok,
                            "reason": verdict.reason,
                            "detail": verdict.detail,
                            "strictness": level,
                        }
                    )
                    if not verdict.ok:
                        failed.append((level, verdict.reason))
                template = templates.get(str(item.get("template_id")))
                code, _ = grade_item(item, failed, quality.get(study, []), bool(template and template.closed_world))
                ok = not any(level == "reject" for level, _ in failed)
                summary.ok += ok
                summary.rejected += not ok
                identity = {key: item.get(key) for key in IDENTITY}
                out.write(
                    json.dumps({"line": number, **identity, "ok": ok, "grade": rules.label(code), "verdicts": verdicts})
                    + "\n"
                )
    os.replace(partial, dest)
    return summary
