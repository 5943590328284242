"""A process pool shared by the stages' batch tasks.

Prefect tasks take batches; inside a batch, CPU work fans out over processes. One pool per worker count serves
a stage's batches, replaced by a fresh one once its workers took `STUDIES_PER_WORKER` studies each; the build flow
shuts it down at each stage's end (`shutdown_pools`), so that the next stage's workers fork afresh from the
forkserver, which holds their modules already: the caches a stage grew in its workers go with them.
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import multiprocessing.forkserver
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C", bound=Any)  # a stage context: a dataclass with a `workers` field

#: Below this many items per worker, starting or feeding the pool costs more than it saves.
MIN_ITEMS_PER_WORKER = 4

_pools: dict[int, ProcessPoolExecutor] = {}

#: The modules of the stages' pool functions, what their readers import where they build their pipelines (spaCy's
#: English tokenizer, medspaCy's ConText) and pandas (pyarrow imports it on its first conversion of a Python list:
#: ~0.3 s), imported once by the forkserver: every worker forks with them loaded instead of importing them on its
#: first task (~2 s of CPU a worker, twice in a 2-worker build). The forkserver skips a module that fails to import:
#: a worker then imports it itself, as before.
WORKER_MODULES = (
    "cxrvqa.imaging.convert",
    "cxrvqa.extraction.stage",
    "cxrvqa.qa.stage",
    "cxrvqa.validation.stage",
    "spacy",
    "spacy.lang.en",
    "medspacy.context",
    "pandas",
)


def _forkserver() -> multiprocessing.context.BaseContext:
    """forkserver: workers never inherit the threads (Prefect's event loop, DuckDB) of the parent."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_MODULES))
    return context


def start_forkserver() -> None:
    """The forkserver started now, not at the first pool task: it imports `WORKER_MODULES` in the background while
    this process goes on (a build's first stage, reading the reports, leaves the second core idle). Not earlier:
    started before the CLI waits for Prefect's server (the flow process idles there ~2.5 s while the server imports),
    10k synthetic studies, alternated with starting it here: a typical template edit 13.6, 16.8, 17.4 s against
    16.1, 15.6, 15.7 s, full builds 83.4, 76.6 s against 79.2, 76.5 s: nothing gained."""
    _forkserver()
    multiprocessing.forkserver.ensure_running()


#: The studies a pool's workers take each before the next map starts a fresh pool (`_pool`). A worker's memory grows
#: with the studies it sees (bounded caches filling, spaCy's strings, the heap's fragments): 100k synthetic studies,
#: 2 cores (2026-12-07), ~50,000 studies a validation worker, the pool's peak 992 MB against 764 MB at 10k (~5,000 a
#: worker); with a share of 25,000 (then counted as 100 tasks of 250 studies), 869 MB, and the whole tree's 1,779 MB
#: (1.16x the 10k's 1,530) against 1,940; counted in studies, 1,803 MB (1.18x). Counted in studies, not tasks: a
#: task's size depends on the stage and on the number of workers. Python 3.11's own `max_tasks_per_child` deadlocks a
#: map of more tasks than that (cpython#115634).
STUDIES_PER_WORKER = 25_000
#: Per pool (by worker count), the studies it was given.
_taken: dict[int, int] = {}


def _pool(workers: int, studies: int = 0) -> ProcessPoolExecutor:
    """The pool of ``workers`` processes, given ``studies`` more. One whose workers took their share is first shut
    down, once it finished what it had (a batch started ahead: its results wait in their futures), then replaced."""
    pool = _pools.get(workers)
    if pool is not None and _taken[workers] >= STUDIES_PER_WORKER * workers:
        pool.shutdown(wait=True)
        del _pools[workers]
        pool = None
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_forkserver())
        _pools[workers], _taken[workers] = pool, 0
    _taken[workers] += studies
    return pool


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter); streams its input."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def batched_by_weight(
    items: Iterable[T], weight_of: Callable[[T], int], size: int, weight: int, most: int
) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items, or of more where the items are light: a list goes on past ``size``
    items while their weights sum to less than ``weight``, up to ``most`` items (the last list may be shorter).
    A batch's fixed costs are then paid per ``weight`` of work, not per ``size`` items. Streams its input."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += weight_of(item)
        if len(batch) >= most or (len(batch) >= size and total >= weight):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


#: How a stage's items become batches of about a size (`batched`, or a `weighted_split`).
Split = Callable[[Iterable[Any], int], Iterator[list[Any]]]

#: A batch of light items takes at most this many times the batch size (`weighted_split`).
LIGHT_BATCH_MOST = 5


