"""The batch protocol every stage follows: load (reads the store), compute (pure), write (one transaction).

A stage module (images, reports, extract, qa, validate) provides the three functions below; the flow runs
a batch with `run_batch` in its own process, or computes it on a Dask worker (`compute_batch` only, the
outputs as Parquet shards) and writes it in the flow's process. A stage whose computing must stay with the
database (the llm extraction: its request cache and budget live there) also provides `compute_here`.

Locally, a stage that `starts_ahead` has its next batch loaded and handed to the workers (`start_batch`) before
this batch's results are written: the workers go on computing while the flow writes, commits and loads, instead
of waiting for it at every batch's end (10k studies: the QA workers idled ~3.6 s of the stage, validation's ~2 s).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from cxrvqa.config import Config
from cxrvqa.store import StageCounts, Store
from cxrvqa.store.shards import Tables


class BatchStage(Protocol):
    """What a stage module provides (a module satisfies the protocol with its module-level names). What is pending
    is each stage's own selection, not part of the protocol: images and reports stream their sources (files, report
    records), extract, qa and validate select from the store (`pending_studies`, `pending_work`)."""

    NAME: str

    def prepare(self, config: Config) -> Any:
        """The stage's batch context: settings, versions and rules read once (a bad setting fails here)."""

    def load_batch(self, store: Store, batch: Any, context: Any) -> tuple[Any, StageCounts]:
        """The batch's inputs read from the store, and its counts so far (inputs, skips)."""

    def compute_batch(self, work: Any, context: Any, run_id: str) -> Iterable[Tables]:
        """The batch's output tables, computed without the store (in this process or on a worker)."""

    def write_batch(self, store: Store, counts: StageCounts, parts: Iterable[Tables], context: Any) -> StageCounts:
        """The output tables written in one transaction; the counts completed (done, rejected)."""


@dataclass
class Started:
    """A batch loaded and its computing started: its counts so far and its parts, as the workers make them."""

    batch: Any
    counts: StageCounts
    parts: Iterable[Tables]


def start_batch(stage: BatchStage, store: Store, run_id: str, batch: Any, context: Any) -> Started:
    """Load a batch and start computing it. A stage whose `compute_batch` submits its work to the process pool
    when called (not when its parts are first read) has the workers on it from here on."""
    work, counts = stage.load_batch(store, batch, context)
    compute_here = getattr(stage, "compute_here", None)
    parts = compute_here(store, work, context, run_id) if compute_here else stage.compute_batch(work, context, run_id)
    return Started(batch, counts, parts)


def run_batch(
    stage: BatchStage, store: Store, run_id: str, batch: Any, context: Any, started: Started | None = None
) -> StageCounts:
    """Load, compute and write one batch in this process (``started``: already loaded and computing, by
    `start_batch`); every input ends as a row, a reject or a skip."""
    if started is None or started.batch != batch:
        started = start_batch(stage, store, run_id, batch, context)
    return stage.write_batch(store, started.counts, started.parts, context)


def starts_ahead(stage: BatchStage, context: Any) -> bool:
    """Whether the stage's next batch may be loaded and started before this one is written: its batches read
    nothing another batch writes, and its computing needs nothing the store records as it goes (the llm
    extraction's request budget does). A stage says so with `starts_ahead(context)`; none by default."""
    says = getattr(stage, "starts_ahead", None)
    return bool(says and says(context))
