"""Content hashes and version stamps that every stage row carries."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cxrvqa import __version__

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(value: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def code_digest(module_file: Path | str) -> str:
    """A digest of a Python module's syntax tree: a comment, a blank line or a reformatting (`ruff format`)
    leaves it as it was, so a version made from it does not make every stored output stale; any change to
    what the code does changes it. Parsed once per version of the file (~50 ms for the rules extractor)."""
    stat = Path(module_file).stat()
    return _tree_digest(str(module_file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _tree_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(ast.dump(ast.parse(Path(path).read_text(encoding="utf-8"))).encode()).hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a digest of the installed source, so edits are visible in provenance."""
    package_dir = Path(__file__).resolve().parents[1]  # the whole cxrvqa package, not only core/
    digest = hashlib.sha256()
    for source in sorted(package_dir.rglob("*.py")):
        digest.update(source.relative_to(package_dir).as_posix().encode())
        digest.update(source.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"


def file_stats(path: str, follow_links: bool = False, skip_dirs: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    """(path, size, mtime_ns, inode) of a file, or of every file under a folder (walked in sorted order, leaving
    out folders named in ``skip_dirs``): what tells a rebuild that an input changed without reading it.
    (path, None) for one that cannot be stat'ed (gone, a dangling link)."""
    if not os.path.isdir(path):
        return [_file_stat(path)]
    stats = []
    for root, dirs, names in os.walk(path, followlinks=follow_links):
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs)
        stats += [_file_stat(os.path.join(root, name)) for name in sorted(names)]
    return stats


def _file_stat(path: str) -> tuple[Any, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)
