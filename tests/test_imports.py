"""The import rule of the stage contract (DESIGN.md, "The stage contract"; README, "Architecture").

Stage packages never import each other; they share `cxrvqa.core`, `cxrvqa.store`, `cxrvqa.errors` and
`cxrvqa.config`. The few exceptions are declared in ALLOWED, each with its reason. `cxrvqa.core` imports no
stage package, and nothing in a stage or in core imports the command layer (`cxrvqa.cli`, `cxrvqa.staleness`),
which imports the stages. Every module under src/cxrvqa is parsed with `ast` (imports inside functions count).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "cxrvqa"
STAGES = frozenset({"reports", "extraction", "imaging", "qa", "validation", "export", "audit", "review", "synth"})
#: What every stage may import.
SHARED = frozenset({"core", "store", "errors", "config"})
#: Modules that run the stages (commands, what a rebuild would redo): only the CLI imports them.
COMMAND_LAYER = frozenset({"cli", "staleness"})

#: (importing module or package, imported module or package) -> why. A pair covers the modules under both names.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "cxrvqa.validation",
        "cxrvqa.qa",
    ): "DESIGN.md's one exception: validation re-runs the answer programs of qa (read-only) to check stored answers",
    (
        "cxrvqa.validation.validators",
        "cxrvqa.extraction.rules",
    ): "known exception, kept as it was: the evidence check re-reads an item's evidence sentences with the rules "
    "extractor (_presence_in); DESIGN.md asks validation never to import extraction",
    (
        "cxrvqa.qa.examples",
        "cxrvqa.extraction.rules",
    ): "a template's worked examples are short reports that the rules extractor reads as a build would",
    ("cxrvqa.audit", "cxrvqa.review.accuracy"): "the audit shows the accuracy that human review measured",
    ("cxrvqa.export.card", "cxrvqa.review.accuracy"): "the dataset card quotes the accuracy that human review measured",
    ("cxrvqa.review.sample", "cxrvqa.export.items"): "reviewers judge the items as an export selects and writes them",
    (
        "cxrvqa.synth",
        "cxrvqa.reports",
    ): "synth writes inputs for the stages and scores the stages on them (a harness around the build)",
    ("cxrvqa.synth", "cxrvqa.extraction"): "synth scores the extractor on the synthetic reports",
    (
        "cxrvqa.synth.images",
        "cxrvqa.imaging.header",
    ): "synthetic DICOM files carry the headers the imaging stage accepts",
}


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(absolute name, line) of every import in the source, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "cxrvqa":  # `from cxrvqa import qa`: the names are packages or modules
                found += [(f"cxrvqa.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((target, node.lineno))
    return found


def _covers(pattern: str, name: str) -> bool:
    return name == pattern or name.startswith(pattern + ".")


def _allowed(importer: str, target: str) -> bool:
    return any(_covers(a, importer) and _covers(b, target) for a, b in ALLOWED)


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import that breaks the rule, as 'module:line imports target (why it may not)'.

    ``modules``: module name -> (source, is a package's __init__)."""
    found = []
    for module, (source, is_package) in sorted(modules.items()):
        parts = module.split(".")
        own = parts[1] if len(parts) > 1 else None
        for target, line in imported_names(source, module, is_package):
            tparts = target.split(".")
            if tparts[0] != "cxrvqa" or len(tparts) < 2:
                continue
            theirs = tparts[1]
            where = f"{module}:{line} imports {target}"
            if own in STAGES and theirs in STAGES and theirs != own and not _allowed(module, target):
                found.append(f"{where} (one stage package into another)")
            elif own == "core" and theirs in STAGES:
                found.append(f"{where} (core imports no stage)")
            elif (own in STAGES or own == "core" or own in SHARED) and theirs in COMMAND_LAYER:
                found.append(f"{where} (the command layer imports the stages, not the other way)")
    return sorted(set(found))


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, tuple[str, bool]]:
    return {
        module_name(path, root): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in root.rglob("*.py")
    }


def test_no_stage_imports_another_outside_the_declared_exceptions() -> None:
    modules = package_modules()
    assert "cxrvqa.core.scene_graph" in modules and "cxrvqa.qa.generate" in modules  # the walk found the code
    assert violations(modules) == []


def test_every_declared_exception_is_still_used() -> None:
    """An exception that no import needs any more is removed from ALLOWED, so that the list stays small."""
    used = set()
    for module, (source, is_package) in package_modules().items():
        for target, _ in imported_names(source, module, is_package):
            used.update((a, b) for a, b in ALLOWED if _covers(a, module) and _covers(b, target))
    assert set(ALLOWED) - used == set()


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "cxrvqa.qa.study",
            "from cxrvqa.extraction.rules import extract_scene_graph\n",
            "cxrvqa.qa.study:1 imports cxrvqa.extraction.rules (one stage package into another)",
        ),
        (
            "cxrvqa.export.labels14",
            "def f():\n    import cxrvqa.extraction.evaluation\n",
            "cxrvqa.export.labels14:2 imports cxrvqa.extraction.evaluation (one stage package into another)",
        ),
        (
            "cxrvqa.audit.command",
            "from cxrvqa.cli import app\n",
            "cxrvqa.audit.command:1 imports cxrvqa.cli (the command layer imports the stages, not the other way)",
        ),
        (
            "cxrvqa.core.vocab",
            "from cxrvqa import qa\n",
            "cxrvqa.core.vocab:1 imports cxrvqa.qa (core imports no stage)",
        ),
        (
            "cxrvqa.review.page",
            "from ..audit import html\n",
            "cxrvqa.review.page:1 imports cxrvqa.audit (one stage package into another)",
        ),
        (
            "cxrvqa.reports.stage",
            "from cxrvqa.validation import judge\n",
            "cxrvqa.reports.stage:1 imports cxrvqa.validation (one stage package into another)",
        ),
    ],
)
def test_a_bad_import_is_caught(module: str, source: str, expected: str) -> None:
    assert expected in violations({module: (source, False)})


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("cxrvqa.qa.study", "from cxrvqa.core.scene_graph import SceneGraph\nfrom cxrvqa.store import Store\n"),
        ("cxrvqa.validation.stage", "from cxrvqa.qa.generate import generate_study\n"),  # the declared exception
        ("cxrvqa.qa.stage", "from cxrvqa.qa.study import study_view\nfrom . import programs\n"),
        ("cxrvqa.cli", "from cxrvqa.extraction import stage\nfrom cxrvqa.staleness import stale_work\n"),
    ],
)
def test_a_good_import_passes(module: str, source: str) -> None:
    assert violations({module: (source, False)}) == []


def test_the_rule_reads_a_real_file_with_a_bad_import(tmp_path: Path) -> None:
    root = tmp_path / "cxrvqa"
    (root / "qa").mkdir(parents=True)
    (root / "qa" / "__init__.py").write_text("")
    (root / "qa" / "bad.py").write_text("from cxrvqa.reports.loaders import load_reports\n")
    assert violations(package_modules(root)) == [
        "cxrvqa.qa.bad:1 imports cxrvqa.reports.loaders (one stage package into another)"
    ]
