"""A rebuild with nothing to do returns at once, without starting Prefect (`cxrvqa build` says "up to date").

Every stage already skips what is done, but a no-change rebuild still pays the fixed cost of a run: the local
Prefect server, the flow runs, each stage's look at its inputs (~6.7 s of a 62 s build of 10k studies, 4 s of
it before the run starts). So after a completed build the CLI records, in `up-to-date.json` in the output
folder, what a repeat of that build would depend on:

- the invocation: the settings as given (config file and options, before the database adds the templates of
  the last run), the pseudonym key's fingerprint and the CXRVQA_* environment, as one hash;
- a fingerprint of the files it reads: the stats (path, size, modification time in ns, inode) of every file
  under every path the resolved settings name (reports, images, manifests, template folders, program files,
  boxes), of the package's code and data, of the flows, the versions of the libraries the stages use, and the
  stats of the database file itself (and its write-ahead log) as the build left it.

A later build with the same invocation whose fingerprint is unchanged would skip every input of every stage,
so it prints the last run's status instead. Anything that writes the database (another build, `review
import`, the judge) changes its stats, and any edited input changes theirs: the build then runs as usual.
Recorded only where a repeat is known to do nothing: a completed run of the rules backend without the LLM judge
(an LLM's failures are retried by a repeat), without --rehash, --from-stage or --only-failed, that gave no
warning and kept no templates of an earlier run (a repeat must show those again). A file rewritten in place
with the same size and its modification time set back is not seen: `build --rehash` always runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cxrvqa.config import Config

#: The file in the output folder (not part of the dataset: a cache a build may delete at any time).
RECORD = "up-to-date.json"

#: Libraries whose version changes what a stage makes.
_LIBRARIES = ("cxrvqa", "duckdb", "pyarrow", "pydantic", "spacy", "medspacy", "pydicom", "pillow", "numpy", "prefect")


def invocation_key(config: Config, flags: dict[str, Any]) -> str:
    """The settings as given (before the database adds anything) and the environment they are read with."""
    environment = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in os.environ.items() if k.startswith("CXRVQA_")}
    settings = config.model_dump(mode="json")
    return _digest([settings, config.privacy.key_fingerprint(), flags, sorted(environment.items())])


def _paths_of(value: Any) -> list[str]:
    """Every path a (resolved) settings value names."""
    if isinstance(value, Path):
        return [os.path.abspath(value.expanduser())]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths_of(v)]
    if isinstance(value, BaseModel):
        return [p for name in type(value).model_fields for p in _paths_of(getattr(value, name))]
    return []


def read_paths(config: Config) -> list[str]:
    """The files and folders a build with these resolved settings reads (its output folder aside), with the
    package's own code and data and the flows."""
    import flows

    out = os.path.abspath(config.out_dir.expanduser())
    given = [p for p in _paths_of(config) if p != out]
    package = os.path.dirname(os.path.abspath(__file__))
    return sorted({*given, package, os.path.dirname(os.path.abspath(flows.__file__))})


def fingerprint(paths: list[str], db_path: Path) -> str:
    """The stats of every file under ``paths`` and of the database, and the libraries' versions."""
    stats: list[tuple[Any, ...]] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path, followlinks=True):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                stats += [_stat(os.path.join(root, name)) for name in sorted(names)]
        else:
            stats.append(_stat(path))
    database = [_stat(str(db_path)), _stat(f"{db_path}.wal")]
    return _digest([stats, database, [_version(name) for name in _LIBRARIES]])


def _stat(path: str) -> tuple[Any, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def up_to_date(config: Config, key: str) -> str | None:
    """The run a build with this invocation would repeat without doing anything, if nothing it depends on
    changed since; None otherwise (also for a missing or unreadable record)."""
    try:
        record = json.loads((config.out_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("invocation") != key:
        return None
    paths = record.get("paths")
    if not isinstance(paths, list) or fingerprint(paths, config.db_path) != record.get("fingerprint"):
        return None
    return str(record.get("run_id"))


def forget(config: Config) -> None:
    """Before a build runs: a build that stops half-way must leave no record."""
    (config.out_dir / RECORD).unlink(missing_ok=True)


def repeatable(config: Config) -> bool:
    """Whether a repeat of a completed build with these settings is known to do nothing."""
    return (
        config.extraction.backend == "rules"
        and (config.qa.backend or "rules") == "rules"
        and not config.judge.enabled
        and not config.imaging.rehash
        and not config.report_limits.reread
        and not config.only_failed
    )


def record(config: Config, key: str, run_id: str) -> None:
    """After a completed build that warned of nothing: what a repeat would depend on."""
    from cxrvqa.core.atomic import atomic_file

    paths = read_paths(config)
    with atomic_file(config.out_dir / RECORD) as partial:
        partial.write_text(
            json.dumps(
                {"invocation": key, "run_id": run_id, "paths": paths, "fingerprint": fingerprint(paths, config.db_path)}
            ),
            encoding="utf-8",
        )
