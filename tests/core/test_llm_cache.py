"""The LLM request cache alone: keys, lookup, the run's budget, the rows that store results and errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cxrvqa.config import LLMConfig
from cxrvqa.core.llm_cache import CacheEntry, LLMCache
from cxrvqa.core.llm_client import Budget, Exchange
from cxrvqa.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _cache(**settings: object) -> LLMCache:
    return LLMCache(LLMConfig(base_url="http://localhost:1/v1", model="m1", **settings), "p" * 16, "q" * 16)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "db.duckdb") as opened:
        yield opened


def _call(run_id: str, prompt_tokens: int, completion_tokens: int) -> dict[str, object]:
    return {
        "run_id": run_id,
        "study_id": "s1",
        "cache_key": "k",
        "attempt": 1,
        "outcome": "ok",
        "http_status": None,
        "seconds": 0.1,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "detail": None,
        "created_at": NOW,
    }


def test_the_key_is_the_one_stored_by_earlier_versions() -> None:
    """Keys live in existing databases: a changed formula would ask every cached question again."""
    cache = _cache()
    assert cache.key("input-1") == "af07d054b0e8afa557e37d4c"
    assert (
        len(
            {
                cache.key("input-1"),
                cache.key("input-2"),
                LLMCache(cache.settings, "other", "q" * 16).key("input-1"),
                LLMCache(cache.settings, "p" * 16, "other").key("input-1"),
                LLMCache(cache.settings.model_copy(update={"model": "m2"}), "p" * 16, "q" * 16).key("input-1"),
            }
        )
        == 5
    )


def test_lookup_finds_answers_and_terminal_errors_of_the_keys_asked(store: Store) -> None:
    cache = _cache()
    ok = cache.row("k1", "s1", "i1", Exchange(value=1, outcome="ok", raw='{"a": 1}', calls=[{}]), "r1", NOW)
    error = cache.row("k2", "s2", "i2", Exchange(outcome="refusal", error="no", raw="sorry", calls=[{}, {}]), "r1", NOW)
    store.insert("llm_cache", [ok, error])
    assert cache.lookup(store, ["k1", "k2", "k3"]) == {
        "k1": CacheEntry("ok", '{"a": 1}', None),
        "k2": CacheEntry("error", "sorry", "no"),
    }
    assert cache.lookup(store, ["k2"]) == {"k2": CacheEntry("error", "sorry", "no")}
    assert cache.lookup(store, []) == {}


def test_budget_is_the_limits_less_what_this_run_logged(store: Store) -> None:
    store.insert("llm_calls", [_call("r1", 30, 70), _call("r1", 100, 0), _call("r2", 500, 500)])
    assert _cache(max_requests=10, max_tokens=1000).budget(store, "r1") == Budget(8, 800)
    assert _cache(max_requests=10, max_tokens=1000).budget(store, "r3") == Budget(10, 1000)
    assert _cache().budget(store, "r1") == Budget(None, None)


def test_row_stores_an_accepted_answer() -> None:
    exchange = Exchange(value={"x": 1}, outcome="ok", raw='{"x": 1}', calls=[{}, {}])
    assert _cache().row("k1", "s1", "i1", exchange, "r1", NOW) == {
        "cache_key": "k1",
        "study_id": "s1",
        "input_hash": "i1",
        "prompt_hash": "p" * 16,
        "model": "m1",
        "params_hash": "q" * 16,
        "status": "ok",
        "response": '{"x": 1}',
        "error": None,
        "attempts": 2,
        "run_id": "r1",
        "created_at": NOW,
    }


def test_row_stores_a_terminal_error_cut_to_2000_characters() -> None:
    exchange = Exchange(outcome="invalid_response", error="e" * 2500, raw="not json", calls=[{}] * 4)
    row = _cache().row("k1", "s1", "i1", exchange, "r1", NOW)
    assert row is not None
    assert (row["status"], row["response"], row["error"], row["attempts"]) == ("error", "not json", "e" * 2000, 4)


@pytest.mark.parametrize("outcome", ["server_error", "rate_limited", "timeout", "connection_error", "budget_exhausted"])
def test_a_transient_error_is_not_stored(outcome: str) -> None:
    assert _cache().row("k1", "s1", "i1", Exchange(outcome=outcome, error="later", calls=[{}]), "r1", NOW) is None


def test_forget_errors_drops_only_the_errors_of_those_keys(store: Store) -> None:
    cache = _cache()
    rows = [
        cache.row(
            key,
            "s",
            "i",
            Exchange(value=1, outcome="ok", raw="{}", calls=[{}])
            if key == "ok"
            else Exchange(outcome="refusal", error="no", calls=[{}]),
            "r1",
            NOW,
        )
        for key in ("ok", "e1", "e2")
    ]
    store.insert("llm_cache", rows)
    cache.forget_errors(store, ["ok", "e1"])
    assert sorted(cache.lookup(store, ["ok", "e1", "e2"])) == ["e2", "ok"]
