"""The shared process-pool helpers."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from cxrvqa.core import parallel
from cxrvqa.core.parallel import (
    WORKER_MODULES,
    batched_by_weight,
    pool_chunks,
    process_map,
    shutdown_pools,
    start_forkserver,
    warm_workers,
    with_workers_for,
)


@dataclass(frozen=True)
class _Context:
    name: str
    workers: int


def test_with_workers_for_keeps_the_pool_from_the_threshold_on() -> None:
    context = _Context("stage", 8)
    assert with_workers_for(context, 5000, 5000) is context
    assert with_workers_for(context, 4999, 5000) == _Context("stage", 1)
    assert with_workers_for(context, 0, 4000) == _Context("stage", 1)


def _touch(folder: Path) -> None:
    (folder / str(os.getpid())).touch()


def test_warm_workers_calls_the_function_in_the_pool_and_only_there(tmp_path: Path) -> None:
    shutdown_pools()  # a pool of an earlier test was started where this module may not import (run order)
    warm_workers(partial(_touch, tmp_path), 1)  # one worker: no pool, nothing to warm
    assert not list(tmp_path.iterdir())
    warm_workers(partial(_touch, tmp_path), 2)
    shutdown_pools()  # waits for the calls submitted
    pids = {path.name for path in tmp_path.iterdir()}
    assert 1 <= len(pids) <= 2 and str(os.getpid()) not in pids


def _worker_modules_loaded(_: int) -> list[str]:
    return [name for name in WORKER_MODULES if name in sys.modules]


def test_the_workers_fork_with_the_stage_modules_loaded() -> None:
    """The forkserver imported them (`_pool` and `start_forkserver` set the same preload): a task that imports none
    of them finds them all in its worker."""
    shutdown_pools()
    start_forkserver()
    assert list(process_map(_worker_modules_loaded, range(8), 2)) == [list(WORKER_MODULES)] * 8
    shutdown_pools()


def _weights(weights: list[int]) -> Callable[[str], int]:
    """The weight of each of the letters a, b, c... in turn."""
    return lambda letter: weights[ord(letter) - ord("a")]


def test_batched_by_weight_goes_past_size_only_while_the_items_are_light() -> None:
    items = list("abcdefghij")
    # heavy items: lists of `size`; light ones: on until their weight reaches 6, or `most` items
    assert list(batched_by_weight(items, _weights([5] * 10), 2, 6, 4)) == [
        list("ab"),
        list("cd"),
        list("ef"),
        list("gh"),
        list("ij"),
    ]
    assert list(batched_by_weight(items, _weights([1] * 10), 2, 6, 4)) == [list("abcd"), list("efgh"), list("ij")]
    assert list(batched_by_weight(items, _weights([1] * 10), 2, 3, 4)) == [
        list("abc"),
        list("def"),
        list("ghi"),
        list("j"),
    ]
    # a heavy item ends a list that had gone past `size`
    assert list(batched_by_weight(items, _weights([1, 1, 9, 1, 1, 1, 1, 1, 1, 1]), 2, 6, 10)) == [
        list("abc"),
        list("defghi"),
        list("j"),
    ]
    assert list(batched_by_weight([], _weights([]), 2, 6, 4)) == []


def test_pool_chunks_give_every_worker_enough_of_them_for_the_pool() -> None:
    studies = list(range(1000))
    assert [len(c) for c in pool_chunks(studies, 2, 100)] == [100] * 10  # at most `most`
    many = list(pool_chunks(studies, 16, 100))  # 16 workers x 4 chunks: chunks of 15, not 100 (nor 16: 63 chunks)
    assert [len(c) for c in many] == [15] * 66 + [10] and [s for c in many for s in c] == studies
    assert [len(c) for c in pool_chunks(list(range(2000)), 16)] == [31] * 64 + [16]  # a QA batch on 16 workers
    assert [len(c) for c in pool_chunks(list(range(2000)), 2)] == [250] * 8  # 2 workers: as before
    assert list(pool_chunks([], 2, 100)) == []


def _pid(_: int) -> int:
    return os.getpid()


def _with_pid(number: int) -> tuple[int, int]:
    return number, os.getpid()


def test_a_pool_is_replaced_once_its_workers_took_their_share_of_studies(monkeypatch) -> None:
    """A worker's memory grows with the studies it sees (its caches, spaCy's strings): once a pool's workers were
    given `STUDIES_PER_WORKER` studies each, the next map runs on a fresh pool, after the old one finished what it
    had, whose results still come, in order; a map that counts no studies never wears a pool out."""
    shutdown_pools()
    monkeypatch.setattr(parallel, "STUDIES_PER_WORKER", 50)
    results = process_map(_with_pid, range(8), 2, studies=100)  # the pool's share of 2 x 50, all given; unread
    pool = parallel._pools[2]
    second = set(process_map(_pid, range(8), 2, studies=60))  # on a fresh pool: 60 of its 100
    assert parallel._pools[2] is not pool
    numbers, pids = zip(*results, strict=True)  # the replaced pool's results, every one, in order
    first = set(pids)
    assert numbers == tuple(range(8)) and not first & second
    pool = parallel._pools[2]
    third = set(process_map(_pid, range(8), 2, studies=40))  # the same pool: 100 of 100
    assert parallel._pools[2] is pool and third
    assert set(process_map(_pid, range(8), 2)) and parallel._pools[2] is not pool  # a fresh one again
    pool = parallel._pools[2]
    for _ in range(3):  # no studies counted (an image's conversion): the same pool
        assert set(process_map(_pid, range(8), 2)) and parallel._pools[2] is pool
    shutdown_pools()
    assert os.getpid() not in {*first, *second, *third}


def _blocking_squares(
    monkeypatch, cores: int
) -> tuple[Callable[[int], int], threading.Event, Callable[[int], list[int]]]:
    """A thread pool of 3 stands in for the process pool on a machine of ``cores`` cores, so that the items can wait:
    (the function, squaring once the event is set, the event, a wait until so many started that returns them)."""
    pool = ThreadPoolExecutor(max_workers=3)
    monkeypatch.setattr(parallel, "_pool", lambda workers, studies=0: pool)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: cores)
    started: list[int] = []
    release = threading.Event()

    def squared(n: int) -> int:
        started.append(n)
        assert release.wait(10)
        return n * n

    def until(count: int) -> list[int]:
        deadline = time.monotonic() + 10
        while len(started) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # and no more than that
        return sorted(started)

    return squared, release, until


def test_a_background_map_keeps_a_core_for_this_process_until_its_results_are_asked(monkeypatch) -> None:
    """At most workers - 1 items run while this process works (as many cores as workers); `results` sends every
    other item at once and returns every result in order."""
    squared, release, until = _blocking_squares(monkeypatch, cores=3)
    results: list[list[int]] = []
    try:
        background = parallel.BackgroundMap(squared, range(6), workers=3)
        assert until(2) == [0, 1]  # two of the three workers
        asking = threading.Thread(target=lambda: results.append(background.results()))
        asking.start()
        assert until(3) == [0, 1, 2]  # the rest sent: the third worker takes one
    finally:
        release.set()
    asking.join(10)
    assert results == [[0, 1, 4, 9, 16, 25]]
    assert parallel.BackgroundMap(squared, range(3), workers=1).results() == []  # one worker: nothing runs


def test_a_background_map_uses_every_worker_where_cores_are_left_and_sends_nothing_once_cancelled(monkeypatch) -> None:
    squared, release, until = _blocking_squares(monkeypatch, cores=8)
    try:
        background = parallel.BackgroundMap(squared, range(6), workers=3)
        assert until(3) == [0, 1, 2]
        background.cancel()
    finally:
        release.set()
    assert until(4) == [0, 1, 2]  # the three sent finish, nothing more is sent


def test_a_background_maps_item_error_is_raised_when_its_results_are_asked() -> None:
    background = parallel.BackgroundMap(partial(int, base=10), ["1", "x", "3"], workers=2)
    try:
        with pytest.raises(ValueError, match="invalid literal"):
            background.results()
    finally:
        parallel.shutdown_pools()
