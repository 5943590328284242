"""The LLM judge end to end: the real openai client against the local test server (tests/llm_server.py),
on a copy of the demo build; verdicts, failures, cache, reruns and grades."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cxrvqa.cli import _demo_inputs
from cxrvqa.config import Config, load_config
from cxrvqa.core.batch import run_batch
from cxrvqa.core.grading import grading
from cxrvqa.core.llm_client import ResponseError
from cxrvqa.errors import ConfigError
from cxrvqa.store import Store
from cxrvqa.validation import judge
from cxrvqa.validation import stage as validate_stage
from tests.llm_server import FakeLLMServer

pytestmark = pytest.mark.flow
KEY = "sk-test-JUDGE-77a1"


@pytest.fixture
def server():
    with FakeLLMServer(latency=0.0, slow_seconds=2.0) as fake:
        yield fake


def _config(out: Path, server: FakeLLMServer, **judge_settings: object) -> Config:
    return load_config(
        None,
        {
            **_demo_inputs(),
            "out_dir": out,
            "judge": {"enabled": True, **judge_settings},
            "extraction": {
                "llm": {
                    "base_url": server.base_url,
                    "model": "fake-model",
                    "timeout_s": 0.5,
                    "max_attempts": 3,
                    "max_concurrency": 4,
                }
            },
        },
    )


def _judge_all(store: Store, context: judge.JudgeContext, run_id: str) -> tuple[int, int]:
    eligible, keys = judge.pending_items(store, context)
    counts = judge.judge_batch(store, run_id, keys, context)
    assert counts.n_input == len(keys) and counts.n_done + counts.n_rejected == len(keys)
    return eligible, len(keys)


def test_the_response_schema_and_caps_come_from_the_criteria_file() -> None:
    criteria = judge.judge_criteria()
    assert [c.id for c in criteria.criteria] == [
        "entailment",
        "relevance",
        "completeness",
        "question_clarity",
        "answer_clarity",
    ]
    schema = criteria.response_schema()
    assert schema["required"] == [*(c.id for c in criteria.criteria), "rationale"]
    assert schema["properties"]["entailment"]["enum"] == [
        "entailed",
        "partially_entailed",
        "not_mentioned",
        "contradicted",
    ]
    best = {c.id: c.values[0][0] for c in criteria.criteria} | {"rationale": "ok"}
    rules = grading()
    assert criteria.cap(best) == (rules.best, "")
    assert criteria.cap(best | {"completeness": "mostly_complete", "relevance": "partially_relevant"}) == (
        rules.code("B"),
        "relevance=partially_relevant",
    )
    assert criteria.cap(best | {"entailment": "contradicted"}) == (rules.code("D"), "entailment=contradicted")
    # a minor detail left out and awkward but clear wording cap nothing (judged samples read by people, 2026-12-06)
    assert criteria.cap(best | {"completeness": "mostly_complete", "answer_clarity": "somewhat_unclear"}) == (
        rules.best,
        "",
    )
    with pytest.raises(ResponseError, match="not JSON"):
        judge.parse_verdict('{"entailment": ')
    with pytest.raises(ResponseError, match="entailment: 'maybe' is not one of"):
        judge.parse_verdict(json.dumps(best | {"entailment": "maybe"}))
    with pytest.raises(ResponseError, match="'answer_clarity' is a required property"):
        judge.parse_verdict(json.dumps({k: v for k, v in best.items() if k != "answer_clarity"}))


def test_the_prompt_shows_report_question_options_and_answer() -> None:
    prompt = judge.load_judge_prompt("qa_item")
    system, user = prompt.messages(
        [{"id": 0, "section": "findings", "text": "Small left\neffusion."}],
        "Which finding is seen?",
        ["A. effusion", "B. mass"],
        "A. effusion",
        schema_in_prompt=False,
    )
    assert "- entailment: Does the report text entail the answer" in system["content"]
    assert "  - contradicted: the report says the opposite" in system["content"]
    assert "JSON Schema" not in system["content"]
    assert user["content"] == (
        "Report sentences (id, section, text):\n[0] findings: Small left effusion.\n"
        "Question: Which finding is seen?\nOptions: A. effusion | B. mass\nAnswer: A. effusion"
    )


def test_settings_errors_are_named_before_any_request(demo_build: Path, server: FakeLLMServer) -> None:
    assert judge.prepare_judge(load_config(None, {"out_dir": demo_build})) is None  # off by default
    with pytest.raises(ConfigError, match="the judge asks the server of extraction.llm"):
        judge.prepare_judge(load_config(None, {"out_dir": demo_build, "judge": {"enabled": True}}))
    with pytest.raises(ConfigError, match=r"unknown grade 'A\+\+\+'; grades are \['A\+\+', 'A\+', 'A'"):
        judge.prepare_judge(_config(demo_build, server, min_grade="A+++"))


def test_verdicts_failures_cache_and_grades(
    demo_build: Path, server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXRVQA_LLM_API_KEY", KEY)
    out = tmp_path / "copy"
    shutil.copytree(demo_build, out)
    with Store(out / "cxrvqa.duckdb") as store:
        # a flipped answer that the rule-based validators never saw: only the judge can catch it now
        # (which negated finding survives balancing depends on the pseudonymised image ids: take the first)
        flipped, negated = store.query(
            "SELECT q.item_id, q.findings[1] FROM current_qa_items q JOIN current_qa_grades g USING (item_id, "
            "template_version, input_hash) WHERE q.template_id = 'finding_presence' AND q.study_id = 'demo-s1' "
            "AND q.answer = 'no' AND g.grade >= 3 ORDER BY q.item_id"
        )[0]
        store.con.execute("UPDATE qa_items SET answer = 'yes' WHERE item_id = ?", [flipped])
        server.inject("rule out pneumonia", "500", "malformed")  # demo-s2's first item: recovers on attempt 3
        server.always("Shortness of breath", "refusal")  # demo-s1: every item refused, for good
        context = judge.prepare_judge(_config(out, server))
        eligible, asked = _judge_all(store, context, "r-judge")
        rules = grading()
        n_s1 = store.query(
            "SELECT count(*) FROM current_qa_grades g JOIN current_qa_items q USING (item_id, "
            "template_version, input_hash) WHERE q.study_id = 'demo-s1' AND g.rule_grade >= 3"
        )[0][0]
        assert eligible == asked > n_s1 > 0
        failures = store.query(
            "SELECT reason, terminal, count(*) FROM judge_results WHERE status = 'failed' GROUP BY ALL"
        )
        assert failures == [("llm_refusal", True, n_s1)]
        verdicts = store.query("SELECT count(*) FROM judge_results WHERE status = 'ok'")[0][0]
        assert verdicts == asked - n_s1
        outcomes = dict(store.query("SELECT outcome, count(*) FROM llm_calls WHERE run_id = 'r-judge' GROUP BY 1"))
        # one call per distinct content: the same question and answer on a study's PA and lateral images share one
        asked_once = store.query("SELECT count(DISTINCT cache_key) FROM judge_results WHERE status = 'ok'")[0][0]
        assert asked_once < verdicts
        assert outcomes == {"ok": asked_once, "refusal": n_s1, "server_error": 1, "invalid_response": 1}
        # the fake judge finds no other contradiction in the demo: every verdict passes, no grade is capped
        assert store.query(
            "SELECT status, count(*) FROM validation_results WHERE validator = 'llm_judge' GROUP BY 1"
        ) == [("ok", verdicts)]
        assert store.query("SELECT count(*) FROM current_qa_grades WHERE weakest LIKE 'judge:%'")[0][0] == 0
        # nothing refused or judged is asked again; a transient failure would be
        requests = server.request_count
        assert judge.pending_items(store, context)[1] == []
        # judge the flipped item again with a server that no longer refuses: it is contradicted
        server._always.clear()
        store.con.execute("DELETE FROM judge_results WHERE item_id = ?", [flipped])
        store.con.execute("DELETE FROM llm_cache WHERE study_id = 'demo-s1'")
        counts = judge.judge_batch(
            store, "r-judge-2", [k for k in judge.pending_items(store, context)[1] if k[0] == flipped], context
        )
        assert (counts.n_done, counts.n_rejected, server.request_count - requests) == (1, 0, 1)
        verdict = store.query(
            "SELECT status, reason, detail FROM current_validation_results WHERE item_id = ? "
            "AND validator = 'llm_judge'",
            [flipped],
        )
        assert verdict == [
            (
                "reject",
                "judge_entailment_contradicted",
                "entailment=contradicted, relevance=relevant, completeness=complete, question_clarity="
                f"clear, answer_clarity=clear. The report says {negated} is absent.",
            )
        ]
        grade = store.query(
            "SELECT grade, label, weakest, rule_grade > grade FROM current_qa_grades WHERE item_id = ?", [flipped]
        )
        assert grade == [(rules.code("D"), "D", "judge:entailment=contradicted", True)]
        # the cache answers a re-judging without a request (but for demo-s1's refusals, removed above)
        before = store.query("SELECT item_id, verdict FROM current_judge_results ORDER BY item_id")
        requests = server.request_count
        store.con.execute("DELETE FROM judge_results")
        _judge_all(store, context, "r-judge-3")
        assert server.request_count - requests == n_s1 - 1
        after = dict(store.query("SELECT item_id, verdict FROM current_judge_results"))
        assert [(item, after[item]) for item, _ in before] == before
        # a re-validation keeps a judge's cap below the rule-based grade, and keeps the rule-based grade on record
        clean, template_version, input_hash = store.query(
            "SELECT item_id, template_version, input_hash FROM current_qa_grades g JOIN current_qa_items q "
            "USING (item_id, template_version, input_hash) WHERE q.study_id = 'demo-s1' AND g.label = 'A++' "
            "AND item_id <> ? ORDER BY item_id LIMIT 1",
            [flipped],
        )[0]
        store.con.execute(
            "UPDATE judge_results SET grade = 3, weakest = 'completeness=incomplete' "
            "WHERE item_id = ? AND status = 'ok'",
            [clean],
        )
        stricter = validate_stage.prepare(
            load_config(None, {**_demo_inputs(), "out_dir": out, "strictness": {"answer_leak": "warn"}})
        )
        run_batch(validate_stage, store, "r-revalidate", ["demo-s1"], stricter)
        assert store.query(
            "SELECT label, weakest, rule_grade, rule_weakest, run_id FROM current_qa_grades "
            "WHERE item_id IN (?, ?) ORDER BY item_id = ?",
            [clean, flipped, flipped],
        ) == [
            ("B", "judge:completeness=incomplete", 6, "", "r-revalidate"),
            ("D", "reject:answer_mismatch", 1, "reject:answer_mismatch", "r-revalidate"),
        ]
    text = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix != ".png")
    assert KEY not in text


def test_the_build_flow_judges_after_validation(demo_build: Path, server: FakeLLMServer, tmp_path: Path) -> None:
    from flows.build import build_dataset

    out = tmp_path / "copy"
    shutil.copytree(demo_build, out)
    config = _config(out, server, max_items=10)
    config.stages = ["validate"]
    result = build_dataset(config)
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        stage = store.query(
            "SELECT n_input, n_done, n_rejected, status FROM run_stages WHERE run_id = ? AND stage = 'judge'",
            [result["run_id"]],
        )
        assert stage[0][1:] == (10, 0, "completed")
        assert store.query("SELECT count(*) FROM judge_results WHERE run_id = ?", [result["run_id"]])[0][0] == 10
    assert server.request_count == 10
