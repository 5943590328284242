"""The layout language shared by image manifests and report tables: rows, format strings, captures."""

from __future__ import annotations

import pytest

from cxrvqa.core.table_rows import Row, capture, render
from cxrvqa.errors import InputError


def test_row_strips_cells_and_reads_absent_optional_columns_as_empty() -> None:
    row = Row({" subject_id ": " 10000032 ", None: ["extra"]}, optional=["view"])
    assert row == {"subject_id": "10000032", "view": ""}
    assert render("p{subject_id:.2}/p{subject_id}{view}", row, "m.csv:2") == "p10/p10000032"


def test_render_names_the_row_and_the_template_it_cannot_fill() -> None:
    with pytest.raises(InputError) as error:
        render("{study}", Row({"id": "1"}), "m.csv:3")
    assert (error.value.path, error.value.expected, error.value.found) == (
        "m.csv:3",
        "a row that fills '{study}'",
        "KeyError: 'study'",
    )


def test_capture_adds_named_groups_or_names_the_column_that_does_not_match() -> None:
    row = Row({"Path": "train/patient00001/study2/view1.jpg"})
    capture({"Path": r"(?P<patient>patient\d+)/(?P<study>study\d+)/"}, row, "t.csv:2")
    assert (row["patient"], row["study"]) == ("patient00001", "study2")
    with pytest.raises(InputError) as error:
        capture({"Path": r"(?P<patient>patient\d+)/"}, Row({"Path": "x.jpg"}), "t.csv:3")
    assert (error.value.expected, error.value.found) == ("Path matching '(?P<patient>patient\\\\d+)/'", "'x.jpg'")