def weighted_split(weight_of: Callable[[Any], int], per_item: int) -> Split:
    """A split into batches of ``size`` items, or of up to `LIGHT_BATCH_MOST` times as many where the items are
    light: a batch goes on past ``size`` while its weights sum to less than ``size`` x ``per_item``. A template's
    rebuild (a study needs one template, or has ~2 items to validate) then pays the main process's per-batch costs
    (the loads over the batch's range, the commit) per ~10,000 studies, not per 2,000 (100k studies, validation:
    load and write 0.67 s per 10,000 studies against 1.56 s)."""

    def split(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
        return batched_by_weight(items, weight_of, size, size * per_item, size * LIGHT_BATCH_MOST)

    return split


def pool_chunk_size(n: int, workers: int, most: int | None = None) -> int:
    """The size of chunks of ``n`` items that gives each of ``workers`` `MIN_ITEMS_PER_WORKER` of them, at most
    ``most``: `process_map` keeps fewer in this process (2,000 studies in chunks of ceil(2000 / 64) = 32 are 63
    chunks, not the 64 that 16 workers need; 1,000 in chunks of 100 were parsed here past 2 workers)."""
    size = max(1, n // (workers * MIN_ITEMS_PER_WORKER))
    return size if most is None else min(most, size)


def pool_chunks(items: Sequence[T], workers: int, most: int | None = None) -> Iterator[list[T]]:
    """``items`` in chunks of `pool_chunk_size`."""
    return batched(items, pool_chunk_size(len(items), workers, most))


def process_map(fn: Callable[[T], R], items: Iterable[T], workers: int, studies: int = 0) -> Iterator[R]:
    """``map(fn, items)`` over ``workers`` processes, in order; in-process for one worker or a few items.
    ``studies``: how many the items hold, counted towards the pool's share (`STUDIES_PER_WORKER`; 0: none)."""
    items = list(items)
    if workers <= 1 or len(items) < MIN_ITEMS_PER_WORKER * workers:
        return map(fn, items)
    return _pool(workers, studies).map(fn, items, chunksize=1)


def with_workers_for(context: C, n_pending: int, pool_min: int) -> C:
    """The stage context with one worker when fewer than ``pool_min`` inputs are pending: starting the workers
    (spaCy, the rules or the answer programs in each) costs more than it saves on a small build."""
    return context if n_pending >= pool_min else replace(context, workers=1)


def warm_workers(fn: Callable[[], Any], workers: int) -> None:
    """``fn()`` once per worker of the pool of ``workers`` (none for one worker), not waited for: what the next
    stage's first tasks would build, built while the workers would be idle (each idle worker takes one call; a
    result or an error is dropped)."""
    if workers > 1:
        pool = _pool(workers)
        for _ in range(workers):
            pool.submit(fn)


class BackgroundMap(Generic[T, R]):
    """``fn(item)`` for each item over the pool of ``workers`` processes while this process does something else. On
    a machine of no more cores than workers, at most ``workers - 1`` at a time, so that this process keeps a core
    (10k synthetic studies: the QA balance in this process took 3.9 s beside two workers reading sentences against
    2.4 s alone, py-spy); a thread here feeds them. `results` sends every item not yet sent at once and waits for
    them all; `cancel` sends no more. Nothing runs for one worker (no pool: there is no idle worker)."""

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], workers: int) -> None:
        self._fn = fn
        self._pool = _pool(workers) if workers > 1 else None
        self._most_in_flight = workers if (os.cpu_count() or 1) > workers else workers - 1
        self._waiting: deque[T] = deque(items) if self._pool else deque()
        self._sent: list[Future[R]] = []
        self._lock = threading.Lock()
        self._stopped = False  # `results` or `cancel` took over: the feeder sends no more
        self._feeder = threading.Thread(target=self._feed, name="cxrvqa-background-map", daemon=True)
        self._feeder.start()

    def _send(self) -> Future[R] | None:
        """The next item sent to the pool (under the lock), or None when none is left or the feeder was stopped."""
        with self._lock:
            if self._stopped or not self._waiting:
                return None
            try:
                future = self._pool.submit(self._fn, self._waiting[0])
            except RuntimeError:  # the pool was shut down or broke: `results` says so, `cancel` does not care
                return None
            self._waiting.popleft()
            self._sent.append(future)
            return future

    def _feed(self) -> None:
        """Keep `_most_in_flight` items running until none is left or the feeder is stopped."""
        running: set[Future[R]] = set()
        while True:
            while len(running) < self._most_in_flight and (future := self._send()) is not None:
                running.add(future)
            if not running:
                return
            _, pending = wait(running, return_when=FIRST_COMPLETED)
            running = pending

    def results(self) -> list[R]:
        """Every sent item's result, in order, once every item is sent (an item's error is raised here)."""
        with self._lock:
            self._stopped = True
            while self._waiting:
                self._sent.append(self._pool.submit(self._fn, self._waiting.popleft()))
        self._feeder.join()
        return [future.result() for future in self._sent]

    def cancel(self) -> None:
        """No more items sent; those not started are cancelled (the caller failed: their results would be dropped)."""
        with self._lock:
            self._stopped = True
            self._waiting.clear()
            for future in self._sent:
                future.cancel()


def stream_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int = 2) -> Iterator[R]:
    """``map(fn, items)`` over ``workers`` processes, in order, with at most ``ahead`` results per worker
    in flight: memory stays flat however many items there are (``process_map`` submits them all)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = _pool(workers)
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= workers * ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@atexit.register
def shutdown_pools() -> None:
    while _pools:
        _, pool = _pools.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off meanwhile, back on after (if it was on). A batch's computing makes tens
    of thousands of new, surviving objects and few or no reference cycles: they set off full collections that walk
    every object of the process (spaCy's and medspaCy's rules, Prefect) again and again (~10-15% of generating or
    validating a chunk; tripled rebuilding graphs from llm_cache). Reference counting still frees the temporaries;
    the few cycles are collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def collector_frozen() -> Iterator[None]:
    """The objects alive now kept out of the cyclic collector's walks meanwhile (`gc.freeze`), back in after. A
    build's process holds start-up's millions of long-lived objects (Prefect, pydantic, the templates) that every
    full collection walked again (10k build: 12 of them, 3.2 s, 0.43 s of the validate stage); its batches' own
    objects are collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
