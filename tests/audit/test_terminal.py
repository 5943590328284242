"""The rich rendering: data that looks like rich markup is printed as it is."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.console import Console

from cxrvqa.audit.summary import Failure, summarise
from cxrvqa.audit.terminal import render
from cxrvqa.store import Store
from tests.audit.conftest import Build

pytestmark = pytest.mark.flow


def test_markup_in_the_data_is_printed_as_text(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        summary = summarise(store, limit=1)
    item = summary.examples[0]
    summary.examples = [
        replace(
            item,
            question="Is it [bold red]bold[/bold red]?",
            failures=[Failure("answer_program", "reject", "answer_mismatch", "[link=x]y[/link]", "reject")],
        )
    ]
    console = Console(record=True, width=200)
    render(summary, console, "[b]scope[/b]")
    text = console.export_text()
    assert "Is it [bold red]bold[/bold red]?" in text and "[link=x]y[/link]" in text and "[b]scope[/b]" in text
    assert "Failing items: 1 of" in text
