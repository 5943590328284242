"""Each report format: records become RawReports, bad records become RawRejects with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvqa.errors import InputError
from cxrvqa.reports.loaders import RawReject, RawReport, load_reports


def test_iu_csv(tmp_path: Path) -> None:
    path = tmp_path / "iu.csv"
    path.write_text(
        "uid,MeSH,Problems,image,indication,comparison,findings,impression\n"
        '7,normal,normal,Xray Chest PA,"Cough, XXXX.",None.,Clear lungs.,Normal.\n'
        ",normal,normal,,,,,x\n"
    )
    first, second = list(load_reports(path, "iu"))
    assert first == RawReport(
        "7",
        "7",
        "iu.csv:row 2",
        "INDICATION: Cough, XXXX.\nCOMPARISON: None.\n"
        "TECHNIQUE: Xray Chest PA\nFINDINGS: Clear lungs.\nIMPRESSION: Normal.",
    )
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
    assert records[0] == RawReject(
        "p10/notes.txt", None, "unrecognised_path", "expected p<group>/p<patient>/s<study>.txt, found another path"
    )
    assert records[1] == RawReport(
        "s50414267", "p10000032", "p10/p10000032/s50414267.txt", "FINAL REPORT\nFINDINGS: No pneumothorax.\n"
    )


def test_jsonl_text_sections_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        json.dumps({"study_id": "s1", "patient_id": "p1", "text": "FINDINGS: Clear."}),
        json.dumps({"study_id": 2, "findings": "Effusion.", "impression": "Effusion."}),
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"patient_id": "p3", "text": "x"}),
        json.dumps({"study_id": "s4", "text": 5}),
    ]
    path.write_text("\n".join(lines) + "\n")
    records = list(load_reports(path, "jsonl"))
    assert records[0] == RawReport("s1", "p1", "r.jsonl:line 1", "FINDINGS: Clear.")
    assert records[1] == RawReport("2", "2", "r.jsonl:line 2", "FINDINGS: Effusion.\nIMPRESSION: Effusion.")
    assert [(r.source, r.reason) for r in records[2:]] == [
        ("r.jsonl:line 3", "invalid_record"),
        ("r.jsonl:line 4", "invalid_record"),
        ("r.jsonl:line 6", "invalid_record"),
        ("r.jsonl:line 7", "invalid_record"),
    ]
    assert "expected a JSON object, found list" in records[3].detail


def test_csv_with_sections(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("study_id,patient_id,findings,impression\na,pa,Clear lungs.,Normal.\n")
    assert list(load_reports(path, "csv")) == [
        RawReport("a", "pa", "r.csv:row 2", "FINDINGS: Clear lungs.\nIMPRESSION: Normal.")
    ]


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_reports(tmp_path / "none.jsonl", "jsonl")
    with pytest.raises(InputError, match="no such folder"):
        load_reports(tmp_path / "none", "mimic")


# CheXpert Plus: its published header, rows invented (one per image; two images of patient00001/study1 repeat
# the study's report; patient00002/study1 is given two different reports; a path without patient/study).
CHEXPERT_PLUS = (
    "path_to_image,path_to_dcm,frontal_lateral,ap_pa,deid_patient_id,patient_report_date_order,report,"
    "section_narrative,section_clinical_history,section_history,section_comparison,section_technique,"
    "section_procedure_comments,section_findings,section_impression,section_end_of_impression,split\n"
    "train/patient00001/study1/view1_frontal.jpg,x.dcm,Frontal,PA,patient00001,1,r,n,Cough.,,None.,PA view.,,"
    "No effusion.,Normal chest.,,train\n"
    "train/patient00001/study1/view2_lateral.jpg,y.dcm,Lateral,,patient00001,1,r,n,Cough.,,None.,PA view.,,"
    "No effusion.,Normal chest.,,train\n"
    "train/patient00002/study1/view1_frontal.jpg,z.dcm,Frontal,AP,patient00002,1,r,n,,Fever.,,,,,"
    "Right lower lobe opacity.,,train\n"
    "train/patient00002/study1/view2_frontal.jpg,w.dcm,Frontal,AP,patient00002,1,r,n,,Fever.,,,,,"
    "Left lower lobe opacity.,,train\n"
    "train/unnamed.jpg,v.dcm,Frontal,AP,patient00003,1,r,n,,,,,,Clear.,Normal.,,train\n"
)


def test_chexpert_plus_table_one_report_per_study_ids_from_the_image_path(tmp_path: Path) -> None:
    from cxrvqa.reports.stage import reject_duplicate_studies

    path = tmp_path / "df_chexpert_plus_240401.csv"
    path.write_text(CHEXPERT_PLUS)
    records = list(reject_duplicate_studies(load_reports(path, "chexpert_plus")))
    assert records[:2] == [
        RawReport(
            "patient00001/study1",
            "patient00001",
            "df_chexpert_plus_240401.csv:row 2",
            "INDICATION: Cough.\nCOMPARISON: None.\nTECHNIQUE: PA view.\nFINDINGS: No effusion.\n"
            "IMPRESSION: Normal chest.",
        ),
        RawReport(
            "patient00002/study1",
            "patient00002",
            "df_chexpert_plus_240401.csv:row 4",
            "INDICATION: Fever.\nIMPRESSION: Right lower lobe opacity.",
        ),
    ]
    assert records[2] == RawReject(
        "df_chexpert_plus_240401.csv:row 5",
        "patient00002/study1",
        "duplicate_study",
        "study 'patient00002/study1' was already loaded from df_chexpert_plus_240401.csv:row 4",
    )
    assert records[3] == RawReject(
        "df_chexpert_plus_240401.csv:row 6",
        None,
        "invalid_record",
        "expected path_to_image matching '(?:^|/)(?P<patient>patient\\\\d+)/(?P<study>study\\\\d+)/', "
        "found 'train/unnamed.jpg'",
    )
    assert len(records) == 4


# ReXGradient-160K: the columns public code reads (id, Findings, Impression, ...) with invented values; the
# second file has no PatientID column, so the patient is the study.
def test_rexgradient_table(tmp_path: Path) -> None:
    path = tmp_path / "test_metadata.csv"
    path.write_text(
        "id,PatientID,StudyInstanceUid,AccessionNumber,Indication,Comparison,Findings,Impression\n"
        "pGRDN1_s1,pGRDN1,1.2.3,A1,Chest pain.,None.,The lungs are clear.,No acute process.\n"
        "pGRDN1_s1,pGRDN1,1.2.3,A1,Chest pain.,None.,The lungs are clear.,No acute process.\n"
        ",pGRDN2,1.2.4,A2,,,Clear.,Normal.\n"
    )
    records = list(load_reports(path, "rexgradient"))
    assert records[0] == RawReport(
        "pGRDN1_s1",
        "pGRDN1",
        "test_metadata.csv:row 2",
        "INDICATION: Chest pain.\nCOMPARISON: None.\nFINDINGS: The lungs are clear.\nIMPRESSION: No acute process.",
    )
    assert records[1] == RawReject(
        "test_metadata.csv:row 4", None, "invalid_record", "expected a non-empty study_id, found ''"
    )
    assert len(records) == 2
    bare = tmp_path / "valid_metadata.csv"
    bare.write_text("id,Findings,Impression\ns9,Small left effusion.,Effusion.\n")
    assert list(load_reports(bare, "rexgradient")) == [
        RawReport("s9", "s9", "valid_metadata.csv:row 2", "FINDINGS: Small left effusion.\nIMPRESSION: Effusion.")
    ]


def test_report_table_with_wrong_columns_names_the_table(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("study_id,text\n1,a\n")
    with pytest.raises(InputError) as error:
        load_reports(tmp_path / "x.csv", "rexgradient")
    assert error.value.expected == (
        "ReXGradient-160K metadata CSV (metadata/{train,valid,test}_metadata.csv) "
        "columns ['id', 'Findings', 'Impression']"
    )
    assert error.value.found == "columns ['study_id', 'text']"


def test_config_accepts_every_report_format() -> None:
    from typing import get_args

    from cxrvqa.config import Config
    from cxrvqa.reports.loaders import report_formats

    assert sorted(get_args(Config.model_fields["report_format"].annotation)) == report_formats()
