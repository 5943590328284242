"""Box import: exact outcomes and reason codes per line, rescaling through the view, reruns."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cxrvqa.errors import ConfigError, InputError, ResourceError
from cxrvqa.imaging import boxes as boxes_module
from cxrvqa.imaging.boxes import BoxReason, box_classes, import_boxes
from cxrvqa.store import Store

BOXES = Path(__file__).resolve().parent.parent / "data" / "boxes"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def image_row(
    image_id: str,
    source_path: str,
    cols: int,
    rows: int,
    png_cols: int,
    png_rows: int,
    created_at: datetime = T0,
    recipe: str = "r1",
) -> dict:
    """An `images` row with what the box import and the view read; the rest filled plausibly."""
    return {
        "image_id": image_id,
        "recipe_version": recipe,
        "study_id": f"study_{image_id}",
        "patient_id": "p",
        "source_path": source_path,
        "png_path": f"{image_id}.png",
        "view_position": "PA",
        "view_source": "ViewPosition",
        "view_plane": "frontal",
        "photometric": "MONOCHROME2",
        "inverted": False,
        "window_source": "window",
        "decode_method": "full",
        "decode_reduction": 1,
        "rows": rows,
        "cols": cols,
        "png_rows": png_rows,
        "png_cols": png_cols,
        "scale_x": png_cols / cols,
        "scale_y": png_rows / rows,
        "png_sha256": "0" * 64,
        "run_id": "images-run",
        "input_hash": f"hash_{image_id}_{recipe}",
        "code_version": "test",
        "created_at": created_at,
    }


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "cxrvqa.duckdb") as opened:
        opened.insert(
            "images",
            [
                image_row("img_a", "a/0001.dcm", 2000, 2500, 500, 625),
                image_row("img_b", "b/0002.dicom", 3000, 3000, 1024, 1024),
                image_row("img_c1", "x/dup.dcm", 1000, 1000, 250, 250),
                image_row("img_c2", "y/dup.dcm", 1000, 1000, 250, 250),
            ],
        )
        yield opened


@pytest.fixture
def vindr(tmp_path: Path) -> Path:
    """A copy, so that source_file is a path of this test only."""
    return Path(shutil.copy(BOXES / "vindr_small.csv", tmp_path / "vindr_small.csv"))


@pytest.fixture
def nih(tmp_path: Path) -> Path:
    return Path(shutil.copy(BOXES / "nih_small.csv", tmp_path / "nih_small.csv"))


def outcomes(store: Store) -> dict[int, str]:
    """source_line -> label of the box, or the reject reason."""
    found = dict(store.query("SELECT source_line, label FROM boxes"))
    found.update(store.query("SELECT source_line, reason FROM box_rejects"))
    return found


def test_vindr_every_line_has_its_exact_outcome(store: Store, vindr: Path) -> None:
    summary = import_boxes(store, vindr, fmt="auto", run_id="run1")
    assert summary.fmt == "vindr"
    assert (summary.n_rows, summary.n_imported, summary.n_skipped, summary.n_rejected) == (13, 4, 0, 9)
    assert summary.reasons == Counter(
        {
            "no_box": 1,
            "unknown_class": 1,
            "unmapped_class": 1,
            "invalid_row": 2,
            "degenerate_box": 1,
            "box_outside_image": 1,
            "unknown_image": 1,
            "ambiguous_image": 1,
        }
    )
    assert outcomes(store) == {
        2: "cardiomegaly",
        3: "no_box",
        4: "heart",
        5: "lung_lesion",
        6: "pleural_effusion",
        7: "unknown_class",
        8: "unmapped_class",
        9: "invalid_row",
        10: "invalid_row",
        12: "degenerate_box",
        13: "box_outside_image",
        14: "unknown_image",
        15: "ambiguous_image",
    }
    rows = {r["source_line"]: r for r in store.query_dicts("SELECT * FROM boxes")}
    assert (rows[2]["image_id"], rows[2]["kind"], rows[2]["class_name"], rows[2]["rater"]) == (
        "img_a",
        "finding",
        "Cardiomegaly",
        "R9",
    )
    assert (rows[4]["kind"], rows[4]["label"], rows[4]["class_name"]) == ("region", "heart", "Heart")
    assert rows[5]["image_id"] == "img_b"  # by our image_id
    assert (rows[6]["image_id"], rows[6]["x_max"]) == ("img_b", 3000.0)  # by stem; 0.5 px over: clipped
    assert (rows[2]["ref_cols"], rows[2]["ref_rows"]) == (2000, 2500)  # DICOM size by default
    assert {(r["source_file"], r["input_hash"], r["run_id"]) for r in rows.values()} == {
        (str(vindr), summary.input_hash, "run1")
    }
    assert all(r["code_version"] for r in rows.values())


def test_reject_details_name_file_line_expected_and_found(store: Store, vindr: Path) -> None:
    import_boxes(store, vindr, run_id="run1")
    details = dict(store.query("SELECT source_line, detail FROM box_rejects"))
    assert details[9] == f"{vindr} line 9: column y_min expected a finite number, found 'ten'"
    assert details[10] == (
        f"{vindr} line 10: expected 8 fields (image_id, class_name, class_id, rad_id, "
        "x_min, y_min, x_max, y_max), found 4"
    )
    assert details[7].startswith(f"{vindr} line 7: expected a class listed in schemas/vocab/box_classes.yaml")
    assert details[7].endswith("found 'Pneumonitis'")
    assert (
        details[12] == f"{vindr} line 12: expected a positive width and height, found x_min=50, x_max=50, "
        "y_min=50, y_max=80"
    )
    assert "expected a box within the 3000x3000 image" in details[13] and "(3010, 200)" in details[13]
    assert "found none for '9999'" in details[14]
    assert "found 2 with that file stem (image ids img_c1, img_c2)" in details[15]


def test_current_boxes_are_in_png_pixels_of_the_current_rendering(store: Store, vindr: Path) -> None:
    import_boxes(store, vindr, run_id="run1")
    query = "SELECT study_id, x_min, y_min, x_max, y_max, png_cols, png_rows FROM current_boxes WHERE box_id = ?"
    box_id = store.query("SELECT box_id FROM boxes WHERE source_line = 2")[0][0]
    assert store.query(query, [box_id]) == [("study_img_a", 100.0, 300.0, 400.0, 500.0, 500, 625)]
    # Re-rendered at twice the size: the same stored box, twice the PNG coordinates.
    store.insert("images", [image_row("img_a", "a/0001.dcm", 2000, 2500, 1000, 1250, T0 + timedelta(days=1), "r2")])
    assert store.query(query, [box_id]) == [("study_img_a", 200.0, 600.0, 800.0, 1000.0, 1000, 1250)]
    assert store.query("SELECT count(*) FROM current_boxes")[0][0] == 4


def test_nih_format_defaults_to_1024_reference(store: Store, nih: Path) -> None:
    summary = import_boxes(store, nih, fmt="nih", run_id="run1")
    assert (summary.fmt, summary.n_rows, summary.n_imported, summary.n_skipped, summary.n_rejected) == (
        "nih",
        6,
        2,
        0,
        4,
    )
    assert outcomes(store) == {
        2: "pleural_effusion",
        3: "infiltrate",
        4: "degenerate_box",
        5: "box_outside_image",
        6: "invalid_row",
        7: "invalid_row",
    }
    assert store.query("SELECT ref_cols, ref_rows, x_min, y_min, x_max, y_max FROM boxes ORDER BY source_line") == [
        (1024, 1024, 512.0, 256.0, 768.0, 768.0),
        (1024, 1024, 0.0, 0.0, 1024.0, 100.0),
    ]
    assert store.query("SELECT image_id, x_min, y_min, x_max, y_max FROM current_boxes ORDER BY image_id") == [
        ("img_a", 250.0, 156.25, 375.0, 468.75),
        ("img_b", 0.0, 0.0, 1024.0, 100.0),
    ]


def test_reference_size_given_by_the_user_overrides_the_default(store: Store, nih: Path) -> None:
    import_boxes(store, nih, fmt="auto", run_id="run1", reference_size=(2048, 2048))
    assert store.query("SELECT image_id, x_min, x_max FROM current_boxes WHERE image_id = 'img_a'") == [
        ("img_a", 125.0, 187.5)
    ]


def test_rerun_skips_imported_lines_and_rechecks_rejects(store: Store, vindr: Path) -> None:
    first = import_boxes(store, vindr, run_id="run1")
    again = import_boxes(store, vindr, run_id="run2")
    assert (again.n_rows, again.n_imported, again.n_skipped, again.n_rejected) == (13, 0, 4, 9)
    assert again.reasons == first.reasons
    assert store.query("SELECT count(*) FROM boxes")[0][0] == 4
    assert store.query("SELECT count(*) FROM box_rejects")[0][0] == 9  # same rejects are not written twice
    assert store.query("SELECT run_id FROM box_imports") == [("run1",)]  # the current version already: no new row
    # The unknown image is ingested later: the next rerun imports its line.
    store.insert("images", [image_row("img_9", "n/9999.dcm", 100, 100, 50, 50)])
    third = import_boxes(store, vindr, run_id="run3")
    assert (third.n_imported, third.n_skipped, third.n_rejected) == (1, 4, 8)
    assert store.query("SELECT run_id, image_id FROM boxes WHERE source_line = 14") == [("run3", "img_9")]
    assert 14 not in dict(store.query("SELECT source_line, reason FROM current_box_rejects"))
    assert store.query("SELECT count(*) FROM current_box_rejects")[0][0] == 8


def test_an_edited_file_is_a_new_input(store: Store, vindr: Path) -> None:
    import_boxes(store, vindr, run_id="run1")
    vindr.write_text(vindr.read_text() + "0001,Atelectasis,1,R9,10,10,20,20\n")
    summary = import_boxes(store, vindr, run_id="run2")
    assert (summary.n_rows, summary.n_imported, summary.n_skipped) == (14, 5, 0)
    assert store.query("SELECT count(DISTINCT input_hash) FROM boxes")[0][0] == 2
    # the current boxes are the edited file's (before, every box ever imported was current: each one twice)
    current = "SELECT count(*), count(DISTINCT b.input_hash) FROM current_boxes JOIN boxes b USING (box_id)"
    assert store.query(current) == [(5, 1)]
    edited = store.query("SELECT box_id FROM current_boxes ORDER BY box_id")
    vindr.write_text("".join(vindr.read_text().splitlines(keepends=True)[:-1]))  # edited back
    summary = import_boxes(store, vindr, run_id="run3")
    assert (summary.n_imported, summary.n_skipped) == (0, 4)
    assert store.query(current) == [(4, 1)] and store.query("SELECT box_id FROM current_boxes") != edited
    assert store.query("SELECT run_id FROM box_imports ORDER BY created_at") == [("run1",), ("run2",), ("run3",)]


def test_import_is_one_transaction(store: Store, vindr: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_insert = Store.insert

    def failing_insert(self: Store, table: str, rows: object) -> int:
        if table == "box_rejects":
            raise RuntimeError("disk full")
        return real_insert(self, table, rows)

    monkeypatch.setattr(Store, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        import_boxes(store, vindr, run_id="run1")
    assert store.query("SELECT count(*) FROM boxes")[0][0] == 0


def test_unknown_header_names_file_expected_and_found(store: Store) -> None:
    path = BOXES / "unknown_header.csv"
    with pytest.raises(InputError) as caught:
        import_boxes(store, path, run_id="run1")
    message = str(caught.value)
    assert message.startswith(f"{path}: expected a VinDr header (image_id, class_name, x_min, y_min, x_max, y_max")
    assert "or an NIH header (Image Index, Finding Label, Bbox [x,y,w,h])" in message
    assert message.endswith("found the header 'Image,Label,X,Y'")


def test_format_that_does_not_match_the_header_is_an_input_error(store: Store, vindr: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"expected an NIH header .* found the header 'image_id,class_name"):
        import_boxes(store, vindr, fmt="nih", run_id="run1")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="found an empty file"):
        import_boxes(store, empty, run_id="run1")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("image_id,class_name,x_min,y_min,x_max,y_max\n0001,Pleurésie,1,1,2,2\n".encode("latin-1"))
    with pytest.raises(
        InputError, match=r"latin1.csv:2: expected UTF-8 text, found byte 0xe9 at byte offset 54 \(line 2\)"
    ):
        import_boxes(store, latin1, run_id="run1")
    with pytest.raises(InputError, match="no such file"):
        import_boxes(store, tmp_path / "missing.csv", run_id="run1")
    assert store.query("SELECT count(*) FROM boxes")[0][0] == 0


def test_dotted_file_names_keep_their_last_part(store: Store, tmp_path: Path) -> None:
    """A DICOM named by its UID has no extension to drop: '1.2.840.7' is not the stem '1.2.840'."""
    store.insert(
        "images",
        [
            image_row("img_uid", "s/1.2.840.7", 100, 100, 50, 50),
            image_row("img_uid_dcm", "s/1.2.840.8.dcm", 100, 100, 50, 50),
        ],
    )
    path = tmp_path / "uids.csv"
    path.write_text(
        "image_id,class_name,x_min,y_min,x_max,y_max\n1.2.840.7,Mass,1,1,2,2\n"
        "1.2.840.8,Mass,1,1,2,2\n1.2.840,Mass,1,1,2,2\n"
    )
    import_boxes(store, path, run_id="run1")
    assert outcomes(store) == {2: "mass", 3: "mass", 4: "unknown_image"}
    assert store.query("SELECT image_id FROM boxes ORDER BY source_line") == [("img_uid",), ("img_uid_dcm",)]


@pytest.mark.parametrize("kwargs", [{"fmt": "coco"}, {"reference_size": (1024,)}, {"reference_size": (0, 1024)}])
def test_bad_arguments_are_config_errors(store: Store, vindr: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        import_boxes(store, vindr, run_id="run1", **kwargs)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("Atelectasis", ("finding", "atelectasis")),
        ("Cardiomegaly", ("finding", "cardiomegaly")),
        ("Effusion", ("finding", "pleural_effusion")),
        ("Infiltrate", ("finding", "infiltrate")),
        ("Mass", ("finding", "mass")),
        ("Nodule", ("finding", "nodule")),
        ("Pneumonia", ("finding", "pneumonia")),
        ("Pneumothorax", ("finding", "pneumothorax")),
        ("Aortic enlargement", ("finding", "aortic_enlargement")),
        ("ILD", ("finding", "interstitial_lung_disease")),
        ("Infiltration", ("finding", "infiltrate")),
        ("Lung Opacity", ("finding", "lung_opacity")),
        ("Nodule/Mass", ("finding", "lung_lesion")),
        ("Enlarged PA", ("finding", "pulmonary_artery_enlargement")),
        ("Lung cavity", ("finding", "cavitation")),
        ("Pulmonary fibrosis", ("finding", "fibrosis")),
        ("Rib fracture", ("finding", "rib_fracture")),
        ("heart", ("region", "heart")),
        ("thorax", ("region", "chest")),
        ("Right  Lung", ("region", "right_lung")),
        ("left lung", ("region", "left_lung")),
        ("mediastinum", ("region", "mediastinum")),
        ("trachea", ("region", "trachea")),
    ],
)
def test_class_names_map_to_vocabulary_ids(name: str, target: tuple[str, str]) -> None:
    assert box_classes().targets[" ".join(name.split()).casefold()] == target


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"findings": [{"id": "not_a_finding", "names": ["X"]}], "regions": []}, "schemas/vocab/findings.yaml"),
        ({"findings": [], "regions": [{"id": "cardiomegaly", "names": ["X"]}]}, "schemas/vocab/regions.yaml"),
        (
            {"findings": [{"id": "mass", "names": ["Mass"]}], "regions": [{"id": "heart", "names": ["MASS"]}]},
            "listed twice",
        ),
    ],
)
def test_bad_class_mapping_is_a_resource_error(monkeypatch: pytest.MonkeyPatch, data: dict, problem: str) -> None:
    full = {"version": 1, "no_box": [], "unmapped": [], **data}
    monkeypatch.setattr(boxes_module, "load_checked_yaml", lambda *_: (full, "hash"))
    box_classes.cache_clear()
    try:
        with pytest.raises(ResourceError, match="box_classes.yaml") as caught:
            box_classes()
        assert problem in str(caught.value)
    finally:
        box_classes.cache_clear()


def test_reason_codes_are_stable() -> None:
    assert sorted(BoxReason) == [
        "ambiguous_image",
        "box_outside_image",
        "degenerate_box",
        "invalid_row",
        "no_box",
        "unknown_class",
        "unknown_image",
        "unmapped_class",
    ]


def test_real_nih_file_parses_and_maps_every_row(store: Store, data_dir: Path) -> None:
    path = data_dir / "annotations" / "nih_cxr14_bbox_list_2017.csv"
    summary = import_boxes(store, path, run_id="run1")
    # Class and geometry are checked before the image, so 984 unknown_image = all parse, map and have a size.
    assert (summary.fmt, summary.n_rows, summary.n_imported, summary.n_rejected) == ("nih", 984, 0, 984)
    assert summary.reasons == Counter({"unknown_image": 984})
    # With those images ingested (any DICOM size), every box lands inside the 1024x1024 reference.
    stems = sorted(
        {ref for (ref,) in store.query("SELECT regexp_extract(detail, 'found none for ''(.*)''$', 1) FROM box_rejects")}
    )
    store.insert(
        "images",
        [image_row(f"nih_{i}", f"nih/{Path(stem).stem}.dcm", 2048, 2048, 512, 512) for i, stem in enumerate(stems)],
    )
    again = import_boxes(store, path, run_id="run2")
    assert (again.n_imported, again.n_rejected) == (984, 0)
    assert store.query("SELECT count(*), min(x_min) >= 0, max(x_max) <= 512 FROM current_boxes") == [(984, True, True)]
