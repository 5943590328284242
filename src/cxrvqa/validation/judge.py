"""The optional LLM judge: MIMIC-Ext-CXR-QBA's quality criteria (entailment by the report, relevance,
completeness, question clarity, answer clarity), asked of the server and model of the `llm` extraction
backend, one request per QA item, after the rule-based validators.

Criteria and their ordered value scales are data (schemas/vocab/judge_criteria.yaml); the response
schema is generated from them. Each value caps the grade; the verdict is the weakest value, which
becomes a `validation_results` row (validator `llm_judge`) and lowers the item's grade to at most
that cap. Verdicts and terminal errors are cached in `llm_cache` by (the item's question, options,
answer and report text, prompt, model, parameters), so an unchanged item is never asked twice;
every request is an `llm_calls` row and every failure a `judge_results` row with its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache, partial
from typing import Any

import jsonschema

from cxrvqa.config import Config, LLMConfig
from cxrvqa.core.grading import grading, judge_capped
from cxrvqa.core.llm_cache import LLMCache
from cxrvqa.core.llm_client import Budget, ResponseError, ask, read_prompt, render_messages, run_concurrently
from cxrvqa.core.provenance import stable_hash
from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.errors import ConfigError, ResourceError
from cxrvqa.store import StageCounts, Store, in_studies, study_params

CRITERIA_FILE = "schemas/vocab/judge_criteria.yaml"
VALIDATOR = "llm_judge"


@dataclass(frozen=True)
class Criterion:
    id: str
    question: str
    values: tuple[tuple[str, int, str], ...]  # (value, grade code it caps at, meaning), best first


@dataclass(frozen=True)
class Criteria:
    version: int
    criteria: tuple[Criterion, ...]
    content_hash: str

    def response_schema(self) -> dict[str, Any]:
        """What the model must answer: one value per criterion and a rationale, nothing else."""
        properties: dict[str, Any] = {
            c.id: {"type": "string", "enum": [v for v, _, _ in c.values]} for c in self.criteria
        }
        properties["rationale"] = {"type": "string"}
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}

    def cap(self, verdict: dict[str, str]) -> tuple[int, str]:
        """(grade code, 'criterion=value') of the weakest value; '' when no value caps below the best grade."""
        grade, weakest = grading().best, ""
        for criterion in self.criteria:
            code = next(c for v, c, _ in criterion.values if v == verdict[criterion.id])
            if code < grade:
                grade, weakest = code, f"{criterion.id}={verdict[criterion.id]}"
        return grade, weakest


@lru_cache(maxsize=1)
def judge_criteria() -> Criteria:
    data, digest = load_checked_yaml(CRITERIA_FILE, "judge_criteria.schema.json")
    rules = grading()
    labels = {label for _, label, _ in rules.levels}
    criteria = []
    for item in data["criteria"]:
        values = [v["value"] for v in item["values"]]
        if len(set(values)) != len(values):
            raise ResourceError(CRITERIA_FILE, f"criterion {item['id']!r} repeats a value: {values}")
        unknown = sorted({v["grade"] for v in item["values"]} - labels)
        if unknown:
            raise ResourceError(
                CRITERIA_FILE, f"criterion {item['id']!r} names undefined grades {unknown}; grades are {sorted(labels)}"
            )
        codes = [rules.code(v["grade"]) for v in item["values"]]
        if codes[0] != rules.best or codes != sorted(codes, reverse=True):
            raise ResourceError(
                CRITERIA_FILE,
                f"criterion {item['id']!r}: values must run from best to worst, "
                f"the first capping nothing ({rules.label(rules.best)})",
            )
        criteria.append(
            Criterion(
                item["id"],
                item["question"],
                tuple((v["value"], code, v["meaning"]) for v, code in zip(item["values"], codes, strict=True)),
            )
        )
    if len({c.id for c in criteria}) != len(criteria) or "rationale" in {c.id for c in criteria}:
        raise ResourceError(CRITERIA_FILE, "criterion ids must be unique and not 'rationale'")
    return Criteria(data["version"], tuple(criteria), digest)


@lru_cache(maxsize=1)
def _verdict_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(judge_criteria().response_schema())


def parse_verdict(content: str) -> dict[str, str]:
    """The validated verdict, else ResponseError (shown to the model when it is asked again)."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ResponseError(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from exc
    errors = sorted(_verdict_validator().iter_errors(data), key=lambda e: list(e.path))
    if errors:
        shown = "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5])
        raise ResponseError(f"the answer does not match the JSON Schema: {shown}")
    return data


