"""The forkserver's preload of what the pool's workers need (`cxrvqa.workers`)."""

from __future__ import annotations

import gc

import pytest

from cxrvqa import workers
from cxrvqa.errors import ResourceError


def test_build_leaves_a_rule_file_that_does_not_load_to_the_worker_and_still_freezes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise ResourceError("extraction_rules.yaml", "not valid")

    monkeypatch.setattr(workers.extraction_rules, "rules", broken)
    built: list[str] = []
    monkeypatch.setattr(workers.independent, "build_reader", lambda: built.append("reader"))
    gc.unfreeze()
    try:
        workers.build()  # no exception: the forkserver would die of it
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert built == []  # the first failure ends the building; the worker meets the error where it is used
