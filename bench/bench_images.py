"""Benchmark of the DICOM -> PNG image path against the naive pydicom + PIL recipe.

What it measures
----------------
Input: every file in ``$CXRVQA_DATA_DIR/dicom/cxr`` plus 8 large synthetic chest-like
radiographs that the bench writes to a temporary folder: 3000 rows x 2500 columns,
16 bits allocated (BitsStored 12 or 16), Modality CR, BodyPartExamined CHEST; 4 stored
uncompressed (Explicit VR Little Endian) and 4 as lossless JPEG 2000 (pydicom
``Dataset.compress(JPEG2000Lossless, arr, encoding_plugin="pylibjpeg")``). In each group one
is MONOCHROME1, two carry a WindowCenter/WindowWidth and two carry none.

Two paths convert the same file list with the same number of worker processes (default 2,
forkserver processes in both cases):

* ours: ``cxrvqa.imaging.convert.convert_file`` through ``cxrvqa.core.parallel.process_map`` with
  the default render settings (scale 0.25, percentile window (0.5, 99.5), PNG level 1):
  reduced-resolution decode, one lookup table, LANCZOS with reducing_gap=2.
* naive: ``ds.pixel_array`` -> ``apply_modality_lut`` -> ``apply_voi_lut`` (where the header
  has a window or VOI LUT; otherwise the same percentile window computed with np.percentile
  on the full-resolution array; 8-bit images without a window keep their full range, as
  ours does) -> 0..255 -> inverted for MONOCHROME1 / PresentationLUTShape INVERSE ->
  PIL LANCZOS resize to the same target size -> PNG at the default compress level (6).

Both pools are warmed up first (process start-up and first imports are not timed); then
each path is timed (wall clock) over all files, the JPEG 2000 subset and the uncompressed
subset, alternating ours/naive, ``--repeats`` times (default 3), and the best time is kept.
As a second, less noise-sensitive measure, each task also reports its worker CPU time.
SHA-256 hashing of the inputs (which the image stage does before converting) is not in
the timings; it is printed on its own.

Reported: images/s of both paths and the ratio ours/naive per subset; fidelity, the mean
absolute difference (in 1/255 units) between our PNG and the naive full-resolution render
downscaled with LANCZOS, per file and mean/max over files; peak RSS of the main process
and of each worker (VmHWM from /proc, read before the pools are shut down; the workers are
children of the forkserver, not of this process, so RUSAGE_CHILDREN cannot see them).
The memory total is main + the sum of both workers' peaks (an upper bound: shared pages
count twice).

JPEG / PNG column: more synthetic radiographs of the same size and phantom, written as
8-bit JPEG (quality 95), 8-bit PNG and 16-bit PNG (12-bit values), 4 per worker each (fewer would
make ``process_map`` convert in-process). Naive path: Pillow
open, full decode (16-bit: the same percentile window with np.percentile), LANCZOS resize to
the same target size, PNG at level 6; ours: ``convert_file`` (JPEG decoded at the smallest DCT
scale with ``Image.draft``; PNG decoded whole, windowed by lookup table, reduce + LANCZOS, PNG
level 1). Same pools, same worker count, best of ``--repeats``; beside the wall-clock rates, each path's
worker CPU time per image (best run) and their ratio, the measure that other load on the machine barely
moves; worker peak RSS after the warm-up and after every image (flat: the same).

Targets: >= 4x naive throughput overall, >= 5x on JPEG 2000, mean difference <= 2/255,
main + workers peak RSS < 1024 MiB with two workers; JPEG >= 3x, PNG (8 and 16 bit) >= 1.5x. The exit code is 0
(it is a report) unless ``--check`` is given, in which case a failed target exits 1.

Run from the repository root::

    CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/bench_images.py [--check]

Takes about 1-3 minutes on two cores; timings are noisy when something else is using
the CPUs (the load average at start is printed).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SYNTH_ROWS, SYNTH_COLS = 3000, 2500
JPEG2000_SYNTAXES = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
TARGET_SPEEDUP_ALL = 4.0
TARGET_SPEEDUP_J2K = 5.0
TARGET_MEAN_DIFF = 2.0  # in 1/255 units
TARGET_MEMORY_MIB = 1024.0
TARGET_SPEEDUP_RASTER = {"jpeg": 3.0, "png": 1.5, "png16": 1.5}

#: (name, JPEG 2000?, photometric, BitsStored, header window?)
SYNTH_VARIANTS = [
    ("synth_u1_mono2_12bit_window", False, "MONOCHROME2", 12, True),
    ("synth_u2_mono2_16bit_nowindow", False, "MONOCHROME2", 16, False),
    ("synth_u3_mono1_12bit_window", False, "MONOCHROME1", 12, True),
    ("synth_u4_mono2_12bit_nowindow", False, "MONOCHROME2", 12, False),
    ("synth_j1_mono2_12bit_window", True, "MONOCHROME2", 12, True),
    ("synth_j2_mono2_16bit_nowindow", True, "MONOCHROME2", 16, False),
    ("synth_j3_mono1_12bit_window", True, "MONOCHROME1", 12, True),
    ("synth_j4_mono2_12bit_nowindow", True, "MONOCHROME2", 12, False),
]


# ---------------------------------------------------------------------------- synthetic data


def phantom(rows: int, cols: int, seed: int) -> np.ndarray:
    """A chest-radiograph-like float32 image in [0, 1]: body, lungs, ribs, spine, heart, noise."""
    rng = np.random.default_rng(seed)
    y = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    x = (np.arange(cols, dtype=np.float32) / cols)[None, :]
    jitter = rng.uniform(-0.02, 0.02, 4).astype(np.float32)

    def soft_ellipse(cy: float, cx: float, ry: float, rx: float, edge: float) -> np.ndarray:
        r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
        return 1.0 / (1.0 + np.exp((r - 1.0) / edge))

    img = 0.08 + 0.05 * y  # air with a slight heel-effect gradient
    img = img + 0.55 * soft_ellipse(0.55, 0.5 + jitter[0], 0.55, 0.47, 0.03)  # soft tissue
    lungs = soft_ellipse(0.42, 0.30 + jitter[1], 0.30, 0.15, 0.06) + soft_ellipse(
        0.42, 0.70 + jitter[2], 0.30, 0.15, 0.06
    )
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (y * 11.0 + 2.5 * (x - 0.5) ** 2))
    img = img - lungs * (0.32 - 0.07 * ribs**3)  # dark lungs, brighter rib bands
    img = img + 0.18 * np.exp(-(((x - 0.5 - jitter[3]) / 0.045) ** 2)) * (y > 0.1)  # spine
    img = img + 0.22 * soft_ellipse(0.62, 0.56, 0.14, 0.14, 0.08)  # heart
    img = img + 0.15 / (1.0 + np.exp(-(y - 0.80 - 0.05 * np.cos(6 * x)) / 0.01))  # diaphragm
    img = img + rng.standard_normal((rows, cols), dtype=np.float32) * 0.012  # quantum noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def write_synthetic(task: tuple[str, str, bool, str, int, bool, int]) -> str:
    """Write one synthetic CR file; runs in a short-lived worker so the main process stays small."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    path, name, j2k, photometric, bits_stored, with_window, seed = task
    top = (1 << bits_stored) - 1
    values = phantom(SYNTH_ROWS, SYNTH_COLS, seed) * (0.85 * top) + 0.05 * top
    if photometric == "MONOCHROME1":
        values = top - values  # high stored value = dark
    arr = np.rint(values).astype(np.uint16)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName = f"BENCH{seed:03d}", "Bench^Synthetic"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
    ds.SeriesDescription = f"cxrvqa bench {name}"
    ds.ImagerPixelSpacing = [0.14, 0.14]
    ds.Rows, ds.Columns = SYNTH_ROWS, SYNTH_COLS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if with_window:
        lo, hi = np.percentile(arr[::8, ::8], [2, 98])
        ds.WindowCenter, ds.WindowWidth = str(round((lo + hi) / 2)), str(round((hi - lo) * 1.1))
    if j2k:
        ds.compress(JPEG2000Lossless, arr, encoding_plugin="pylibjpeg")
    else:
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_raster(task: tuple[str, str, int]) -> str:
    """Write one synthetic JPEG or PNG (kind jpeg | png | png16); runs in a short-lived worker."""
    path, kind, seed = task
    values = phantom(SYNTH_ROWS, SYNTH_COLS, seed)
    if kind == "png16":
        Image.fromarray(np.rint(values * 4095).astype(np.uint16)).save(path, format="PNG")
    else:
        Image.fromarray(np.rint(values * 255).astype(np.uint8)).save(
            path, **({"format": "JPEG", "quality": 95} if kind == "jpeg" else {"format": "PNG"})
        )
    return path