@dataclass(frozen=True)
class JudgePrompt:
    id: str
    meta: dict[str, Any]
    body: str
    hash: str  # template text + criteria: a change to either judges again

    def messages(
        self,
        sentences: list[dict[str, Any]],
        question: str,
        options: list[str] | None,
        answer: str,
        schema_in_prompt: bool,
    ) -> list[dict[str, str]]:
        criteria = judge_criteria()
        return render_messages(
            self.body,
            {
                "criteria": [
                    {"id": c.id, "question": c.question, "values": [{"value": v, "meaning": m} for v, _, m in c.values]}
                    for c in criteria.criteria
                ],
                "examples": self.meta.get("examples", []),
                "schema_in_prompt": schema_in_prompt,
                "response_schema": criteria.response_schema(),
                "question": question,
                "options": options or [],
                "answer": answer,
                "sentences": [{**s, "text": s["text"].replace("\r", " ").replace("\n", " ")} for s in sentences],
            },
        )


@lru_cache(maxsize=4)
def load_judge_prompt(prompt_id: str) -> JudgePrompt:
    meta, body, text = read_prompt(
        "judge", prompt_id, "judge_prompt.schema.json", lambda example: parse_verdict(json.dumps(example["verdict"]))
    )
    return JudgePrompt(prompt_id, meta, body, stable_hash({"text": text, "criteria": judge_criteria().content_hash}))


@dataclass(frozen=True)
class JudgeContext:
    """What a judge batch needs; picklable and free of secrets."""

    config: Config
    cache: LLMCache  # its settings: extraction.llm's connection, with the judge's model
    judge_version: str
    min_grade: int

    @property
    def settings(self) -> LLMConfig:
        return self.cache.settings


def prepare_judge(config: Config) -> JudgeContext | None:
    """The judge's batch context, or None when it is not enabled; a bad setting fails here, before any request."""
    judge = config.judge
    if not judge.enabled:
        return None
    llm = config.extraction.llm
    if not llm.base_url or not (judge.model or llm.model):
        raise ConfigError(
            "judge",
            "the judge asks the server of extraction.llm: set its base_url and a model "
            "(--llm-base-url URL --llm-model NAME, or judge.model)",
        )
    rules = grading()
    if judge.min_grade not in {label for _, label, _ in rules.levels}:
        raise ConfigError(
            "judge.min_grade",
            f"unknown grade {judge.min_grade!r}; grades are {[label for _, label, _ in rules.levels]}",
        )
    import openai  # noqa: F401  (once per process, before the first batch's requests)

    prompt = load_judge_prompt(judge.prompt)
    params = stable_hash({"temperature": llm.temperature, "response_mode": llm.response_mode})
    settings = llm.model_copy(update={"model": judge.model or llm.model})
    version = stable_hash({"prompt": prompt.hash, "model": settings.model, "params": params})
    return JudgeContext(config, LLMCache(settings, prompt.hash, params), version, rules.code(judge.min_grade))


def pending_items(store: Store, context: JudgeContext) -> tuple[int, list[tuple[str, str, str]]]:
    """(items eligible by grade, the keys of those not yet judged by this judge version, at most max_items):
    an item is done when it has a verdict or a terminal failure of this version."""
    eligible = store.query("SELECT count(*) FROM current_qa_grades WHERE rule_grade >= ?", [context.min_grade])[0][0]
    limit = context.config.judge.max_items
    rows = store.query(
        "SELECT g.item_id, g.template_version, g.input_hash FROM current_qa_grades g "
        "WHERE g.rule_grade >= ? AND NOT EXISTS (SELECT 1 FROM judge_results j "
        "WHERE j.item_id = g.item_id AND j.template_version = g.template_version AND j.input_hash = g.input_hash "
        "AND j.judge_version = ? AND (j.status = 'ok' OR j.terminal)) ORDER BY g.item_id"
        + ("" if limit is None else f" LIMIT {int(limit)}"),
        [context.min_grade, context.judge_version],
    )
    return eligible, [tuple(row) for row in rows]


