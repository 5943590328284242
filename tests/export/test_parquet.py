"""parquet and hf exports on the demo build: one file per split that pyarrow, DuckDB and `datasets` load with
the jsonl export's rows (hf: images decode), the dataset card's front matter and counts, filters,
byte-identical reruns, and the replacement rules of the destination folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.export.items import select
from cxrvqa.export.parquet import export_parquet, hf_features
from cxrvqa.store import Store
from tests.export.conftest import SEED, db_rows
from tests.export.test_jsonl import expected_items

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before datasets is imported: no network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
datasets = pytest.importorskip("datasets")  # in the dev extra; skipped where it is not installed

pytestmark = pytest.mark.flow
runner = CliRunner()
SPLIT_NAMES = ["train", "val", "test"]


def export(out: Path, dest: Path, fmt: str, *args: str) -> str:
    result = runner.invoke(app, ["export", "--out", str(out), "--format", fmt, "--dest", str(dest), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def folders(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parquet")
    return {fmt: root / fmt for fmt in ("parquet", "hf") if export(demo, root / fmt, fmt)}


def rows_of(folder: Path) -> list[dict]:
    return [row for split in SPLIT_NAMES for row in pq.read_table(folder / f"{split}.parquet").to_pylist()]


def test_one_file_per_split_with_the_items_of_the_database(demo: Path, folders: dict[str, Path]) -> None:
    expected = expected_items(demo)
    per_split = {s: sum(item["split"] == s for item in expected.values()) for s in SPLIT_NAMES}
    assert all(per_split.values())
    for fmt, folder in folders.items():
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "test.parquet", "train.parquet", "val.parquet"]
        for split, n in per_split.items():
            table = pq.read_table(folder / f"{split}.parquet")
            assert table.num_rows == n and set(table.column("split").to_pylist()) == {split}
        with duckdb.connect() as con:
            assert con.execute(
                f"SELECT split, count(*) FROM '{folder}/*.parquet' GROUP BY ALL ORDER BY 1"
            ).fetchall() == sorted(per_split.items())
        for row in rows_of(folder):
            want = dict(expected[row["item_id"]])
            if fmt == "hf":
                want["image"] = {"bytes": None, "path": str(demo.resolve() / want["image"])}
            assert row == want, row["item_id"]


def test_nested_fields_are_arrow_lists_and_structs(folders: dict[str, Path]) -> None:
    schema = pq.read_schema(folders["parquet"] / "train.parquet")
    box = pa.struct([("label", pa.string()), *((c, pa.float64()) for c in ("x_min", "y_min", "x_max", "y_max"))])
    assert schema.field("boxes").type.value_type == box
    assert schema.field("answer_parts").type.value_type == pa.struct(
        [
            ("kind", pa.string()),
            ("text", pa.string()),
            ("findings", pa.list_(pa.string())),
            ("regions", pa.list_(pa.string())),
        ]
    )
    assert schema.field("evidence").type.value_type == pa.struct(
        [("sentence_id", pa.int32()), ("section", pa.string()), ("text", pa.string())]
    )
    assert schema.field("provenance").type.names == [
        "run_id",
        "input_hash",
        "template_version",
        "code_version",
        "graph_id",
        "backend",
    ]
    assert schema.field("image").type == pa.string() and b"huggingface" not in (schema.metadata or {})
    hf = pq.read_schema(folders["hf"] / "train.parquet")
    assert hf.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert json.loads(hf.metadata[b"huggingface"])["info"]["features"] == hf_features(hf)


def test_our_features_are_those_datasets_derives(folders: dict[str, Path]) -> None:
    schema = pq.read_schema(folders["parquet"] / "train.parquet")
    derived = datasets.Features.from_arrow_schema(schema)
    derived["image"] = datasets.Image()
    assert hf_features(schema) == derived.to_dict()


def test_datasets_loads_both_folders(demo: Path, folders: dict[str, Path], tmp_path: Path) -> None:
    sizes = {
        i["image_id"]: (i["png_cols"], i["png_rows"])
        for i in db_rows(demo, "SELECT image_id, png_cols, png_rows FROM current_images")
    }
    expected = expected_items(demo)
    counts = {s: sum(item["split"] == s for item in expected.values()) for s in SPLIT_NAMES}
    for fmt, folder in folders.items():
        by_dir = datasets.load_dataset("parquet", data_dir=str(folder), cache_dir=str(tmp_path / fmt / "a"))
        assert {k: v.num_rows for k, v in by_dir.items()} == {
            "train": counts["train"],
            "validation": counts["val"],
            "test": counts["test"],
        }
        by_card = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / fmt / "b"))  # the card's configs
        assert {k: v.num_rows for k, v in by_card.items()} == counts
        first = by_card["val"][0]
        assert first["item_id"] == min(i for i, item in expected.items() if item["split"] == "val")
        assert first["provenance"] == expected[first["item_id"]]["provenance"]
        if fmt == "hf":
            assert isinstance(by_card["val"].features["image"], datasets.Image)
            assert first["image"].size == sizes[first["image_id"]]  # decoded to PIL
        else:
            assert first["image"] == expected[first["item_id"]]["image"]


def test_the_card_lists_files_counts_recipe_and_licences(demo: Path, folders: dict[str, Path]) -> None:
    text = (folders["hf"] / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["configs"] == [
        {"config_name": "default", "data_files": [{"split": s, "path": f"{s}.parquet"} for s in SPLIT_NAMES]}
    ]
    assert front["license"] == "other" and front["size_categories"] == ["n<1K"]
    assert front["task_categories"] == ["visual-question-answering"]
    expected = expected_items(demo)
    for column in ("question_type", "answer_format", "grade"):
        for value in {item[column] for item in expected.values()}:
            row = [
                value,
                *(sum(i[column] == value and i["split"] == s for i in expected.values()) for s in SPLIT_NAMES),
                sum(i[column] == value for i in expected.values()),
            ]
            assert "| " + " | ".join(map(str, row)) + " |" in text, (column, value)
    for template in {item["template_id"] for item in expected.values()}:
        assert f"| {template} | " in text
    assert "cxrvqa demo data" in text and "CC0" in text
    assert "| `provenance` | Run, input hash and versions" in text
    assert f'"seed": {SEED}' in text and "key_fingerprint" not in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d[ T]\d\d:\d\d", text)  # no timestamp on the card
    assert (folders["parquet"] / "README.md").read_text().replace("--format parquet", "--format hf") != text
    assert "## Measured accuracy" not in text  # nothing reviewed (with reviews: tests/review/test_accuracy.py)


def test_filters_reruns_and_the_destination_folder(demo: Path, folders: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "val-a"
    output = export(demo, dest, "parquet", "--split", "val", "--min-grade", "A")
    want = sorted(i for i, item in expected_items(demo).items() if item["split"] == "val" and item["grade_code"] >= 4)
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "val.parquet"]
    assert sorted(pq.read_table(dest / "val.parquet").column("item_id").to_pylist()) == want
    assert f"wrote {len(want)} items (val {len(want)}, grade >= A, split val)" in output
    # a rerun replaces an earlier export, byte for byte the same
    for fmt, folder in folders.items():
        again = tmp_path / f"again-{fmt}"
        export(demo, again, fmt)
        export(demo, again, fmt)
        assert {p.name: p.read_bytes() for p in again.iterdir()} == {p.name: p.read_bytes() for p in folder.iterdir()}
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name or ".previous" in p.name]
    # a folder holding anything else is never replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", "--out", str(demo), "--format", "parquet", "--dest", str(foreign)])
    assert result.exit_code == 2 and "other files ['notes.txt']" in result.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_an_empty_build_writes_the_card_only(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store:
        summary = export_parquet(store, tmp_path / "none", select(store))
    assert (summary.items, summary.per_split) == (0, {})
    assert [p.name for p in (tmp_path / "none").iterdir()] == ["README.md"]
    assert "No items were exported." in (tmp_path / "none" / "README.md").read_text()


def test_hf_features_of_nested_types() -> None:
    schema = pa.schema(
        [
            ("image", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("parts", pa.list_(pa.struct([("n", pa.int64()), ("ok", pa.bool_())]))),
            ("score", pa.float64()),
        ]
    )
    assert hf_features(schema) == {
        "image": {"_type": "Image"},
        "tags": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
        "parts": {
            "feature": {"n": {"dtype": "int64", "_type": "Value"}, "ok": {"dtype": "bool", "_type": "Value"}},
            "_type": "List",
        },
        "score": {"dtype": "float64", "_type": "Value"},
    }
