"""The shared process-pool helpers."""

from __future__ import annotations

from dataclasses import dataclass

from cxrvqa.core.parallel import with_workers_for


@dataclass(frozen=True)
class _Context:
    name: str
    workers: int


def test_with_workers_for_keeps_the_pool_from_the_threshold_on() -> None:
    context = _Context("stage", 8)
    assert with_workers_for(context, 5000, 5000) is context
    assert with_workers_for(context, 4999, 5000) == _Context("stage", 1)
    assert with_workers_for(context, 0, 4000) == _Context("stage", 1)
