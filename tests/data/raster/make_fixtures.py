"""Write the JPEG / PNG fixtures of tests/data/raster from the project's own permissive DICOM fixtures.

Run from the repository root (`python tests/data/raster/make_fixtures.py`); the output is committed and
deterministic. Sources: `tests/data/siim_chest_pa.dcm` (NIH pixels via torchxrayvision, Apache-2.0) for the
frontal images and `tests/data/dx_cat_thorax_inverse.dcm` (highdicom, MIT) for the lateral ones, both
downscaled to at most 256 pixels; variants are shifted copies so that no two files of a tree are identical.
Each dataset folder is laid out as the dataset ships, with its metadata file in its published header format.

`demo()` writes the demo's JPEG and PNG studies (src/cxrvqa/demo): synthetic radiographs drawn by the image
bench's `phantom` (seeded), laid out as MIMIC-CXR-JPG and PadChest ship, with their metadata files.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

HERE = Path(__file__).parent
DATA = HERE.parent
REPOSITORY = DATA.parents[1]
DEMO = REPOSITORY / "src" / "cxrvqa" / "demo"


def _base() -> tuple[np.ndarray, np.ndarray]:
    chest = pydicom.dcmread(DATA / "siim_chest_pa.dcm").pixel_array
    frontal = np.asarray(Image.fromarray(chest).resize((256, 256), Image.Resampling.BOX))
    cat = pydicom.dcmread(DATA / "dx_cat_thorax_inverse.dcm").pixel_array  # MONOCHROME1: bone dark
    lateral = np.asarray(Image.fromarray(255 - cat).resize((211 * 256 // 169, 256), Image.Resampling.BOX))
    return frontal, lateral


FRONTAL, LATERAL = _base()


def variant(base: np.ndarray, k: int) -> np.ndarray:
    return np.roll(base, 5 * k, axis=1)


def jpeg(path: Path, pixels: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode != "L" else image).save(path, format="JPEG", quality=90)


def png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def png16(path: Path, pixels: np.ndarray) -> None:
    """12-bit values in a 16-bit grey PNG, as PadChest ships (not windowed)."""
    png(path, (pixels.astype(np.uint16) * 16 + 8))


def csv(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def mimic() -> None:
    root = HERE / "mimic_cxr_jpg"
    images = root / "images"
    jpeg(images / "files/p10/p10000032/s50000001/d1a1a1a1-0000-0000-0000-000000000001.jpg", variant(FRONTAL, 0))
    jpeg(images / "files/p10/p10000032/s50000001/d1a1a1a1-0000-0000-0000-000000000002.jpg", variant(LATERAL, 0))
    jpeg(images / "files/p10/p10000033/s50000002/d2b2b2b2-0000-0000-0000-000000000003.jpg", variant(FRONTAL, 1))
    jpeg(images / "files/p10/p10000099/s59999999/unnamed.jpg", variant(FRONTAL, 2))  # no metadata row
    csv(
        root / "mimic-cxr-2.0.0-metadata.csv",
        [
            "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
            "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
            "PatientOrientationCodeSequence_CodeMeaning",
            "d1a1a1a1-0000-0000-0000-000000000001,10000032,50000001,CHEST (PA AND LAT),PA,256,256,21800506,"
            "213014.531,CHEST (PA AND LAT),postero-anterior,Erect",
            "d1a1a1a1-0000-0000-0000-000000000002,10000032,50000001,CHEST (PA AND LAT),LATERAL,256,320,21800506,"
            "213014.531,CHEST (PA AND LAT),lateral,Erect",
            "d2b2b2b2-0000-0000-0000-000000000003,10000033,50000002,CHEST (PORTABLE AP),AP,256,256,21800507,"
            "101500.000,CHEST (PORTABLE AP),antero-posterior,",
            "d3c3c3c3-0000-0000-0000-000000000004,10000033,50000002,CHEST (PORTABLE AP),AP,256,256,21800507,"
            "101500.000,CHEST (PORTABLE AP),antero-posterior,",  # its file is not in the tree
        ],
    )
    csv(
        root / "mimic-cxr-2.0.0-split.csv",
        [
            "dicom_id,study_id,subject_id,split",
            "d1a1a1a1-0000-0000-0000-000000000001,50000001,10000032,train",
            "d1a1a1a1-0000-0000-0000-000000000002,50000001,10000032,train",
            "d2b2b2b2-0000-0000-0000-000000000003,50000002,10000033,test",
            "d3c3c3c3-0000-0000-0000-000000000004,50000002,10000033,test",
        ],
    )
    reports = root / "reports/p10"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "p10000032").mkdir(exist_ok=True)
    (reports / "p10000032/s50000001.txt").write_text(
        "FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n FINDINGS:  There is a small left pleural effusion. "
        "There is no pneumothorax. The heart size is normal.\n\n IMPRESSION:  Small left pleural effusion.\n"
    )
    (reports / "p10000033").mkdir(exist_ok=True)
    (reports / "p10000033/s50000002.txt").write_text(
        "FINAL REPORT\n EXAMINATION:  CHEST (PORTABLE AP)\n\n FINDINGS:  There is a right lower lobe opacity. "
        "No pleural effusion.\n\n IMPRESSION:  Right lower lobe pneumonia.\n"
    )


def chexpert() -> None:
    root = HERE / "chexpert"
    jpeg(root / "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", variant(FRONTAL, 3))
    jpeg(root / "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", variant(LATERAL, 1))
    csv(
        root / "CheXpert-v1.0-small/train.csv",
        [
            "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
            "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
            "Fracture,Support Devices",
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
            "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,Female,68,Lateral,,1.0,,,,,,,,,0.0,,,,1.0",
        ],
    )


def chexpert_plus() -> None:
    root = HERE / "chexpert_plus"
    png(root / "PNG/train/patient00002/study1/view1_frontal.png", variant(FRONTAL, 4))
    csv(
        root / "df_chexpert_plus_240401.csv",
        [
            "path_to_image,path_to_dcm,frontal_lateral,ap_pa,deid_patient_id,patient_report_date_order,report,"
            "section_findings,section_impression",
            "PNG/train/patient00002/study1/view1_frontal.jpg,train/patient00002/study1/view1_frontal.dcm,Frontal,PA,"
            "patient00002,1,,Heart size is normal.,No acute cardiopulmonary process.",
        ],
    )


def nih() -> None:
    root = HERE / "nih_chestxray14"
    png(root / "images_001/images/00000001_000.png", variant(FRONTAL, 5))
    png(root / "images_001/images/00000001_001.png", variant(FRONTAL, 6))
    csv(
        root / "Data_Entry_2017.csv",
        [
            "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],",
            "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,",
            "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,AP,2894,2729,0.143,0.143,",
        ],
    )


def padchest() -> None:
    root = HERE / "padchest"
    png16(root / "0/216840111366964012339356563862009072607206669_00-075-137.png", variant(FRONTAL, 7))
    png16(root / "0/216840111366964012339356563862009072607206669_00-075-138.png", variant(LATERAL, 2))
    csv(
        root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
        [
            "ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,"
            "Projection,MethodProjection,Pediatric,Modality_DICOM",
            "216840111366964012339356563862009072607206669_00-075-137.png,0,20150617,"
            "20536686640136348236148679891455886468,839860488694292331637988235681460987,1930,F,POSTEROANTERIOR,PA,"
            "Manual review of DICOM fields,No,CR",
            "216840111366964012339356563862009072607206669_00-075-138.png,0,20150617,"
            "20536686640136348236148679891455886468,839860488694292331637988235681460987,1930,F,LATERAL,L,"
            "Manual review of DICOM fields,No,CR",
        ],
    )


def iu() -> None:
    root = HERE / "iu_png"
    png(root / "images/1_IM-0001-4001.dcm.png", variant(FRONTAL, 8))
    csv(root / "indiana_projections.csv", ["uid,filename,projection", "1,1_IM-0001-4001.dcm.png,Frontal"])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bad() -> None:
    """One file per outcome of the JPEG/PNG path (the test asserts each file's reason)."""
    root = HERE / "cases"
    jpeg(root / "grey.jpg", variant(FRONTAL, 9))
    jpeg(root / "grey_rgb.jpg", variant(FRONTAL, 10), mode="RGB")  # equal channels: grey
    png(root / "grey_rgb.png", np.repeat(variant(FRONTAL, 11)[..., None], 3, axis=2))
    png16(root / "grey16.png", variant(FRONTAL, 12))
    jpeg(root / "named_like_dicom.dcm", variant(FRONTAL, 13))  # content decides, not the name
    colour = np.repeat(variant(FRONTAL, 14)[..., None], 3, axis=2)
    colour[10:40, 10:60] = (255, 0, 0)  # a red annotation
    png(root / "colour.png", colour)
    jpeg(root / "colour.jpg", colour, mode="RGB")
    whole = (root / "grey.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    png(root / "full.png", variant(FRONTAL, 15))
    whole = (root / "full.png").read_bytes()
    (root / "full.png").unlink()
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)  # 10^10 pixels declared
    (root / "huge_header.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )
    (root / "text_named.jpg").write_text("not an image at all\n")


def lateral_phantom(rows: int, cols: int, seed: int) -> np.ndarray:
    """A lateral-radiograph-like float32 image in [0, 1]: body, one lung field, spine behind, heart in front."""
    rng = np.random.default_rng(seed)
    y = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    x = (np.arange(cols, dtype=np.float32) / cols)[None, :]

    def soft_ellipse(cy: float, cx: float, ry: float, rx: float, edge: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp((np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) - 1.0) / edge))

    img = 0.08 + 0.05 * y + 0.55 * soft_ellipse(0.55, 0.5, 0.55, 0.42, 0.03)  # air, soft tissue
    img = img - 0.30 * soft_ellipse(0.45, 0.52, 0.32, 0.28, 0.06)  # the lungs, overlapping
    img = img + 0.20 * np.exp(-(((x - 0.80 + 0.1 * (y - 0.5) ** 2) / 0.05) ** 2)) * (y > 0.1)  # spine, behind
    img = img + 0.20 * soft_ellipse(0.62, 0.40, 0.16, 0.14, 0.08)  # heart, in front
    img = img + 0.15 / (1.0 + np.exp(-(y - 0.78 - 0.04 * x) / 0.01))  # diaphragm
    img = img + rng.standard_normal((rows, cols), dtype=np.float32) * 0.012
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def demo() -> None:
    """The demo's JPEG study (MIMIC-CXR-JPG layout, 1024 x 832 PA and lateral, decoded at 1/4 by DCT scaling) and
    16-bit PNG study (PadChest layout, 512 x 416, 12-bit values): synthetic, so the demo holds no patient's
    pixels. The lateral image makes the demo show the left/right-on-a-lateral-view reject."""
    sys.path.insert(0, str(REPOSITORY))
    from bench.bench_images import phantom

    images = DEMO / "images"
    jpeg(
        images / "files/p10/p10000005/s50000005/5d1ec0a4-9f3b2c71-0d8e6a52-7b4f3e19-c6a2d805.jpg",
        np.rint(phantom(1024, 832, 5) * 255).astype(np.uint8),
    )
    jpeg(
        images / "files/p10/p10000005/s50000005/8a2f6c13-4e7b9d20-1c5a8f36-2b9e7d41-a3c6e058.jpg",
        np.rint(lateral_phantom(1024, 832, 7) * 255).astype(np.uint8),
    )
    png(
        images / "0/900000000000000000000000000000000000001_demo01.png",
        np.rint(phantom(512, 416, 6) * 4095).astype(np.uint16),
    )
    csv(
        DEMO / "mimic-cxr-2.0.0-metadata.csv",
        [
            "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
            "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
            "PatientOrientationCodeSequence_CodeMeaning",
            "5d1ec0a4-9f3b2c71-0d8e6a52-7b4f3e19-c6a2d805,10000005,50000005,CHEST (PA AND LAT),PA,1024,832,21800601,"
            "093000.000,CHEST (PA AND LAT),postero-anterior,Erect",
            "8a2f6c13-4e7b9d20-1c5a8f36-2b9e7d41-a3c6e058,10000005,50000005,CHEST (PA AND "
            "LAT),LATERAL,1024,832,21800601,"
            "093000.000,CHEST (PA AND LAT),lateral,Erect",
        ],
    )
    csv(
        DEMO / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
        [
            "ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,"
            "Projection,MethodProjection,Pediatric,Modality_DICOM",
            "900000000000000000000000000000000000001_demo01.png,0,20160301,900000000000000000000000000000000000001,"
            "900000000000000000000000000000000000002,1950,M,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR",
        ],
    )


if __name__ == "__main__":
    for make in (mimic, chexpert, chexpert_plus, nih, padchest, iu, bad, demo):
        make()
