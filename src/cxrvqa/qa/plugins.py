"""Answer programs from the user's own modules: the plugin point of the `@program` registry.

A plugin is a Python file that imports `cxrvqa.qa.programs.program` and registers functions with it
(see docs/examples/plugins/side_choice.py). Plugins come from

- files: `--programs FILE.py` (build, status, audit, validate-file, templates ...) or the config key
  `qa.program_modules` (a list of paths, stored absolute with the run, so that `status`, `audit`,
  `validate-file` and later builds load them again);
- installed packages: the entry-point group `cxrvqa.programs` (each entry point names a module).

Each plugin's source is hashed (sha256, 16 hex digits); a template whose program comes from a plugin has
that hash in its version, so an edited plugin regenerates the template's items.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from cxrvqa.errors import CxrvqaError
from cxrvqa.qa import programs as registry

ENTRY_POINT_GROUP = "cxrvqa.programs"

#: source (absolute path, or "entry point NAME") -> source hash of what is loaded now
_loaded: dict[str, str] = {}
_entry_points_loaded = False


class PluginError(CxrvqaError):
    """A plugin module cannot be loaded."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"answer program module {source}: {problem}")


def source_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _forget(source: str) -> None:
    for name in [n for n, p in registry.PROGRAMS.items() if p.source == source]:
        del registry.PROGRAMS[name]
    _loaded.pop(source, None)


def _execute(source: str, digest: str, load: callable) -> None:  # type: ignore[valid-type]
    before = set(registry.PROGRAMS)
    registry._LOADING.append((source, digest))
    try:
        load()
    except CxrvqaError:
        raise
    except Exception as exc:  # the user's code: any error names the file
        for name in set(registry.PROGRAMS) - before:
            del registry.PROGRAMS[name]
        raise PluginError(source, f"importing it failed: {type(exc).__name__}: {exc}") from exc
    finally:
        registry._LOADING.pop()
    _loaded[source] = digest


def load_program_file(path: Path) -> tuple[str, str]:
    """Import one plugin file (again if its source changed); returns (absolute path, source hash)."""
    path = Path(path).expanduser().resolve()
    source = str(path)
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(
            source,
            "expected a Python file (.py) that registers answer programs with "
            "cxrvqa.qa.programs.program, found " + ("no such file" if not path.exists() else "another kind of file"),
        )
    digest = source_hash(path.read_bytes())
    if _loaded.get(source) == digest:
        return source, digest
    _forget(source)
    module_name = f"cxrvqa_plugin_{path.stem}_{digest}"

    def load() -> None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(source, "cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise

    _execute(source, digest, load)
    return source, digest


def load_entry_points() -> tuple[tuple[str, str], ...]:
    """Import the modules of the `cxrvqa.programs` entry points (once per process)."""
    global _entry_points_loaded
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {point.name} ({point.value})"
        if not _entry_points_loaded:
            module_name = point.value.split(":")[0]
            spec = importlib.util.find_spec(module_name)
            origin = Path(spec.origin) if spec and spec.origin else None
            digest = source_hash(origin.read_bytes()) if origin and origin.is_file() else "unknown"
            _execute(source, digest, lambda name=module_name: importlib.import_module(name))
        found.append((source, _loaded.get(source, "unknown")))
    _entry_points_loaded = True
    return tuple(found)


def load_programs(paths: Iterable[Path] = ()) -> tuple[tuple[str, str], ...]:
    """The entry-point plugins and the plugin files ``paths``: (source, source hash) of each."""
    return (*load_entry_points(), *(load_program_file(Path(p)) for p in paths))


def ensure_loaded(modules: Iterable[tuple[str, str]]) -> None:
    """In a worker process: import the plugin files a generation context names (see GenerationSettings)."""
    for source, _ in modules:
        if source.startswith("entry point "):
            load_entry_points()
        else:
            load_program_file(Path(source))


def unload_all() -> None:
    """Forget every plugin file's programs (tests; a long-lived process that changes its plugins)."""
    for source in [s for s in _loaded if not s.startswith("entry point ")]:
        _forget(source)
