"""labels14 scoring: exact counts, the layout check, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.core.vocab import finding_labels
from cxrvqa.errors import InputError
from cxrvqa.extraction.evaluation import score_labels14

COLUMNS = [
    "filename",
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
    "normal",
]


def write(path: Path, rows: dict[str, dict[str, int]], columns: list[str] = COLUMNS) -> Path:
    lines = [",".join(columns)]
    lines += [",".join([name] + [str(values.get(c, 0)) for c in columns[1:]]) for name, values in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_labels_come_from_the_vocabulary() -> None:
    assert finding_labels() | {"normal"} == set(COLUMNS[1:])


def test_exact_counts(tmp_path: Path) -> None:
    gold = write(
        tmp_path / "gold.csv",
        {"CXR1": {"Effusion": 1}, "CXR2": {"Effusion": 1, "Edema": 1}, "CXR3": {"normal": 1}, "CXR4": {"Mass": 1}},
    )
    pred = write(
        tmp_path / "pred.csv",
        {"CXR1": {"Effusion": 1}, "CXR2": {"Edema": 1, "Nodule": 1}, "CXR3": {"normal": 1}, "CXR9": {"Mass": 1}},
    )
    report = score_labels14(pred, gold)
    by_label = {s.label: s for s in report.labels}
    effusion = by_label["Effusion"]
    assert (effusion.support, effusion.tp, effusion.fp, effusion.fn) == (2, 1, 0, 1)
    assert (effusion.precision, effusion.recall, effusion.f1) == (1.0, 0.5, pytest.approx(2 / 3))
    assert (by_label["Nodule"].fp, by_label["Nodule"].f1) == (1, 0.0)
    assert by_label["Hernia"].f1 is None  # nothing to score: left out of the macro average
    assert (report.micro.tp, report.micro.fp, report.micro.fn) == (2, 1, 2)
    assert report.macro_f1 == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)  # Effusion, Edema, Nodule, Mass
    assert (report.normal.f1, report.studies, report.missing_in_pred, report.extra_in_pred) == (1.0, 4, 1, 1)


def test_bad_files_name_the_row_and_column(tmp_path: Path) -> None:
    gold = write(tmp_path / "gold.csv", {"CXR1": {}})
    bad_value = tmp_path / "pred.csv"
    bad_value.write_text(",".join(COLUMNS) + "\nCXR1," + ",".join(["0"] * 13) + ",-1,0\n")
    with pytest.raises(InputError, match=r"pred.csv:2: expected 0 or 1 in column 'Hernia', found '-1'"):
        score_labels14(bad_value, gold)
    with pytest.raises(InputError, match="expected columns filename"):
        score_labels14(write(tmp_path / "p2.csv", {"CXR1": {}}, COLUMNS[:-1]), gold)


def test_cli(tmp_path: Path) -> None:
    gold = write(tmp_path / "gold.csv", {"CXR1": {"Effusion": 1}, "CXR2": {"normal": 1}})
    result = CliRunner().invoke(app, ["eval", "labels14", "--pred", str(gold), "--gold", str(gold), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["micro"]["f1"] == 1.0
    table = CliRunner().invoke(app, ["eval", "labels14", "--pred", str(gold), "--gold", str(gold)])
    assert table.exit_code == 0 and "Effusion" in table.stdout and "n/a" in table.stdout
    missing = CliRunner().invoke(app, ["eval", "labels14", "--pred", str(tmp_path / "x.csv"), "--gold", str(gold)])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_gold_file_scores_itself_perfectly(data_dir: Path) -> None:
    gold = data_dir / "reports" / "iu_dev_labels14.csv"
    report = score_labels14(gold, gold)
    assert report.studies == 2848 and report.micro.f1 == 1.0 and report.normal.f1 == 1.0 and report.macro_f1 == 1.0
