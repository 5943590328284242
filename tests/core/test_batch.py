"""The batch protocol (cxrvqa.core.batch): every stage module follows it, and run_batch runs load, compute and
write in order, computing beside the store only where the stage asks for it."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from cxrvqa.config import AVAILABLE_STAGES
from cxrvqa.core.batch import BatchStage, run_batch, start_batch, starts_ahead
from cxrvqa.extraction import stage as extract_stage
from cxrvqa.imaging import stage as image_stage
from cxrvqa.qa import stage as qa_stage
from cxrvqa.reports import stage as report_stage
from cxrvqa.store import StageCounts
from cxrvqa.validation import stage as validate_stage

MODULES = (image_stage, report_stage, extract_stage, qa_stage, validate_stage)


def _parameters(function: Any) -> list[str]:
    """The required parameters, the batch and its work under one name (each stage names them for what they hold)."""
    own = {"batch", "work", "studies", "study_ids"}
    return [
        "batch" if name in own else name
        for name, p in inspect.signature(function).parameters.items()
        if name != "self" and p.default is inspect.Parameter.empty
    ]


def test_every_stage_module_follows_the_protocol_in_the_order_stages_run() -> None:
    assert tuple(m.NAME for m in MODULES) == AVAILABLE_STAGES
    for module in MODULES:
        for name in ("prepare", "load_batch", "compute_batch", "write_batch"):
            assert _parameters(getattr(module, name)) == _parameters(getattr(BatchStage, name)), (module.NAME, name)
    assert [m.NAME for m in MODULES if hasattr(m, "compute_here")] == ["extract"]


def _stage(calls: list[str], here: bool) -> Any:
    def load_batch(store: Any, batch: list[int], context: Any) -> tuple[list[int], StageCounts]:
        calls.append(f"load {batch}")
        return [x * 10 for x in batch], StageCounts(n_input=len(batch))

    def compute_batch(work: list[int], context: Any, run_id: str) -> Iterable[dict[str, Any]]:
        calls.append(f"compute {work} {run_id}")
        yield {"rows": work}

    def compute_here(store: Any, work: list[int], context: Any, run_id: str) -> Iterable[dict[str, Any]]:
        calls.append(f"compute here {work} {store}")
        return [{"rows": work}]

    def write_batch(store: Any, counts: StageCounts, parts: Iterable[dict[str, Any]], context: Any) -> StageCounts:
        counts.n_done += sum(len(part["rows"]) for part in parts)
        calls.append(f"write {counts.n_done}")
        return counts

    names = dict(NAME="fake", load_batch=load_batch, compute_batch=compute_batch, write_batch=write_batch)
    return SimpleNamespace(**names, **({"compute_here": compute_here} if here else {}))


def test_run_batch_loads_computes_and_writes() -> None:
    calls: list[str] = []
    counts = run_batch(_stage(calls, here=False), "store", "run-1", [1, 2], None)
    assert (counts.n_input, counts.n_done) == (2, 2)
    assert calls == ["load [1, 2]", "compute [10, 20] run-1", "write 2"]


def test_run_batch_computes_beside_the_store_where_the_stage_needs_it() -> None:
    calls: list[str] = []
    run_batch(_stage(calls, here=True), "store", "run-1", [3], None)
    assert calls == ["load [3]", "compute here [30] store", "write 1"]


def test_a_started_batch_is_written_as_started_and_another_is_loaded_anew() -> None:
    calls: list[str] = []
    stage = _stage(calls, here=False)
    started = start_batch(stage, "store", "run-1", [1, 2], None)
    assert calls == ["load [1, 2]"]  # the fake's computing starts when its parts are read
    assert run_batch(stage, "store", "run-1", [1, 2], None, started).n_done == 2
    assert calls == ["load [1, 2]", "compute [10, 20] run-1", "write 2"]
    calls.clear()
    run_batch(stage, "store", "run-1", [3], None, start_batch(stage, "store", "run-1", [1, 2], None))
    assert calls == ["load [1, 2]", "load [3]", "compute [30] run-1", "write 1"]


def test_the_stages_that_start_their_next_batch_ahead() -> None:
    llm = SimpleNamespace(backend="llm")
    rules = SimpleNamespace(backend="rules")
    assert [m.NAME for m in MODULES if starts_ahead(m, rules)] == ["extract", "qa", "validate"]
    assert not starts_ahead(extract_stage, llm)  # its requests count against the budget the store keeps
