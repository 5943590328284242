"""Asking an OpenAI-compatible server for structured answers: shared by the `llm` extraction backend
and the LLM judge of validation (both use `extraction.llm`'s connection settings).

One exchange = up to `max_attempts` requests: server errors, rate limits and timeouts wait and retry
(honouring Retry-After); an answer the caller's `accept` rejects (ResponseError) is re-asked with the
error shown to the model; a refusal or a client error ends it. Every request becomes a call row
(the `llm_calls` table), so what a run spent is always on record. The API key is read from the
environment and never stored.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Generic, TypeVar

import jsonschema
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from cxrvqa.config import LLMConfig
from cxrvqa.core.resources import load_json_schema, load_yaml, resource
from cxrvqa.errors import ResourceError

T = TypeVar("T")
#: Outcomes after which asking again cannot help (cached, not retried by the next build).
TERMINAL = {"refusal", "client_error", "invalid_response", "truncated"}


class ResponseError(ValueError):
    """An answer the model must be asked again about; the message is shown to it."""


@lru_cache(maxsize=1)
def jinja() -> SandboxedEnvironment:
    """The environment prompts are rendered in: sandboxed, and a missing variable is an error."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=16)
def compiled(body: str) -> Any:
    return jinja().from_string(body)


def read_prompt(
    kind: str, prompt_id: str, front_matter_schema: str, check_example: Callable[[dict[str, Any]], object]
) -> tuple[dict[str, Any], str, str]:
    """(front matter, template body, whole text) of ``prompts/<kind>/<prompt_id>.md``: YAML front matter checked
    against ``schemas/<front_matter_schema>``, each of its examples by ``check_example`` (which raises
    ResponseError for an example whose answer the model could not give), then a Jinja template with a
    `system` and a `user` block."""
    name = f"prompts/{kind}/{prompt_id}.md"
    node = resource("prompts", kind, f"{prompt_id}.md")
    if not re.fullmatch(r"[a-z0-9_]+", prompt_id) or not node.is_file():
        raise ResourceError(name, f"no such prompt (ids are file names in prompts/{kind}/)")
    text = node.read_text(encoding="utf-8")
    parts = text.split("---\n", 2)
    if len(parts) != 3 or parts[0]:
        raise ResourceError(name, "expected YAML front matter between '---' lines, then the template")
    meta = load_yaml(parts[1])
    problems = sorted(
        jsonschema.Draft202012Validator(load_json_schema(front_matter_schema)).iter_errors(meta),
        key=lambda e: list(e.path),
    )
    if problems:
        raise ResourceError(
            name, "; ".join(f"{'/'.join(map(str, p.path)) or 'front matter'}: {p.message}" for p in problems)
        )
    for number, example in enumerate(meta.get("examples", []), start=1):
        try:
            check_example(example)
        except ResponseError as exc:
            raise ResourceError(name, f"example {number}: {exc}") from exc
    if meta["id"] != prompt_id:
        raise ResourceError(name, f"front matter id {meta['id']!r} differs from the file name")
    try:
        template = jinja().from_string(parts[2])
    except Exception as exc:  # noqa: BLE001 - jinja's syntax errors, named with the file
        raise ResourceError(name, f"template error: {exc}") from exc
    missing = {"system", "user"} - set(template.blocks)
    if missing:
        raise ResourceError(name, f"template lacks block(s) {sorted(missing)}")
    return meta, parts[2], text


def render_messages(body: str, variables: dict[str, Any]) -> list[dict[str, str]]:
    """The system and user messages of a prompt template with `system` and `user` blocks."""
    template = compiled(body)
    context = template.new_context(variables)
    system, user = ("".join(template.blocks[name](context)).strip() for name in ("system", "user"))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def api_key(settings: LLMConfig) -> str:
    """The key from the environment; local servers (vLLM, Ollama, llama.cpp) accept any value."""
    return os.environ.get(settings.api_key_env) or "no-key"


@dataclass
class Budget:
    """Requests and tokens left for this run (None: unlimited). A request is reserved before it is
    sent (no await in between, so concurrent coroutines cannot overspend); tokens are counted after."""

    requests_left: int | None
    tokens_left: int | None

    @classmethod
    def left(cls, settings: LLMConfig, spent_requests: int, spent_tokens: int) -> Budget:
        return cls(
            None if settings.max_requests is None else settings.max_requests - spent_requests,
            None if settings.max_tokens is None else settings.max_tokens - spent_tokens,
        )

    def reserve(self) -> bool:
        if self.tokens_left is not None and self.tokens_left <= 0:
            return False
        if self.requests_left is not None:
            if self.requests_left <= 0:
                return False
            self.requests_left -= 1
        return True

    def spend_tokens(self, tokens: int) -> None:
        if self.tokens_left is not None:
            self.tokens_left -= tokens


@dataclass
class Exchange(Generic[T]):
    """The end of one exchange: the accepted value, or the last outcome and its error."""

    value: T | None = None
    outcome: str = "server_error"  # ok | invalid_response | truncated | refusal | rate_limited | ...
    error: str = ""
    raw: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    tokens: tuple[int, int] = (0, 0)

    @property
    def attempts(self) -> int:
        return len(self.calls)

    @property
    def terminal(self) -> bool:
        """Whether the outcome (success or a failure asking again cannot fix) is worth caching."""
        return self.outcome == "ok" or self.outcome in TERMINAL


