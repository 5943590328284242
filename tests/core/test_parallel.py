"""The shared process-pool helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cxrvqa.core.parallel import shutdown_pools, warm_workers, with_workers_for


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
