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

The inputs' stats are taken before the run (a file changed while the build ran is seen by the next one), the
database's after it. A later build with the same invocation, reading the same paths with the same code, whose
fingerprint is unchanged would skip every input of every stage, so it prints the last run's status instead.
Anything that writes the database (another build, `review import`, the judge) changes its stats, and any edited
input changes theirs: the build then runs as usual. Recorded only where a repeat is known to do nothing: a
completed run of the rules backend without the LLM judge (an LLM's failures are retried by a repeat), without
--rehash or --only-failed, with no failed extraction (retried by a repeat), that gave no warning and kept no
templates of an earlier run (a repeat must show those again). A file rewritten in place with the same size and
its modification time set back is not seen: `build --rehash` always runs. The record is a cache: a record that
cannot be read or written only means the build runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cxrvqa.config import Config
from cxrvqa.core.provenance import file_stats
from cxrvqa.errors import CxrvqaError

#: The file in the output folder (not part of the dataset: a cache a build may delete at any time).
RECORD = "up-to-date.json"

logger = logging.getLogger(__name__)

#: Folders of the package that hold no code or data (byte-code caches, rewritten on import).
_NOT_CODE = frozenset({"__pycache__"})

#: Libraries whose version changes what a stage makes.
_LIBRARIES = ("cxrvqa", "duckdb", "pyarrow", "pydantic", "spacy", "medspacy", "pydicom", "pillow", "numpy", "prefect")


#: `CXRVQA_*` variables that change nothing a build makes: how long its Prefect server is kept for the next build
#: (`flows.prefect_env.IDLE_VARIABLE`).
_NOT_SETTINGS = frozenset({"CXRVQA_PREFECT_SERVER_IDLE"})


def invocation_key(config: Config, flags: dict[str, Any]) -> str:
    """The settings as given (before the database adds anything) and the environment they are read with."""
    environment = {
        k: hashlib.sha256(v.encode()).hexdigest()
        for k, v in os.environ.items()
        if k.startswith("CXRVQA_") and k not in _NOT_SETTINGS
    }
    settings = config.model_dump(mode="json")
    interpreter = [sys.executable, sys.version]
    return _digest([settings, config.privacy.key_fingerprint(), flags, sorted(environment.items()), interpreter])


def _paths_of(value: Any) -> list[str]:
    """Every path a (resolved) settings value names."""
    if isinstance(value, Path):
        return [os.path.abspath(value.expanduser())]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths_of(v)]
    if isinstance(value, BaseModel):
        return [p for name in type(value).model_fields for p in _paths_of(getattr(value, name))]
    return []


def _code_paths() -> list[str]:
    """The package's code and data and the flows (the package's data folders are links: followed)."""
    import flows

    return [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(flows.__file__))]


def read_paths(config: Config) -> list[str]:
    """The files and folders a build with these resolved settings reads (its output folder aside)."""
    out = os.path.abspath(config.out_dir.expanduser())
    return sorted({p for p in _paths_of(config) if p != out})


def inputs_fingerprint(paths: list[str]) -> str:
    """The stats of every file under ``paths`` (links not followed, as the stages do not follow them), of the
    package's code and data, and the libraries' versions."""
    stats = [s for path in paths for s in file_stats(path)]
    code = [s for path in _code_paths() for s in file_stats(path, follow_links=True, skip_dirs=_NOT_CODE)]
    return _digest([stats, code, [_version(name) for name in _LIBRARIES]])


def _database(db_path: Path) -> list[tuple[Any, ...]]:
    return [*file_stats(str(db_path)), *file_stats(f"{db_path}.wal")]


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
        paths = read_paths(config)
        same = (
            isinstance(record, dict)
            and record.get("invocation") == key
            and record.get("paths") == paths
            and record.get("database") == _digest(_database(config.db_path))
            and record.get("inputs") == inputs_fingerprint(paths)
        )
    except (OSError, ValueError, TypeError):
        return None
    return str(record.get("run_id")) if same else None


def forget(config: Config) -> None:
    """Before a build runs: a build that stops half-way must leave no record (one that cannot be removed is
    outdated all the same: the run writes the database)."""
    try:
        (config.out_dir / RECORD).unlink(missing_ok=True)
    except OSError as exc:
        logger.info(f"could not remove {RECORD} ({exc})")


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


def inputs_before(config: Config) -> str:
    """Before the run: the fingerprint of what it reads, for `record` (taken before, so that a file changed while
    the build runs is seen by the next build)."""
    return inputs_fingerprint(read_paths(config))


def record(config: Config, key: str, run_id: str, inputs: str) -> None:
    """After a completed build that warned of nothing: what a repeat would depend on (failing to write it only
    means that the next build runs)."""
    from cxrvqa.core.atomic import atomic_file

    content = {
        "invocation": key,
        "run_id": run_id,
        "paths": read_paths(config),
        "inputs": inputs,
        "database": _digest(_database(config.db_path)),
    }
    try:
        with atomic_file(config.out_dir / RECORD) as partial:
            partial.write_text(json.dumps(content), encoding="utf-8")
    except (OSError, CxrvqaError) as exc:
        logger.info(f"not recorded as up to date ({exc})")
