"""Run bookkeeping: one `runs` row per build, one `run_stages` row per stage."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cxrvqa.config import Config
from cxrvqa.core.provenance import code_version
from cxrvqa.store.db import Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id() -> str:
    """Sortable and unique: UTC time plus 6 random hex digits."""
    return _now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def last_config(store: Store) -> Config | None:
    """The settings of the newest run (secrets are never stored; the pseudonym key comes from the environment)."""
    rows = store.query("SELECT config FROM runs ORDER BY started_at DESC LIMIT 1")
    if not rows:
        return None
    data = json.loads(rows[0][0])
    data["privacy"] = {}
    return Config.model_validate(data)


def start_run(store: Store, config: Config) -> str:
    """Record a new run; runs left 'running' by a crashed process are marked 'interrupted'.

    The store is single-writer, so a 'running' row seen by a writer cannot be alive.
    """
    store.con.execute(
        "UPDATE runs SET status = 'interrupted', finished_at = coalesce(finished_at, now()) WHERE status = 'running'"
    )
    store.con.execute(
        "UPDATE run_stages SET status = 'interrupted', finished_at = coalesce(finished_at, now()) "
        "WHERE status = 'running'"
    )
    run_id = new_run_id()
    store.con.execute(
        "INSERT INTO runs (run_id, started_at, status, config, code_version) VALUES (?, ?, 'running', ?, ?)",
        [run_id, _now(), json.dumps(config.stored_form()), code_version()],
    )
    return run_id


def finish_run(store: Store, run_id: str, status: str, error: str | None = None) -> None:
    store.con.execute(
        "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
        [status, _now(), error, run_id],
    )


@contextmanager
def recorded_run(store: Store, config: Config) -> Iterator[str]:
    """A run row around a block: 'completed' when it ends, 'failed' with the error when it raises."""
    run_id = start_run(store, config)
    try:
        yield run_id
    except BaseException as exc:
        finish_run(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finish_run(store, run_id, "completed")


@dataclass
class StageCounts:
    """What a stage did with its inputs; every input lands in exactly one bucket."""

    n_input: int = 0
    n_skipped: int = 0
    n_done: int = 0
    n_rejected: int = 0
    started_at: datetime = field(default_factory=_now)

    def add(self, other: "StageCounts") -> None:
        self.n_input += other.n_input
        self.n_skipped += other.n_skipped
        self.n_done += other.n_done
        self.n_rejected += other.n_rejected

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("n_input", "n_skipped", "n_done", "n_rejected")}


def start_stage(store: Store, run_id: str, stage: str) -> StageCounts:
    counts = StageCounts()
    store.con.execute(
        "INSERT INTO run_stages (run_id, stage, started_at, status) VALUES (?, ?, ?, 'running')",
        [run_id, stage, counts.started_at],
    )
    return counts


def finish_stage(store: Store, run_id: str, stage: str, counts: StageCounts, status: str = "completed") -> None:
    finished = _now()
    store.con.execute(
        "UPDATE run_stages SET status = ?, finished_at = ?, n_input = ?, n_skipped = ?, n_done = ?, "
        "n_rejected = ?, seconds = ? WHERE run_id = ? AND stage = ?",
        [
            status,
            finished,
            counts.n_input,
            counts.n_skipped,
            counts.n_done,
            counts.n_rejected,
            (finished - counts.started_at).total_seconds(),
            run_id,
            stage,
        ],
    )
