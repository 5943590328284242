"""The LLM request cache (`llm_cache`) and the run's request budget (`llm_calls`), shared by the `llm`
extraction backend and the LLM judge, so that both key, find and store answers the same way.

An answer the caller accepted and a terminal error (asking again cannot help) are cached by
(input hash, prompt hash, model, parameters); transient errors are not, so the next build retries
them. Rows are returned, not written: each stage writes them with its batch, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cxrvqa.config import LLMConfig
from cxrvqa.core.llm_client import Budget, Exchange
from cxrvqa.core.provenance import stable_hash
from cxrvqa.store import Store

_KEYS = "cache_key IN (SELECT unnest(?::VARCHAR[]))"


@dataclass(frozen=True)
class CacheEntry:
    status: str  # ok | error
    response: str | None  # the accepted answer (ok) or the last raw answer (error)
    error: str | None


@dataclass(frozen=True)
class LLMCache:
    """The cache of one prompt, model and parameter set; picklable and free of secrets."""

    settings: LLMConfig
    prompt_hash: str
    params_hash: str

    def key(self, input_hash: str) -> str:
        return stable_hash(
            {"input": input_hash, "prompt": self.prompt_hash, "model": self.settings.model, "params": self.params_hash},
            length=24,
        )

    def lookup(self, store: Store, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The cached entries of these keys (absent keys were never answered terminally)."""
        return {
            key: CacheEntry(status, response, error)
            for key, status, response, error in store.query(
                f"SELECT cache_key, status, response, error FROM llm_cache WHERE {_KEYS}", [list(keys)]
            )
        }

    def budget(self, store: Store, run_id: str) -> Budget:
        """What this run may still spend: the settings' limits less the requests and tokens it has logged."""
        spent_requests, spent_tokens = store.query(
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0) FROM llm_calls WHERE run_id = ?",
            [run_id],
        )[0]
        return Budget.left(self.settings, spent_requests, spent_tokens)

    def row(
        self, key: str, study_id: str, input_hash: str, exchange: Exchange[Any], run_id: str, now: datetime
    ) -> dict[str, Any] | None:
        """The `llm_cache` row that stores the end of an exchange: its accepted answer (status ok) or its
        terminal error; None for a transient error, which the next build asks again."""
        if not exchange.terminal:
            return None
        ok = exchange.value is not None
        return {
            "cache_key": key,
            "study_id": study_id,
            "input_hash": input_hash,
            "prompt_hash": self.prompt_hash,
            "model": self.settings.model,
            "params_hash": self.params_hash,
            "status": "ok" if ok else "error",
            "response": exchange.raw,
            "error": None if ok else exchange.error[:2000] or None,
            "attempts": exchange.attempts,
            "run_id": run_id,
            "created_at": now,
        }

    def forget_errors(self, store: Store, keys: list[str]) -> None:
        """Drop the terminal errors of these keys, so that the answers to asking again replace them."""
        store.con.execute(f"DELETE FROM llm_cache WHERE status = 'error' AND {_KEYS}", [keys])
