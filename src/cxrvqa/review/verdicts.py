"""Reading reviewers' verdicts: the file the review page saves, Label Studio and Argilla exports, and plain
JSON lines. Every format becomes the same `Verdict` records, each naming where in the file it came from.

A file with any problem is refused as a whole, with every problem named (line or record, what was expected,
what was found): `cxrvqa review import` writes nothing from it.

- `html`: the review page's saved JSON, `{"format": "cxrvqa-review-verdicts", "reviewer", "verdicts":
  [{"item_id", "item_version", "verdict", "grammar", "note", "reviewed_at"}]}`;
- `label-studio`: Label Studio's JSON export (a list of tasks with `data` and `annotations`), from tasks made
  by `review sample` and its labeling config (choices `verdict` and `grammar`, text area `note`); cancelled
  annotations and tasks without annotations are not verdicts;
- `argilla`: Argilla records as `Dataset.records.to_json()` or `to_list()` writes them, nested (`responses:
  {question: [{value, user_id}]}`) or flattened (`verdict.responses`, `verdict.responses.users`); responses
  whose status is not `submitted` are not verdicts;
- `jsonl`: one object per line (or a JSON list of them) `{"item_id", "verdict", "grammar", "note"}`, optionally
  `reviewer` (or Label Studio's JSON-MIN `annotator`), `item_version`, `reviewed_at`, and the `provenance` of a
  jsonl export line (then the verdict holds only while that exact item is current).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cxrvqa.core.grading import review_verdicts
from cxrvqa.errors import InputError

FORMATS = ("html", "label-studio", "argilla", "jsonl")
SAVED_FORMAT = "cxrvqa-review-verdicts"
#: The most problems an error lists (the count of the others follows).
MAX_PROBLEMS = 20
_TRUE = {"true", "yes", "1", "error", "grammar error", "grammar_error"}
_FALSE = {"false", "no", "0", "ok", "none", ""}


@dataclass(frozen=True)
class Verdict:
    """One reviewer's verdict on one item, as a file gives it."""

    source: str  # 'line 3', 'task 2, annotation 17', 'record 5, user 3f2a...'
    item_id: str
    verdict: str  # correct | wrong | unsupported | bad_question
    grammar: bool
    note: str
    reviewer: str | None
    item_version: str | None  # the version the reviewer saw (from the sample), when the file says
    key: tuple[str, str] | None  # (template_version, input_hash) of a jsonl export line's provenance
    reviewed_at: datetime | None