def _items(store: Store, keys: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The items with their current grade row and report sentences."""
    items = store.query_dicts(
        "SELECT q.item_id, q.template_version, q.input_hash, q.study_id, q.question, q.answer, q.options, "
        "g.rule_grade, g.rule_weakest, g.validators_version "
        "FROM current_qa_items q JOIN current_qa_grades g USING (item_id, template_version, input_hash) "
        "JOIN (SELECT unnest(?::VARCHAR[]) AS item_id, unnest(?::VARCHAR[]) AS template_version, "
        "unnest(?::VARCHAR[]) AS input_hash) k USING (item_id, template_version, input_hash) ORDER BY q.item_id",
        [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
    )
    sentences: dict[str, list[dict[str, Any]]] = {}
    for study, sentence_id, section, text in store.query(
        "SELECT study_id, sentence_id, section, text FROM current_sentences "
        f"WHERE {in_studies('study_id')} ORDER BY study_id, sentence_id",
        study_params(sorted({i["study_id"] for i in items})),
    ):
        sentences.setdefault(study, []).append({"id": sentence_id, "section": section, "text": text})
    for item in items:
        item["sentences"] = sentences.get(item["study_id"], [])
    return items


async def _judge_one(
    client: Any, job: tuple[dict[str, Any], str], semaphore: Any, context: JudgeContext, budget: Budget, run_id: str
) -> Any:
    item, key = job
    settings = context.settings
    json_schema_mode = settings.response_mode == "json_schema"
    messages = load_judge_prompt(context.config.judge.prompt).messages(
        item["sentences"], item["question"], item["options"], item["answer"], schema_in_prompt=not json_schema_mode
    )
    response_format = (
        {
            "type": "json_schema",
            "json_schema": {"name": "qa_judgement", "strict": True, "schema": judge_criteria().response_schema()},
        }
        if json_schema_mode
        else {"type": "json_object"}
    )
    return await ask(
        client,
        settings,
        messages,
        response_format,
        parse_verdict,
        semaphore,
        budget,
        {"run_id": run_id, "study_id": item["study_id"], "cache_key": key},
    )


def _verdict_rows(
    item: dict[str, Any], verdict: dict[str, str], context: JudgeContext, key: str, run_id: str, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """The judge_results, validation_results and qa_grades rows of one verdict."""
    rules = grading()
    criteria = judge_criteria()
    cap, weakest = criteria.cap(verdict)
    ident = {k: item[k] for k in ("item_id", "template_version", "input_hash")}
    values = {c.id: verdict[c.id] for c in criteria.criteria}
    reject_at = rules.code(rules.caps["validator_reject"])
    status = "ok" if cap == rules.best else "reject" if cap <= reject_at else "warn"
    detail = ", ".join(f"{c}={v}" for c, v in values.items()) + f". {verdict['rationale']}"
    return {
        "judge_results": [
            {
                **ident,
                "judge_version": context.judge_version,
                "status": "ok",
                "verdict": json.dumps(values),
                "rationale": verdict["rationale"],
                "grade": cap,
                "weakest": weakest,
                "reason": None,
                "error": None,
                "terminal": True,
                "cache_key": key,
                "run_id": run_id,
                "created_at": now,
            }
        ],
        "validation_results": [
            {
                **ident,
                "validator": VALIDATOR,
                "validator_version": criteria.version,
                "strictness": "reject" if status == "ok" else status,
                "status": status,
                "reason": None if status == "ok" else f"judge_{weakest.replace('=', '_')}",
                "detail": detail[:2000],
                "validators_version": context.judge_version,
                "run_id": run_id,
                "created_at": now,
            }
        ],
        "qa_grades": [{**ident, **_lowered_grade(item, cap, weakest, context), "run_id": run_id, "created_at": now}],
    }


def _lowered_grade(item: dict[str, Any], cap: int, weakest: str, context: JudgeContext) -> dict[str, Any]:
    """The grade columns of the item's qa_grades row: its rule-based grade, lowered to the verdict's cap."""
    rules = grading()
    grade, grade_weakest = judge_capped(item["rule_grade"], item["rule_weakest"], cap, weakest)
    return {
        "grade": grade,
        "label": rules.label(grade),
        "weakest": grade_weakest,
        "grading_version": stable_hash({"grading": rules.content_hash, "judge": context.judge_version}),
        "validators_version": item["validators_version"],
        "rule_grade": item["rule_grade"],
        "rule_weakest": item["rule_weakest"],
    }


def judge_batch(store: Store, run_id: str, keys: list[tuple[str, str, str]], context: JudgeContext) -> StageCounts:
    """Judge these items (cache first, then the server, concurrently) and write verdicts, failures,
    cache rows, request log and the lowered grades, committed as a whole."""
    items = _items(store, keys)
    now = datetime.now(timezone.utc)
    tables: dict[str, list[dict[str, Any]]] = {
        t: [] for t in ("judge_results", "validation_results", "qa_grades", "llm_cache", "llm_calls")
    }
    keyed = []
    for item in items:
        content = _content_hash(item)
        keyed.append((item, content, context.cache.key(content)))
    cached = context.cache.lookup(store, [key for _, _, key in keyed])
    budget = context.cache.budget(store, run_id)
    jobs, sharing = [], {}  # items whose content (hence cache key) another item of the batch asks already:
    for item, _, key in keyed:  # the same question on a study's PA and lateral images is asked once
        hit = cached.get(key)
        if hit is None and key in sharing:
            sharing[key].append(item)
        elif hit is None:
            sharing[key] = []
            jobs.append((item, key))
        elif hit.status == "ok":
            _extend(tables, _verdict_rows(item, json.loads(hit.response), context, key, run_id, now))
        else:
            tables["judge_results"].append(
                _failure(item, context, key, run_id, now, "llm_cached_error", hit.error, terminal=True)
            )
    outcomes = run_concurrently(
        context.settings, jobs, partial(_judge_one, context=context, budget=budget, run_id=run_id)
    )
    contents = {key: content for _, content, key in keyed}
    for (item, key), exchange in zip(jobs, outcomes, strict=True):
        tables["llm_calls"].extend(exchange.calls)
        cache_row = context.cache.row(key, item["study_id"], contents[key], exchange, run_id, now)
        if cache_row is not None:
            tables["llm_cache"].append(cache_row)
        for asked in (item, *sharing[key]):
            if exchange.value is not None:
                _extend(tables, _verdict_rows(asked, exchange.value, context, key, run_id, now))
            else:
                tables["judge_results"].append(
                    _failure(
                        asked,
                        context,
                        key,
                        run_id,
                        now,
                        f"llm_{exchange.outcome}",
                        exchange.error,
                        terminal=exchange.terminal,
                    )
                )
    with store.transaction():
        for table, rows in tables.items():
            store.insert(table, rows)
    judged = len(tables["validation_results"])
    return StageCounts(n_input=len(items), n_done=judged, n_rejected=len(items) - judged)


def _content_hash(item: dict[str, Any]) -> str:
    """What a verdict depends on: the item's question, options and answer and its report's text."""
    return stable_hash(
        {
            "question": item["question"],
            "options": item["options"],
            "answer": item["answer"],
            "report": [[s["section"], s["text"]] for s in item["sentences"]],
        }
    )


def _failure(
    item: dict[str, Any],
    context: JudgeContext,
    key: str,
    run_id: str,
    now: datetime,
    reason: str,
    error: str | None,
    terminal: bool,
) -> dict[str, Any]:
    return {
        "item_id": item["item_id"],
        "template_version": item["template_version"],
        "input_hash": item["input_hash"],
        "judge_version": context.judge_version,
        "status": "failed",
        "verdict": None,
        "rationale": None,
        "grade": None,
        "weakest": None,
        "reason": reason,
        "error": f"item {item['item_id']!r}: {error or ''}"[:2000],
        "terminal": terminal,
        "cache_key": key,
        "run_id": run_id,
        "created_at": now,
    }


def _extend(tables: dict[str, list[dict[str, Any]]], rows: dict[str, list[dict[str, Any]]]) -> None:
    for table, new in rows.items():
        tables[table].extend(new)
