"""Datasets' metadata files (`--manifest`): each published layout, on a tree laid out as the dataset ships
(tests/data/raster), links its images to studies, patients, views and splits; gaps are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.config import Config
from cxrvqa.errors import InputError
from cxrvqa.imaging.manifest import load_manifests, manifest_layouts, recognise
from cxrvqa.store import Store
from tests.imaging.helpers import run_stage

RASTER = Path(__file__).parents[1] / "data" / "raster"
MIMIC = RASTER / "mimic_cxr_jpg"


def build(tmp_path: Path, images: Path, *manifests: Path) -> list[dict]:
    config = Config(out_dir=tmp_path / "out", images_dir=images, manifest=list(manifests), imaging={"workers": 1})
    run_stage(config)
    with Store(config.db_path, read_only=True) as store:
        images = store.query_dicts(
            "SELECT source_path, source_format, study_id, patient_id, view_position, view_plane, view_source, "
            "id_source, source_split FROM images ORDER BY source_path"
        )
        rejects = store.query_dicts("SELECT source_path, reason, detail FROM image_rejects ORDER BY source_path")
    return images, rejects


def by_path(rows: list[dict]) -> dict[str, tuple]:
    return {r["source_path"]: (r["study_id"], r["patient_id"], r["view_position"], r["id_source"]) for r in rows}


def test_mimic_cxr_jpg_metadata_and_split(tmp_path: Path) -> None:
    images, rejects = build(
        tmp_path, MIMIC / "images", MIMIC / "mimic-cxr-2.0.0-split.csv", MIMIC / "mimic-cxr-2.0.0-metadata.csv"
    )
    rows = by_path(images)
    study = "files/p10/p10000032/s50000001/"
    assert rows[study + "d1a1a1a1-0000-0000-0000-000000000001.jpg"] == (
        "s50000001",
        "p10000032",
        "PA",
        "manifest:mimic_cxr_jpg",
    )
    assert rows[study + "d1a1a1a1-0000-0000-0000-000000000002.jpg"] == (
        "s50000001",
        "p10000032",
        "LATERAL",
        "manifest:mimic_cxr_jpg",
    )
    assert {r["source_split"] for r in images if r["id_source"] == "manifest:mimic_cxr_jpg"} == {"train", "test"}
    # an image no row names keeps its file (content-hash ids); a row whose file is absent is a reject
    unnamed = rows["files/p10/p10000099/s59999999/unnamed.jpg"]
    assert unnamed[0].startswith("st-") and unnamed[3] == "file_content"
    assert [(r["source_path"], r["reason"]) for r in rejects] == [
        ("files/p10/p10000033/s50000002/d3c3c3c3-0000-0000-0000-000000000004.jpg", "missing_image")
    ]
    assert "mimic-cxr-2.0.0-metadata.csv:5" in rejects[0]["detail"]


def test_missing_images_are_reported_once(tmp_path: Path) -> None:
    config = Config(
        out_dir=tmp_path / "out",
        images_dir=MIMIC / "images",
        manifest=[MIMIC / "mimic-cxr-2.0.0-metadata.csv"],
        imaging={"workers": 1},
    )
    run_stage(config)
    again = run_stage(config)
    assert (again.n_rejected, again.n_done) == (0, 0)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM image_rejects WHERE reason = 'missing_image'") == [(1,)]


def test_a_split_file_alone_names_what_it_joins(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a mimic_cxr_jpg metadata file given with it"):
        load_manifests([MIMIC / "mimic-cxr-2.0.0-split.csv"])


@pytest.mark.parametrize(
    ("folder", "manifest", "expected"),
    [
        (
            "chexpert",
            "CheXpert-v1.0-small/train.csv",
            {
                "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg": (
                    "patient00001/study1",
                    "patient00001",
                    "AP",
                    "manifest:chexpert",
                ),
                "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg": (
                    "patient00001/study1",
                    "patient00001",
                    "LATERAL",
                    "manifest:chexpert",
                ),
            },
        ),
        (
            "chexpert_plus",
            "df_chexpert_plus_240401.csv",
            {
                "PNG/train/patient00002/study1/view1_frontal.png": (
                    "patient00002/study1",
                    "patient00002",
                    "PA",
                    "manifest:chexpert_plus",
                )
            },
        ),
        (
            "nih_chestxray14",
            "Data_Entry_2017.csv",
            {
                "images_001/images/00000001_000.png": ("00000001_000", "1", "PA", "manifest:nih_chestxray14"),
                "images_001/images/00000001_001.png": ("00000001_001", "1", "AP", "manifest:nih_chestxray14"),
            },
        ),
        (
            "padchest",
            "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
            {
                "0/216840111366964012339356563862009072607206669_00-075-137.png": (
                    "20536686640136348236148679891455886468",
                    "839860488694292331637988235681460987",
                    "PA",
                    "manifest:padchest",
                ),
                "0/216840111366964012339356563862009072607206669_00-075-138.png": (
                    "20536686640136348236148679891455886468",
                    "839860488694292331637988235681460987",
                    "LATERAL",
                    "manifest:padchest",
                ),
            },
        ),
        (
            "iu_png",
            "indiana_projections.csv",
            {"images/1_IM-0001-4001.dcm.png": ("1", "1", "unknown", "manifest:iu_projections")},
        ),
    ],
)
def test_each_published_layout_links_its_images(
    tmp_path: Path, folder: str, manifest: str, expected: dict[str, tuple]
) -> None:
    images, rejects = build(tmp_path, RASTER / folder, RASTER / folder / manifest)
    assert by_path(images) == expected
    assert rejects == []  # the metadata file inside the image folder is not an image


def test_padchest_16_bit_pngs_are_windowed(tmp_path: Path) -> None:
    config = Config(
        out_dir=tmp_path / "out",
        images_dir=RASTER / "padchest",
        imaging={"workers": 1},
        manifest=[RASTER / "padchest/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"],
    )
    run_stage(config)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT DISTINCT bits_allocated, window_source, source_format FROM images") == [
            (16, "percentile", "png")
        ]


def test_generic_manifest_takes_an_optional_view(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "study_id,patient_id,image_path,view_position\nS1,P1,grey.jpg,PA\nS1,P1,grey16.png,LL\nS2,P2,grey_rgb.png,\n"
    )
    images, _ = build(tmp_path, RASTER / "cases", manifest)
    rows = by_path(images)
    assert rows["grey.jpg"] == ("S1", "P1", "PA", "manifest:generic")
    assert rows["grey16.png"] == ("S1", "P1", "LL", "manifest:generic")
    assert rows["grey_rgb.png"] == ("S2", "P2", "unknown", "manifest:generic")


def test_every_layout_documents_its_header_and_a_link() -> None:
    layouts, _ = manifest_layouts()
    for layout in layouts:
        assert layout["header_excerpt"] and layout["documentation"]
        header = [c for c in layout["header_excerpt"].replace("[", ",").split(",") if c.strip() not in ("...", "")]
        assert recognise(header + layout.get("optional", []))["id"] == layout["id"], layout["id"]


def test_a_row_naming_one_image_twice_with_other_ids_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("study_id,patient_id,image_path\nS1,P1,a.png\nS2,P1,a.png\n")
    with pytest.raises(InputError, match=r"m.csv:3: expected one study and patient per image"):
        load_manifests([manifest])


def test_nih_boxes_still_find_their_png_by_file_name(tmp_path: Path) -> None:
    from cxrvqa.imaging.boxes import import_boxes

    folder = RASTER / "nih_chestxray14"
    build(tmp_path, folder, folder / "Data_Entry_2017.csv")
    bbox = tmp_path / "BBox_List_2017.csv"
    bbox.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000001_000.png,Cardiomegaly,60,100,120,80\n")
    with Store(tmp_path / "out" / "cxrvqa.duckdb") as store:
        import_boxes(store, bbox, fmt="nih", run_id="boxes-run")
        boxes = store.query(
            "SELECT b.image_id = i.image_id FROM boxes b JOIN current_images i ON "
            "i.source_path = 'images_001/images/00000001_000.png'"
        )
    assert boxes == [(True,)]