def naive_raster(task: NaiveTask) -> tuple[str | None, float]:
    """Pillow open, full decode, (16-bit: percentile window), LANCZOS resize, PNG at level 6."""
    started = time.process_time()
    try:
        image = Image.open(task.path)
        image.load()
        if image.mode.startswith("I"):
            values = np.asarray(image).astype(np.float64)
            lo, hi = np.percentile(values, task.percentile_window)
            image = Image.fromarray(np.rint(np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8))
        image.convert("L").resize(task.size, Image.Resampling.LANCZOS).save(task.out_png, format="PNG")
        return None, time.process_time() - started
    except Exception as exc:  # noqa: BLE001 - reported per file
        return f"{type(exc).__name__}: {exc}", time.process_time() - started


# ---------------------------------------------------------------------------- the naive path


@dataclass(frozen=True)
class NaiveTask:
    path: str
    out_png: str
    size: tuple[int, int]  # (width, height), the same as ours
    percentile_window: tuple[float, float]
    ignore_header_window: bool = False  # fidelity reference only: our fallback for unusable windows


def naive_render(task: NaiveTask) -> tuple[str | None, float]:
    """Full-resolution float pipeline; returns (error message or None, CPU seconds of this process)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    started = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(task.path)
            stored = ds.pixel_array
            values = apply_modality_lut(stored, ds)
            has_lut = "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0
            has_window = ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, "")
            if (has_lut or has_window) and not task.ignore_header_window:
                out = apply_voi_lut(values, ds)
                if has_lut:
                    lo, hi = float(out.min()), float(out.max())
                else:  # the output range of pydicom's windowing: apply it to two extreme inputs
                    lo, hi = (float(v) for v in apply_voi_lut(np.array([-1e12, 1e12]), ds))
                norm = (out.astype(np.float64) - lo) / (hi - lo) * 255.0
            elif stored.dtype.itemsize == 1 and "ModalityLUTSequence" not in ds:
                lo, hi = (float(v) for v in apply_modality_lut(np.array([0.0, 255.0]), ds))
                norm = (values.astype(np.float64) - lo) / (hi - lo) * 255.0
            else:
                lo, hi = np.percentile(values, task.percentile_window)
                norm = np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0
            if ds.get("PhotometricInterpretation") == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
                norm = 255.0 - norm
            image = Image.fromarray(np.rint(norm).astype(np.uint8), mode="L")
            image = image.resize(task.size, Image.Resampling.LANCZOS)
            image.save(task.out_png, format="PNG")  # Pillow's default zlib level, 6
        return None, time.process_time() - started
    except Exception as exc:  # noqa: BLE001 - reported per file
        return f"{type(exc).__name__}: {exc}", time.process_time() - started


def ours_render(job):  # noqa: ANN001, ANN201 - a ConversionJob -> (convert_file's result, CPU seconds)
    """``convert_file`` plus the CPU time it took in its worker (a noise-robust second measure)."""
    from cxrvqa.imaging.convert import convert_file

    started = time.process_time()
    result = convert_file(job)
    return result, time.process_time() - started


# ---------------------------------------------------------------------------- helpers


@dataclass
class Item:
    path: str
    name: str
    syntax: str
    input_hash: str
    rows: int
    cols: int

    @property
    def kind(self) -> str:
        if self.syntax in JPEG2000_SYNTAXES:
            return "jpeg2000"
        return "uncompressed" if self.syntax in NATIVE_SYNTAXES else "other"


def worker_peaks_mib(pool: ProcessPoolExecutor) -> list[float]:
    """VmHWM (peak RSS) of each live worker of ``pool``, from /proc; [] where unavailable."""
    peaks = []
    for pid in list(getattr(pool, "_processes", {}) or {}):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024.0)
        except OSError:
            pass
    return sorted(peaks, reverse=True)


def main_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fail(message: str) -> None:
    print(f"bench_images: {message}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path and subset (best kept)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for both paths")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (synthetic files, PNGs)")
    args = parser.parse_args()

    data_dir = os.environ.get("CXRVQA_DATA_DIR")
    if not data_dir:
        fail(
            "set CXRVQA_DATA_DIR to the data folder (the one holding dicom/cxr), "
            "e.g. CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/bench_images.py"
        )
    cxr_dir = Path(data_dir) / "dicom" / "cxr"
    if not cxr_dir.is_dir():
        fail(f"{cxr_dir} is not a folder (CXRVQA_DATA_DIR={data_dir!r} must hold dicom/cxr)")
    real_files = sorted(str(p) for p in cxr_dir.iterdir() if p.is_file())
    if not real_files:
        fail(f"{cxr_dir} holds no files")

    import pydicom

    from cxrvqa.config import ImagingConfig
    from cxrvqa.core import parallel
    from cxrvqa.core.provenance import sha256_file
    from cxrvqa.imaging.convert import target_size
    from cxrvqa.imaging.models import ConversionJob, RenderSettings

    workers = args.workers
    imaging = ImagingConfig()
    settings = RenderSettings(
        scale=imaging.scale,
        longest_side=imaging.longest_side,
        png_compress_level=imaging.png_compress_level,
        max_pixels=imaging.max_pixels,
        percentile_window=tuple(imaging.percentile_window),
        accept_empty_body_part=imaging.accept_empty_body_part,
        pseudonym_key=b"bench-key",
        recipe_version="bench0000000000000000",
    )
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="cxrvqa-bench-"))
    context = multiprocessing.get_context("forkserver")
    try:
        # -- synthetic files, written by a short-lived pool so their arrays never live in this process
        started = time.perf_counter()
        synth_dir = tmp / "synthetic"
        synth_dir.mkdir()
        tasks = [
            (str(synth_dir / f"{name}.dcm"), name, j2k, photometric, bits, window, seed)
            for seed, (name, j2k, photometric, bits, window) in enumerate(SYNTH_VARIANTS)
        ]
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            synth_files = list(pool.map(write_synthetic, tasks))
        synth_seconds = time.perf_counter() - started

        started = time.perf_counter()
        items = []
        for path in real_files + synth_files:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            meta = getattr(ds, "file_meta", None)
            items.append(
                Item(
                    path,
                    Path(path).name,
                    str(getattr(meta, "TransferSyntaxUID", "") or ""),
                    sha256_file(path),
                    int(ds.get("Rows", 0) or 0),
                    int(ds.get("Columns", 0) or 0),
                )
            )
        hash_seconds = time.perf_counter() - started
        total_mb = sum(os.path.getsize(i.path) for i in items) / 1e6

        print(
            f"cxrvqa image bench: {len(items)} files ({len(real_files)} from {cxr_dir}, {len(synth_files)} "
            f"synthetic {SYNTH_ROWS} rows x {SYNTH_COLS} cols, {total_mb:.0f} MB in all), {workers} workers "
            f"(forkserver), best of {args.repeats}"
        )
        print(
            f"settings: scale {settings.scale}, percentile window {settings.percentile_window}, "
            f"ours PNG level {settings.png_compress_level} vs naive 6; CPUs {os.cpu_count()}, "
            f"load average at start {load:.2f}" + ("  [other load: timings may be noisy]" if load > 0.5 else "")
        )
        print(
            f"(synthetic files written in {synth_seconds:.1f}s; header read + sha256 of all inputs "
            f"{hash_seconds:.2f}s, not in the timings)"
        )

        subsets = {
            "all": items,
            "jpeg2000": [i for i in items if i.kind == "jpeg2000"],
            "uncompressed": [i for i in items if i.kind == "uncompressed"],
        }

        def ours_jobs(subset: list[Item], out_dir: Path) -> list[ConversionJob]:
            return [ConversionJob(i.path, i.name, i.input_hash, str(out_dir), None, settings) for i in subset]

        def naive_tasks(subset: list[Item], out_dir: Path, ignore_window: bool = False) -> list[NaiveTask]:
            out_dir.mkdir(parents=True, exist_ok=True)
            return [
                NaiveTask(
                    i.path,
                    str(out_dir / f"{i.name}.png"),
                    target_size(i.rows, i.cols, settings.scale, settings.longest_side),
                    tuple(settings.percentile_window),
                    ignore_window,
                )
                for i in subset
            ]

        naive_pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            # -- warm-up: start both pools' workers and import every codec path (not timed)
            warm: list[Item] = []
            for kind in ("jpeg2000", "uncompressed", "other"):
                of_kind = sorted((i for i in items if i.kind == kind), key=lambda i: os.path.getsize(i.path))
                warm += of_kind[:1]
            warm = warm * workers
            list(parallel.process_map(ours_render, ours_jobs(warm, tmp / "warm-ours"), workers))
            list(naive_pool.map(naive_render, naive_tasks(warm, tmp / "warm-naive"), chunksize=1))

            times: dict[tuple[str, str], list[float]] = {}
            cpu: dict[tuple[str, str], list[float]] = {}
            ours_rows: dict[str, dict] = {}
            naive_errors: dict[str, str] = {}
            for repeat in range(args.repeats):
                for subset_name, subset in subsets.items():
                    if not subset:
                        continue
                    last = repeat == args.repeats - 1 and subset_name == "all"
                    out_ours = tmp / f"ours-{repeat}-{subset_name}"
                    jobs = ours_jobs(subset, out_ours)
                    started = time.perf_counter()
                    timed = list(parallel.process_map(ours_render, jobs, workers))
                    times.setdefault(("ours", subset_name), []).append(time.perf_counter() - started)
                    cpu.setdefault(("ours", subset_name), []).append(sum(c for _, c in timed))
                    results = [r for r, _ in timed]
                    if last:
                        ours_rows = {item.path: row | {"kind": kind} for item, (kind, row) in zip(subset, results)}

                    out_naive = tmp / f"naive-{repeat}-{subset_name}"
                    ntasks = naive_tasks(subset, out_naive)
                    started = time.perf_counter()
                    timed = list(naive_pool.map(naive_render, ntasks, chunksize=1))
                    times.setdefault(("naive", subset_name), []).append(time.perf_counter() - started)
                    cpu.setdefault(("naive", subset_name), []).append(sum(c for _, c in timed))
                    errors = [e for e, _ in timed]
                    if last:
                        naive_errors = {i.path: e for i, e in zip(subset, errors) if e}
                        naive_pngs = {i.path: t.out_png for i, t in zip(subset, ntasks)}
                    else:
                        shutil.rmtree(out_ours, ignore_errors=True)
                        shutil.rmtree(out_naive, ignore_errors=True)

            # -- fidelity reference for files where ours deliberately ignores an unusable header window
            unusable = [
                i
                for i in items
                if str(ours_rows.get(i.path, {}).get("window_source", "")).endswith("header_window_unusable")
            ]
            ref_tasks = naive_tasks(unusable, tmp / "naive-reference", ignore_window=True)
            list(naive_pool.map(naive_render, ref_tasks, chunksize=1))
            reference_pngs = {i.path: t.out_png for i, t in zip(unusable, ref_tasks)}

            ours_peaks = worker_peaks_mib(parallel._pools.get(workers)) if workers > 1 else []
            naive_peaks = worker_peaks_mib(naive_pool)
        finally:
            naive_pool.shutdown(wait=True)
            parallel.shutdown_pools()

        # -- throughput
        failures: list[str] = []
        print()
        print(
            f"throughput, images/s (wall clock, {workers} workers; best run, slowest run in brackets); "
            f"load average now {os.getloadavg()[0]:.2f}"
        )
        print(
            f"  {'subset':<13}{'n':>3}  {'ours':>16}  {'naive':>16}  {'ours/naive':>10}  {'target':<12}"
            f"  worker CPU ms/image ours, naive, ratio"
        )
        for subset_name, subset in subsets.items():
            if not subset:
                continue
            ours_t, naive_t = times[("ours", subset_name)], times[("naive", subset_name)]
            n = len(subset)
            ratio = min(naive_t) / min(ours_t)
            target = {"all": TARGET_SPEEDUP_ALL, "jpeg2000": TARGET_SPEEDUP_J2K}.get(subset_name)
            mark = ""
            if target is not None:
                ok = ratio >= target
                mark = f">= {target:.0f}x  {verdict(ok)}"
                if not ok:
                    failures.append(f"speed-up on {subset_name}")
            ours_c, naive_c = min(cpu[("ours", subset_name)]), min(cpu[("naive", subset_name)])
            print(
                f"  {subset_name:<13}{n:>3}  {n / min(ours_t):7.2f} ({n / max(ours_t):6.2f})  "
                f"{n / min(naive_t):7.2f} ({n / max(naive_t):6.2f})  {ratio:9.2f}x  {mark:<12}"
                f"  {1000 * ours_c / n:7.0f} {1000 * naive_c / n:7.0f} {naive_c / ours_c:6.2f}x"
            )

        # -- fidelity
        print()
        print("fidelity: |ours - naive| per pixel, in 1/255 units (naive = full-resolution render, LANCZOS-downscaled)")
        print(
            f"  {'file':<44}{'kind':<13}{'ours decode':<18}{'ours window':<34}{'size':>9}  "
            f"{'mean':>5} {'p99':>4} {'max':>4}"
        )
        diffs = []
        for item in items:
            row = ours_rows.get(item.path, {})
            label = item.name if len(item.name) <= 43 else item.name[:40] + "..."
            if row.get("kind") != "image":
                print(f"  {label:<44}{item.kind:<13}ours rejected it: {row.get('reason')} {row.get('detail', '')[:60]}")
                continue
            if item.path in naive_errors:
                print(f"  {label:<44}{item.kind:<13}naive failed: {naive_errors[item.path][:80]}")
                continue
            ours = np.asarray(Image.open(row["pending_png"]).convert("L"), dtype=np.int16)
            naive = np.asarray(Image.open(naive_pngs[item.path]).convert("L"), dtype=np.int16)
            if ours.shape != naive.shape:
                print(f"  {label:<44}size mismatch: ours {ours.shape}, naive {naive.shape}")
                diffs.append(255.0)
                continue
            note = ""
            if item.path in reference_pngs:
                header_mean = float(np.abs(ours - naive).mean())
                naive = np.asarray(Image.open(reference_pngs[item.path]).convert("L"), dtype=np.int16)
                note = f"  (vs naive with the header window: {header_mean:.1f}; ours falls back to percentile)"
            d = np.abs(ours - naive)
            diffs.append(float(d.mean()))
            print(
                f"  {label:<44}{item.kind:<13}{row['decode_method']:<18}{row['window_source']:<34}"
                f"{row['png_cols']:>4}x{row['png_rows']:<4}  {d.mean():5.2f} {np.percentile(d, 99):4.0f} "
                f"{d.max():4d}{note}"
            )
        if diffs:
            ok = float(np.mean(diffs)) <= TARGET_MEAN_DIFF
            print(
                f"  mean over {len(diffs)} files {np.mean(diffs):.2f}/255, max over files {max(diffs):.2f}/255; "
                f"target mean <= {TARGET_MEAN_DIFF:.0f}/255  {verdict(ok)}"
            )
        else:
            ok = False
            print("  no file could be compared  FAIL")
        if not ok:
            failures.append("fidelity")

        # -- memory
        main_peak = main_peak_mib()
        print()
        print("peak RSS, MiB (workers: VmHWM over the pool's life, warm-up included)")
        if ours_peaks:
            total = main_peak + sum(ours_peaks)
            ok = total < TARGET_MEMORY_MIB
            print(
                f"  main process {main_peak:.0f}; ours workers {', '.join(f'{p:.0f}' for p in ours_peaks)}; "
                f"naive workers {', '.join(f'{p:.0f}' for p in naive_peaks) or 'n/a'}"
            )
            print(
                f"  ours with {workers} workers: main + workers = {total:.0f} MiB; "
                f"target < {TARGET_MEMORY_MIB:.0f} MiB  {verdict(ok)}"
            )
        else:
            ok = False
            print(f"  main process {main_peak:.0f}; worker peaks unavailable (no /proc or workers == 1)  FAIL")
        if not ok:
            failures.append("memory")

        failures += raster_column(tmp, settings, workers, args.repeats, context)

        targets = 4 + len(TARGET_SPEEDUP_RASTER) + 1
        print()
        print(
            f"targets: {targets - len(failures)}/{targets} pass"
            + (f"; failed: {', '.join(failures)}" if failures else "")
        )
        return 1 if (failures and args.check) else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def raster_column(tmp: Path, settings, workers: int, repeats: int, context) -> list[str]:  # noqa: ANN001
    """The JPEG / PNG column: throughput of ours and naive per format, and the workers' peak RSS; failures."""
    from cxrvqa.core import parallel
    from cxrvqa.core.provenance import sha256_file
    from cxrvqa.imaging.convert import target_size
    from cxrvqa.imaging.models import ConversionJob

    folder = tmp / "raster"
    folder.mkdir()
    tasks = [
        (str(folder / f"{kind}_{n}.{'jpg' if kind == 'jpeg' else 'png'}"), kind, 100 + 100 * k + n)
        for k, kind in enumerate(TARGET_SPEEDUP_RASTER)
        for n in range(parallel.MIN_ITEMS_PER_WORKER * workers)
    ]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        paths = list(pool.map(write_raster, tasks))
    by_kind = {kind: [p for p, (_, k, _) in zip(paths, tasks) if k == kind] for kind in TARGET_SPEEDUP_RASTER}
    hashes = {p: sha256_file(p) for p in paths}
    size = target_size(SYNTH_ROWS, SYNTH_COLS, settings.scale, settings.longest_side)

    def ours(files: list[str], out: Path) -> list:
        return [ConversionJob(p, Path(p).name, hashes[p], str(out), None, settings) for p in files]

    def naive(files: list[str], out: Path) -> list[NaiveTask]:
        out.mkdir(parents=True, exist_ok=True)
        return [NaiveTask(p, str(out / f"{Path(p).name}.png"), size, tuple(settings.percentile_window)) for p in files]

    failures, rows, peaks = [], [], {}
    naive_pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        warm = [files[0] for files in by_kind.values()] * (parallel.MIN_ITEMS_PER_WORKER * workers)
        list(parallel.process_map(ours_render, ours(warm, tmp / "raster-warm-ours"), workers))
        list(naive_pool.map(naive_raster, naive(warm, tmp / "raster-warm-naive"), chunksize=1))
        peaks[f"after the warm-up ({len(warm)} images)"] = worker_peaks_mib(parallel._pools.get(workers))
        for kind, files in by_kind.items():
            best = {"ours": float("inf"), "naive": float("inf")}
            cpu = {"ours": float("inf"), "naive": float("inf")}  # worker CPU seconds, summed over the files
            for repeat in range(repeats):
                started = time.perf_counter()
                results = list(
                    parallel.process_map(ours_render, ours(files, tmp / f"raster-ours-{kind}-{repeat}"), workers)
                )
                best["ours"] = min(best["ours"], time.perf_counter() - started)
                cpu["ours"] = min(cpu["ours"], sum(c for _, c in results))
                rejected = [row for (outcome, row), _ in results if outcome != "image"]
                started = time.perf_counter()
                timed = list(
                    naive_pool.map(naive_raster, naive(files, tmp / f"raster-naive-{kind}-{repeat}"), chunksize=1)
                )
                best["naive"] = min(best["naive"], time.perf_counter() - started)
                cpu["naive"] = min(cpu["naive"], sum(c for _, c in timed))
                errors = [e for e, _ in timed if e]
                if rejected or errors:
                    failures.append(f"{kind} conversion")
                    print(f"  {kind}: ours rejected {[r['reason'] for r in rejected]}, naive errors {errors[:1]}")
                    break
            ratio = best["naive"] / best["ours"]
            target = TARGET_SPEEDUP_RASTER[kind]
            rows.append(
                (
                    kind,
                    len(files),
                    len(files) / best["ours"],
                    len(files) / best["naive"],
                    ratio,
                    target,
                    1000 * cpu["ours"] / len(files),
                    1000 * cpu["naive"] / len(files),
                )
            )
            if ratio < target:
                failures.append(f"{kind} speed")
        peaks[f"after all {len(paths) * repeats + len(warm)} images"] = worker_peaks_mib(parallel._pools.get(workers))
    finally:
        naive_pool.shutdown(wait=True)
        parallel.shutdown_pools()

    print()
    print(
        f"JPEG / PNG column: {SYNTH_ROWS} x {SYNTH_COLS} synthetic, images/s (wall clock, {workers} workers, best of "
        f"{repeats})"
    )
    print(
        f"  {'format':<8}{'n':>3}  {'ours':>8}  {'naive':>8}  {'ours/naive':>10}  {'target':<13}"
        f"  worker CPU ms/image ours, naive, ratio"
    )
    for kind, n, ours_rate, naive_rate, ratio, target, ours_ms, naive_ms in rows:
        print(
            f"  {kind:<8}{n:>3}  {ours_rate:8.2f}  {naive_rate:8.2f}  {ratio:9.2f}x  >= {target}x  "
            f"{verdict(ratio >= target)}  {ours_ms:7.0f} {naive_ms:7.0f} {naive_ms / ours_ms:6.2f}x"
        )
    flat = [max(p) if p else 0.0 for p in peaks.values()]
    ok = bool(flat[0]) and flat[-1] <= flat[0] * 1.1 + 16
    print(
        "  ours worker peak RSS, MiB: "
        + "; ".join(f"{label}: {max(p) if p else 0:.0f}" for label, p in peaks.items())
        + f"  (flat: {verdict(ok)})"
    )
    if not ok:
        failures.append("raster memory")
    return failures


if __name__ == "__main__":
    sys.exit(main())
