"""llava export on the demo build: LLaVA's conversation layout (image token, options and letter for multiple
choice), images that resolve, filters, byte-identical reruns, and items without an image left out and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.export.items import export_data
from cxrvqa.store import Store
from tests.export.test_jsonl import expected_items

pytestmark = pytest.mark.flow
runner = CliRunner()


def export(out: Path, dest: Path, *args: str) -> str:
    result = runner.invoke(app, ["export", "--out", str(out), "--format", "llava", "--dest", str(dest), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_conversations_in_llava_layout(demo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "llava.json"
    output = export(demo, dest)
    entries = json.loads(dest.read_text())
    expected = expected_items(demo)
    assert [e["id"] for e in entries] == sorted(expected, key=lambda i: (expected[i]["study_id"], i))
    assert "skipped" not in output and f"wrote {len(entries)} items" in output
    assert f"relative to the build folder {demo.resolve()} (use it as --image_folder)" in output
    wording = export_data()["llava"]
    multiple_choice = 0
    for entry in entries:
        item = expected[entry["id"]]
        assert list(entry) == ["id", "image", "conversations"] and (demo / entry["image"]).is_file()
        human, gpt = entry["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        if item["answer_format"] == "multiple_choice":
            multiple_choice += 1
            options = "\n".join(f"{letter}. {option}" for letter, option in zip("ABCDE", item["options"], strict=False))
            assert human["value"] == (
                f"{wording['image_token']}\n{item['question']}\n{options}\n{wording['multiple_choice_instruction']}"
            )
            assert gpt["value"] == item["correct_option"]
            assert item["options"]["ABCD".index(gpt["value"])] == item["answer"]
        else:
            assert human["value"] == f"<image>\n{item['question']}" and gpt["value"] == item["answer"]
    assert multiple_choice > 0
    again = tmp_path / "again.json"
    export(demo, again)
    assert again.read_bytes() == dest.read_bytes()


def test_filters(demo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "test-a.json"
    export(demo, dest, "--split", "test", "--min-grade", "A+")
    want = {i for i, item in expected_items(demo).items() if item["split"] == "test" and item["grade_code"] >= 5}
    assert {e["id"] for e in json.loads(dest.read_text())} == want and want


def test_items_without_an_image_are_left_out_and_counted(demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    with Store(copy / "cxrvqa.duckdb") as store:  # demo-s4 as a report-only study
        store.con.execute("UPDATE qa_items SET image_id = NULL, view_plane = NULL WHERE study_id = 'demo-s4'")
        without, total = store.query("SELECT count(*) FILTER (image_id IS NULL), count(*) FROM current_qa_items")[0]
    assert 0 < without < total
    dest = tmp_path / "llava.json"
    output = export(copy, dest)
    entries = json.loads(dest.read_text())
    assert len(entries) == total - without and all(e["image"] for e in entries)
    assert f"wrote {total - without} items" in output
    assert f"skipped {without} items: no_image (LLaVA needs an image)" in output
