"""`cxrvqa review sample`: reproducible draws, equal strata, and each format's content."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.errors import ConfigError
from cxrvqa.export.jsonl import export_jsonl
from cxrvqa.review.sample import allocate, draw, format_of
from cxrvqa.store import Store
from tests.review.conftest import rows

pytestmark = pytest.mark.flow


def test_allocate_gives_equal_shares_and_passes_on_what_small_strata_lack() -> None:
    assert allocate({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    assert allocate({"a": 1, "b": 10, "c": 10}, 9) == {"a": 1, "b": 4, "c": 4}
    assert allocate({"a": 2, "b": 10, "c": 5}, 10) == {"a": 2, "b": 4, "c": 4}  # the odd one: most left first
    assert allocate({"a": 2, "b": 3}, 50) == {"a": 2, "b": 3}  # fewer items than asked: all
    assert sum(allocate({"a": 7, "b": 7, "c": 7}, 10).values()) == 10


def test_format_from_the_name_or_the_option() -> None:
    assert [format_of(Path(n), None) for n in ("s.jsonl", "s.HTML", "s.label-studio.json", "s.argilla.json")] == [
        "jsonl",
        "html",
        "label-studio",
        "argilla",
    ]
    assert format_of(Path("tasks.json"), "label-studio") == "label-studio"
    with pytest.raises(ConfigError, match=r"cannot tell the format from 'tasks.json'"):
        format_of(Path("tasks.json"), None)
    with pytest.raises(ConfigError, match=r"unknown format 'csv'"):
        format_of(Path("s.csv"), "csv")


def test_the_same_seed_draws_the_same_sample(review_build: Path) -> None:
    with Store(review_build / "cxrvqa.duckdb", read_only=True) as store:
        first, again, other = draw(store, 40, 5), draw(store, 40, 5), draw(store, 40, 6)
        everything = draw(store, 10_000, 1)
        by_template = draw(store, 60, 5, "template")
        by_template_again = draw(store, 60, 5, "template")
        with pytest.raises(ConfigError, match="unknown stratum 'study'"):
            draw(store, 5, 1, "study")
        with pytest.raises(ConfigError, match="expected a positive number of items, found 0"):
            draw(store, 0, 1)
    current = rows(review_build, "SELECT item_id, template_id FROM current_qa_items")
    assert first.item_ids == again.item_ids and len(set(first.item_ids)) == 40
    assert first.item_ids != other.item_ids
    assert sorted(everything.item_ids) == sorted(r["item_id"] for r in current)
    assert (everything.population, first.seed, first.stratify) == (len(current), 5, None)
    # stratified: every template gets an equal share, or all its items when it has fewer
    assert by_template.item_ids == by_template_again.item_ids
    template_of = {r["item_id"]: r["template_id"] for r in current}
    sizes = Counter(template_of.values())
    drawn = Counter(template_of[i] for i in by_template.item_ids)
    assert drawn == Counter(by_template.strata) and sum(drawn.values()) == 60
    assert drawn == Counter(allocate(dict(sizes), 60))
    assert set(drawn) == set(sizes)  # fewer templates than items asked: each one drawn


def test_cli_writes_the_jsonl_export_lines_plus_their_version(review_build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sample.jsonl"
    result = CliRunner().invoke(
        app, ["review", "sample", "--out", str(review_build), "--n", "12", "--seed", "3", "--dest", str(dest)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 12 of" in result.output and "(seed 3)" in result.output
    lines = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    with Store(review_build / "cxrvqa.duckdb", read_only=True) as store:
        export_jsonl(store, tmp_path / "all.jsonl")
        expected_ids = draw(store, 12, 3).item_ids
        versions = dict(
            store.query("SELECT item_id, item_version FROM current_item_versions(?::VARCHAR[])", [expected_ids])
        )
    exported = {
        json.loads(line)["item_id"]: json.loads(line)
        for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert [line["item_id"] for line in lines] == expected_ids  # in sample order
    for line in lines:
        version = line.pop("item_version")
        assert version == versions[line["item_id"]] and len(version) == 32
        assert line == exported[line["item_id"]]  # the export's line, field for field
        assert list(line) == list(exported[line["item_id"]])  # ... in the export's order


def test_label_studio_tasks_and_their_config(review_build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sample.label-studio.json"
    result = CliRunner().invoke(
        app, ["review", "sample", "--out", str(review_build), "--n", "8", "--seed", "2", "--dest", str(dest)]
    )
    assert result.exit_code == 0, result.output
    tasks = json.loads(dest.read_text(encoding="utf-8"))
    assert len(tasks) == 8 and all(set(t) == {"data"} for t in tasks)
    data = tasks[0]["data"]
    assert set(data) == {
        "item_id",
        "item_version",
        "template_id",
        "image",
        "report",
        "evidence",
        "question",
        "options",
        "answer",
    }
    assert all(t["data"]["image"].startswith("data:image/jpeg;base64,") for t in tasks)  # the demo has images
    item = rows(
        review_build,
        "SELECT q.question, r.text FROM current_qa_items q JOIN current_reports r USING (study_id) WHERE q.item_id = ?",
        [data["item_id"]],
    )[0]
    assert (data["question"], data["report"]) == (item["question"], item["text"])
    config = ET.fromstring((tmp_path / "sample.label-studio.xml").read_text(encoding="utf-8"))
    names = {node.get("name"): node for node in config.iter() if node.get("name")}
    assert [c.get("value") for c in names["verdict"]] == ["correct", "wrong", "unsupported", "bad_question"]
    assert [c.get("value") for c in names["grammar"]] == ["grammar error"] and names["note"].tag == "TextArea"
    variables = {node.get("value")[1:] for node in config.iter() if (node.get("value") or "").startswith("$")}
    assert variables <= set(data)  # every variable the config shows is in the tasks


def test_argilla_records(review_build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sample.argilla.json"
    result = CliRunner().invoke(
        app,
        [
            "review",
            "sample",
            "--out",
            str(review_build),
            "--n",
            "5",
            "--seed",
            "2",
            "--stratify",
            "grade",
            "--dest",
            str(dest),
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(dest.read_text(encoding="utf-8"))
    assert len(records) == 5
    record = records[0]
    assert set(record) == {"id", "fields", "metadata", "suggestions", "responses", "vectors"}
    assert set(record["fields"]) == {"report", "evidence", "question", "options", "answer", "image"}
    assert set(record["metadata"]) == {"item_version", "template_id", "study_id"}  # no grade: judged blind
    assert record["responses"] == {} and record["id"].startswith("qa-")