def retry_after(headers: Any, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (ms or s) if given, else exponential backoff with jitter."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        try:
            if value is not None:
                return min(float(value) * scale, 60.0)
        except ValueError:
            pass
    return min(0.5 * 2 ** (attempt - 1), 30.0) * (1 + random.random() / 4)


async def ask(
    client: Any,
    settings: LLMConfig,
    messages: list[dict[str, str]],
    response_format: dict[str, Any],
    accept: Callable[[str], T],
    semaphore: asyncio.Semaphore,
    budget: Budget,
    call_row: dict[str, Any],
) -> Exchange[T]:
    """One exchange about one input. `accept` turns the answer text into the caller's value or raises
    ResponseError; `call_row` holds the fields every `llm_calls` row of this input shares
    (run_id, study_id, cache_key)."""
    exchange: Exchange[T] = Exchange()
    conversation = list(messages)
    prompt_tokens = completion_tokens = 0
    for attempt in range(1, settings.max_attempts + 1):
        async with semaphore:
            if not budget.reserve():
                exchange.outcome, exchange.error = "budget_exhausted", "the run's request/token budget is spent"
                break
            started = time.perf_counter()
            outcome, status, error, wait, usage = await _attempt(
                client, settings, conversation, response_format, accept, attempt, exchange
            )
        budget.spend_tokens(sum(usage))
        prompt_tokens += usage[0]
        completion_tokens += usage[1]
        exchange.outcome, exchange.error = outcome, error
        exchange.calls.append(
            {
                **call_row,
                "attempt": attempt,
                "outcome": outcome,
                "http_status": status,
                "seconds": time.perf_counter() - started,
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "detail": error[:500] or None,
                "created_at": datetime.now(timezone.utc),
            }
        )
        if outcome == "ok" or outcome in ("refusal", "client_error"):
            break
        if outcome in ("invalid_response", "truncated"):
            conversation = _reask(messages, exchange.raw, error)
        elif attempt < settings.max_attempts:
            await asyncio.sleep(wait)
    exchange.tokens = (prompt_tokens, completion_tokens)
    return exchange


async def _attempt(
    client: Any,
    settings: LLMConfig,
    conversation: list[dict[str, str]],
    response_format: dict[str, Any],
    accept: Callable[[str], T],
    attempt: int,
    exchange: Exchange[T],
) -> tuple[str, int | None, str, float, tuple[int, int]]:
    """One request: (outcome, HTTP status, error, seconds to wait before a retry, (prompt, completion) tokens).
    Sets the exchange's raw answer and, when the answer is accepted, its value."""
    import openai

    wait = 0.0
    status: int | None = None
    try:
        response = await client.chat.completions.create(
            model=settings.model,
            messages=conversation,
            temperature=settings.temperature,
            response_format=response_format,
        )
    except openai.RateLimitError as exc:
        outcome, status, error = "rate_limited", exc.status_code, f"HTTP 429: {exc.message}"
        wait = retry_after(exc.response.headers, attempt)
    except openai.APITimeoutError:
        outcome, error = "timeout", f"no answer within {settings.timeout_s:g} s"
        wait = retry_after(None, attempt)
    except openai.APIConnectionError as exc:
        outcome, error = "connection_error", f"cannot reach {settings.base_url}: {exc.message}"
        wait = retry_after(None, attempt)
    except openai.APIStatusError as exc:
        status, error = exc.status_code, f"HTTP {exc.status_code}: {exc.message}"
        outcome = "server_error" if exc.status_code >= 500 else "client_error"
        wait = retry_after(exc.response.headers, attempt)
    else:
        usage = (response.usage.prompt_tokens, response.usage.completion_tokens) if response.usage else (0, 0)
        choice = response.choices[0]
        exchange.raw = choice.message.content
        outcome, error = _judge_answer(choice, accept, exchange)
        return outcome, status, error, wait, usage
    return outcome, status, error, wait, (0, 0)


def _judge_answer(choice: Any, accept: Callable[[str], T], exchange: Exchange[T]) -> tuple[str, str]:
    """(outcome, error) of an answer that arrived: refused, cut off, not usable, or ok (then its value is set)."""
    if choice.message.refusal:
        return "refusal", f"the model refused: {choice.message.refusal}"
    if choice.finish_reason == "length":
        return "truncated", "the answer was cut off at the token limit (finish_reason=length)"
    try:
        exchange.value = accept(exchange.raw or "")
    except ResponseError as exc:
        return "invalid_response", str(exc)
    return "ok", ""


def _reask(messages: list[dict[str, str]], raw: str | None, error: str) -> list[dict[str, str]]:
    """The conversation that asks again after an unusable answer; the input is repeated in the re-ask, so that
    the last message is complete on its own."""
    return [
        *messages,
        {"role": "assistant", "content": raw or ""},
        {
            "role": "user",
            "content": f"That answer was not usable: {error}. Answer again with the "
            f"complete JSON object only.\n\n{messages[-1]['content']}",
        },
    ]


def run_concurrently(
    settings: LLMConfig, jobs: list[Any], one: Callable[[Any, Any, asyncio.Semaphore], Awaitable[T]]
) -> list[T]:
    """`one(client, job, semaphore)` for every job, at most `max_concurrency` requests in flight, in
    job order; one client (connection pool) for all."""
    if not jobs:
        return []

    async def everything() -> list[T]:
        from openai import AsyncOpenAI

        semaphore = asyncio.Semaphore(settings.max_concurrency)
        async with AsyncOpenAI(
            base_url=settings.base_url, api_key=api_key(settings), timeout=settings.timeout_s, max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, job, semaphore) for job in jobs))

    return asyncio.run(everything())