class _Problems:
    """Collects what is wrong with a file, each with where."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.found.append(f"{where}: {problem}")


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tool_verdict(
    where: str,
    item_id: str | None,
    values: dict[str, Any],
    reviewer: str | None,
    item_version: str | None,
    at: Any,
    problems: _Problems,
) -> Verdict | None:
    """A review tool's answers to the verdict, grammar and note questions as a Verdict (None where the item or the
    verdict is missing; what is wrong is in ``problems``)."""
    verdict = _verdict(values["verdict"], where, problems)
    grammar = _grammar(values.get("grammar"), where, problems)
    note = _note(values.get("note"), where, problems)
    if not (item_id and verdict):
        return None
    return Verdict(where, item_id, verdict, grammar, note, reviewer, item_version, None, at)


def _verdict(value: Any, where: str, problems: _Problems) -> str | None:
    allowed = review_verdicts()
    if isinstance(value, list) and len(value) == 1:  # a Label Studio choices list
        value = value[0]
    if isinstance(value, str):
        normal = value.strip().lower().replace(" ", "_").replace("-", "_")
        if normal in allowed:
            return normal
    problems.add(where, f"expected a verdict, one of {', '.join(allowed)}; found {_describe(value)}")
    return None


def _grammar(value: Any, where: str, problems: _Problems) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, dict) and "choices" in value:
        value = value["choices"]
    if isinstance(value, list):
        return any(_grammar(v, where, problems) for v in value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    problems.add(where, f"expected grammar true or false (or yes/no, error/ok); found {_describe(value)}")
    return False


def _note(value: Any, where: str, problems: _Problems) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and "text" in value:
        value = value["text"]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value).strip()
    if isinstance(value, str):
        return value.strip()
    problems.add(where, f"expected a note as text; found {_describe(value)}")
    return ""


def _time(value: Any, where: str, problems: _Problems) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # a time without zone: UTC
    except ValueError:
        problems.add(where, f"expected a time in ISO 8601 (2026-01-31T12:00:00Z); found {_describe(value)}")
        return None


def _text(value: Any, what: str, where: str, problems: _Problems, required: bool = True) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if value is None and not required:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not required:
        return str(value)
    problems.add(where, f"expected {what} as text; found {_describe(value)}")
    return None


# -- formats -----------------------------------------------------------------------------------------------------
def _plain(records: Iterator[tuple[str, Any]], problems: _Problems) -> list[Verdict]:
    found = []
    for where, record in records:
        if not isinstance(record, dict):
            problems.add(where, "expected a JSON object {item_id, verdict, grammar, note}; found " + _describe(record))
            continue
        item_id = _text(record.get("item_id"), "item_id", where, problems)
        verdict = _verdict(record.get("verdict"), where, problems)
        key = None
        provenance = record.get("provenance")
        if isinstance(provenance, dict) and provenance.get("template_version") and provenance.get("input_hash"):
            key = (str(provenance["template_version"]), str(provenance["input_hash"]))
        reviewer = record.get("reviewer", record.get("annotator"))
        if item_id and verdict:
            found.append(
                Verdict(
                    where,
                    item_id,
                    verdict,
                    _grammar(record.get("grammar"), where, problems),
                    _note(record.get("note"), where, problems),
                    _text(reviewer, "reviewer", where, problems, required=False),
                    _text(record.get("item_version"), "item_version", where, problems, required=False),
                    key,
                    _time(record.get("reviewed_at", record.get("updated_at")), where, problems),
                )
            )
    return found


def _page(document: dict[str, Any], problems: _Problems) -> list[Verdict]:
    if document.get("format") != SAVED_FORMAT:
        problems.add("the file", f"expected format {SAVED_FORMAT!r}; found {_describe(document.get('format'))}")
        return []
    reviewer = document.get("reviewer")
    entries = document.get("verdicts")
    if not isinstance(entries, list):
        problems.add("the file", f"expected a list of verdicts; found {_describe(entries)}")
        return []
    verdicts = _plain(((f"verdict {n}", e) for n, e in enumerate(entries, start=1)), problems)
    return [v if v.reviewer else _with_reviewer(v, reviewer, problems) for v in verdicts]


def _with_reviewer(v: Verdict, reviewer: Any, problems: _Problems) -> Verdict:
    name = _text(reviewer, "reviewer", "the file", problems, required=False)
    return Verdict(v.source, v.item_id, v.verdict, v.grammar, v.note, name, v.item_version, v.key, v.reviewed_at)


def _annotator(completed_by: Any) -> str | None:
    """Label Studio names an annotator by user id, or by an object with the email in some exports."""
    if isinstance(completed_by, dict):
        return completed_by.get("email") or (str(completed_by["id"]) if "id" in completed_by else None)
    return None if completed_by is None else str(completed_by)


def _label_studio(tasks: list[Any], problems: _Problems) -> list[Verdict]:
    found = []
    for number, task in enumerate(tasks, start=1):
        task_where = f"task {number}" + (f" (id {task['id']})" if isinstance(task, dict) and "id" in task else "")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.add(task_where, f"expected a Label Studio task with `data`; found {_describe(task)}")
            continue
        data = task["data"]
        item_id = _text(
            data.get("item_id"), "data.item_id (tasks made by `cxrvqa review sample`)", task_where, problems
        )
        for position, annotation in enumerate(task.get("annotations") or [], start=1):
            number_ = annotation.get("id", position) if isinstance(annotation, dict) else position
            where = f"{task_where}, annotation {number_}"
            if not isinstance(annotation, dict) or not isinstance(annotation.get("result", []), list):
                problems.add(where, f"expected an annotation with a `result` list; found {_describe(annotation)}")
                continue
            if annotation.get("was_cancelled"):
                continue
            values: dict[str, Any] = {}
            for result in annotation.get("result", []):
                if isinstance(result, dict) and isinstance(result.get("value"), dict):
                    value = result["value"]
                    values[result.get("from_name")] = value.get("choices", value.get("text"))
            if "verdict" not in values:
                problems.add(
                    where,
                    "expected a `verdict` choice in the result (the labeling config of "
                    f"`cxrvqa review sample`); found results {sorted(map(str, values)) or 'none'}",
                )
                continue
            version = _text(data.get("item_version"), "data.item_version", where, problems, required=False)
            at = _time(annotation.get("updated_at") or annotation.get("created_at"), where, problems)
            verdict = _tool_verdict(
                where, item_id, values, _annotator(annotation.get("completed_by")), version, at, problems
            )
            if verdict is not None:
                found.append(verdict)
    return found


def _argilla_responses(record: dict[str, Any]) -> dict[str, list[tuple[Any, Any, Any]]]:
    """Per question: (value, user, status) of every response, from nested or flattened records."""
    found: dict[str, list[tuple[Any, Any, Any]]] = {}
    nested = record.get("responses")
    if isinstance(nested, dict):
        for question, answers in nested.items():
            for answer in answers if isinstance(answers, list) else [answers]:
                if isinstance(answer, dict):
                    found.setdefault(question, []).append(
                        (answer.get("value"), answer.get("user_id"), answer.get("status"))
                    )
    for key, values in record.items():
        if key.endswith(".responses") and isinstance(values, list):
            question = key[: -len(".responses")]
            users = record.get(f"{key}.users") or [None] * len(values)
            statuses = record.get(f"{key}.status") or [None] * len(values)
            found.setdefault(question, []).extend(zip(values, users, statuses, strict=False))
    return found


def _argilla(records: list[Any], problems: _Problems) -> list[Verdict]:
    found = []
    for number, record in enumerate(records, start=1):
        record_where = f"record {number}"
        if not isinstance(record, dict):
            problems.add(record_where, f"expected an Argilla record; found {_describe(record)}")
            continue
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else record
        item_id = _text(
            record.get("id"), "id (the item id, records made by `cxrvqa review sample`)", record_where, problems
        )
        by_user: dict[str, dict[str, Any]] = {}
        for question, answers in _argilla_responses(record).items():
            for value, user, status in answers:
                if status not in (None, "submitted"):
                    continue
                by_user.setdefault(str(user), {})[question] = value
        for user, values in by_user.items():
            where = f"{record_where}, user {user}"
            if "verdict" not in values:
                problems.add(where, f"expected a response to `verdict`; found responses to {sorted(values)}")
                continue
            version = _text(metadata.get("item_version"), "metadata.item_version", where, problems, required=False)
            verdict = _tool_verdict(where, item_id, values, None if user == "None" else user, version, None, problems)
            if verdict is not None:
                found.append(verdict)
    return found


def _json_lines(text: str, problems: _Problems) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(
                f"line {number}", f"expected a JSON object; found invalid JSON ({exc.msg} at column {exc.colno})"
            )


def detect_format(document: Any) -> str | None:
    """The format of a parsed JSON document; None for JSON lines (or what no format fits)."""
    if isinstance(document, dict):
        return "html" if "format" in document and "verdicts" in document else "jsonl"
    if isinstance(document, list) and document and all(isinstance(r, dict) for r in document):
        if all("annotations" in r or ("data" in r and "verdict" not in r) for r in document):
            return "label-studio"
        if all("responses" in r or any(k.endswith(".responses") for k in r) or "fields" in r for r in document):
            return "argilla"
        return "jsonl"
    return None


def read_verdicts(path: Path, fmt: str | None = None) -> tuple[str, list[Verdict]]:
    """(format, verdicts) of a file; an InputError naming every problem when anything is wrong."""
    found, verdicts, problems = parse_verdicts(path, fmt)
    if problems:
        raise file_error(path, found, problems)
    return found, verdicts


def parse_verdicts(path: Path, fmt: str | None = None) -> tuple[str, list[Verdict], list[str]]:
    """(format, the verdicts that could be read, every problem found); an InputError only when the file cannot
    be read at all or is of no known format."""
    if fmt is not None and fmt not in FORMATS:
        raise InputError("--format", f"one of {', '.join(FORMATS)}", repr(fmt))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "a readable UTF-8 verdicts file", f"{type(exc).__name__}: {exc}") from exc
    problems = _Problems()
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        document = None  # JSON lines (or not JSON at all: each line says so)
    found = fmt or (detect_format(document) if document is not None else "jsonl")
    if found is None:
        raise InputError(
            str(path),
            "review verdicts: the review page's saved file, a Label Studio or Argilla "
            "export, or JSON lines {item_id, verdict, grammar, note}",
            f"JSON of another shape ({_describe(document)})",
        )
    if found == "html":
        verdicts = _page(document, problems) if isinstance(document, dict) else []
        if not isinstance(document, dict):
            problems.add("the file", f"expected the review page's saved JSON object; found {_describe(document)}")
    elif found in ("label-studio", "argilla"):
        if isinstance(document, list):
            verdicts = (_label_studio if found == "label-studio" else _argilla)(document, problems)
        else:
            verdicts = []
            problems.add(
                "the file",
                f"expected a JSON list of {'tasks' if found == 'label-studio' else 'records'}; "
                f"found {_describe(document)}",
            )
    elif isinstance(document, list):
        verdicts = _plain(((f"record {n}", r) for n, r in enumerate(document, start=1)), problems)
    else:
        verdicts = _plain(_json_lines(text, problems), problems)
    if not verdicts and not problems.found:
        problems.add("the file", "expected at least one verdict; found none")
    return found, verdicts, problems.found


def file_error(path: Path, fmt: str, problems: list[str]) -> InputError:
    """One error naming every problem of a file (the first MAX_PROBLEMS, then how many more)."""
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    return InputError(
        str(path), f"review verdicts ({fmt})", f"{len(problems)} problem(s): {shown}{more}. Nothing was imported"
    )
