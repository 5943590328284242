"""Each report format: records become RawReports, bad records become RawRejects with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvqa.errors import InputError
from cxrvqa.reports.loaders import RawReject, RawReport, load_reports


def test_iu_csv(tmp_path: Path) -> None:
    path = tmp_path / "iu.csv"
    path.write_text('uid,MeSH,Problems,image,indication,comparison,findings,impression\n'
                    '7,normal,normal,Xray Chest PA,"Cough, XXXX.",None.,Clear lungs.,Normal.\n'
                    ',normal,normal,,,,,x\n')
    first, second = list(load_reports(path, "iu"))
    assert first == RawReport("7", "7", "iu.csv:row 2", "INDICATION: Cough, XXXX.\nCOMPARISON: None.\n"
                              "TECHNIQUE: Xray Chest PA\nFINDINGS: Clear lungs.\nIMPRESSION: Normal.")
    assert isinstance(second, RawReject) and second.reason == "invalid_record" and "uid" in second.detail


def test_iu_csv_with_wrong_columns_names_them(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("id,text\n1,a\n")
    with pytest.raises(InputError, match="IU columns"):
        list(load_reports(tmp_path / "x.csv", "iu"))


def test_mimic_tree(tmp_path: Path) -> None:
    study = tmp_path / "p10" / "p10000032" / "s50414267.txt"
    study.parent.mkdir(parents=True)
    study.write_text("FINAL REPORT\r\nFINDINGS: No pneumothorax.\r\n")
    (tmp_path / "p10" / "notes.txt").write_text("x")
    records = list(load_reports(tmp_path, "mimic"))
    assert records[0] == RawReject("p10/notes.txt", None, "unrecognised_path",
                                   "expected p<group>/p<patient>/s<study>.txt, found another path")
    assert records[1] == RawReport("s50414267", "p10000032", "p10/p10000032/s50414267.txt",
                                   "FINAL REPORT\nFINDINGS: No pneumothorax.\n")


def test_jsonl_text_sections_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [json.dumps({"study_id": "s1", "patient_id": "p1", "text": "FINDINGS: Clear."}),
             json.dumps({"study_id": 2, "findings": "Effusion.", "impression": "Effusion."}),
             "{not json", "[1, 2]", "", json.dumps({"patient_id": "p3", "text": "x"}),
             json.dumps({"study_id": "s4", "text": 5})]
    path.write_text("\n".join(lines) + "\n")
    records = list(load_reports(path, "jsonl"))
    assert records[0] == RawReport("s1", "p1", "r.jsonl:line 1", "FINDINGS: Clear.")
    assert records[1] == RawReport("2", "2", "r.jsonl:line 2", "FINDINGS: Effusion.\nIMPRESSION: Effusion.")
    assert [(r.source, r.reason) for r in records[2:]] == [
        ("r.jsonl:line 3", "invalid_record"), ("r.jsonl:line 4", "invalid_record"),
        ("r.jsonl:line 6", "invalid_record"), ("r.jsonl:line 7", "invalid_record")]
    assert "expected a JSON object, found list" in records[3].detail


def test_csv_with_sections(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("study_id,patient_id,findings,impression\na,pa,Clear lungs.,Normal.\n")
    assert list(load_reports(path, "csv")) == [
        RawReport("a", "pa", "r.csv:row 2", "FINDINGS: Clear lungs.\nIMPRESSION: Normal.")]


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_reports(tmp_path / "none.jsonl", "jsonl")
    with pytest.raises(InputError, match="no such folder"):
        load_reports(tmp_path / "none", "mimic")
