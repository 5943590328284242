"""Provenance digests: what makes stored outputs stale and what does not."""

from __future__ import annotations

from pathlib import Path

from cxrvqa.core.provenance import code_digest


def test_a_code_digest_reads_the_code_not_its_layout(tmp_path: Path) -> None:
    module, reformatted = tmp_path / "a.py", tmp_path / "b.py"
    module.write_text("def f(x):\n    return x + 1\n")
    reformatted.write_text("def f(x):  # a comment\n\n    return (\n        x + 1\n    )\n")
    assert code_digest(reformatted) == code_digest(module)
    reformatted.write_text("def f(x):\n    return x + 2\n")
    assert code_digest(reformatted) != code_digest(module)
