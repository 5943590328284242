"""Display transform as one lookup table: Modality LUT, then VOI, then 8 bits, then inversion.

The transform is computed once over the domain of stored values (at most 65,536 entries)
and applied with one indexing pass, instead of float64 arithmetic over every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut


@dataclass(frozen=True)
class DisplayWindow:
    source: str  # voi_lut_sequence | window | full_range | percentile[_header_window_unusable] | min_max
    center: float | None
    width: float | None


def _lookup_index(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index array into the LUT, stored value of each LUT entry), without copying the pixels."""
    if stored.dtype == np.uint8:
        return stored, np.arange(256, dtype=np.int64)
    if stored.dtype == np.uint16:
        size = int(stored.max()) + 1
        return stored, np.arange(size, dtype=np.int64)
    if stored.dtype == np.int8:
        return stored.view(np.uint8), np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)
    if stored.dtype == np.int16:
        return stored.view(np.uint16), np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)
    raise ValueError(f"expected 8- or 16-bit stored pixel values, found dtype {stored.dtype}")


def _linear_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing to [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        width = max(width, 1e-6)
        return np.clip((values - (center - width / 2.0)) / width, 0.0, 1.0)
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _first(value: object) -> float:
    if isinstance(value, list | tuple) or hasattr(value, "__getitem__") and not isinstance(value, str):
        return float(value[0])
    return float(value)


def _percentile_bounds(counts: np.ndarray, modality_values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    order = np.argsort(modality_values, kind="stable")
    cumulative = np.cumsum(counts[order])
    total = cumulative[-1]
    lo = modality_values[order][np.searchsorted(cumulative, total * low / 100.0, side="left")]
    hi = modality_values[order][min(np.searchsorted(cumulative, total * high / 100.0, side="left"), len(order) - 1)]
    return float(lo), float(hi)


#: A header window that holds less than this share of the pixels is unusable (wrong header).
MIN_WINDOW_SHARE = 0.02
#: Histograms are taken on a strided sample of at most about this many pixels.
HISTOGRAM_SAMPLE = 1 << 20


def _histogram(index: np.ndarray, size: int) -> np.ndarray:
    stride = max(1, int(np.sqrt(index.size / HISTOGRAM_SAMPLE)))
    return np.bincount(index[::stride, ::stride].ravel(), minlength=size)[:size]


def to_display(
    stored: np.ndarray, ds: Dataset, invert: bool, percentile_window: tuple[float, float]
) -> tuple[np.ndarray, DisplayWindow]:
    """8-bit display image of ``stored`` (2-D, any reduced size) following the header's LUTs.

    Without a VOI LUT or window, 8-bit images (already display-ready, e.g. secondary
    captures of PNGs) keep their full range; deeper images get a percentile window, as do
    images whose header window misses almost all of their pixels.
    """
    index, domain = _lookup_index(stored)
    if "ModalityLUTSequence" in ds:
        modality_values = apply_modality_lut(domain, ds).astype(np.float64)
    else:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        modality_values = domain * slope + intercept

    counts: np.ndarray | None = None
    scaled: np.ndarray | None = None
    window: DisplayWindow | None = None
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        # A VOI LUT is indexed by integer modality values.
        voi = apply_voi_lut(np.rint(modality_values).astype(np.int64), ds, index=0, prefer_lut=True)
        voi = voi.astype(np.float64)
        lo, hi = float(voi.min()), float(voi.max())
        scaled = (voi - lo) / (hi - lo) if hi > lo else np.zeros_like(voi)
        window = DisplayWindow("voi_lut_sequence", None, None)
    elif ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, ""):
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        counts = _histogram(index, len(domain))
        inside = (modality_values >= center - width / 2.0) & (modality_values <= center + width / 2.0)
        if counts[inside].sum() >= MIN_WINDOW_SHARE * counts.sum():
            function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            scaled = _linear_window(modality_values, center, width, function)
            window = DisplayWindow("window", center, width)
    elif stored.dtype.itemsize == 1 and "ModalityLUTSequence" not in ds:
        lo, hi = float(modality_values.min()), float(modality_values.max())
        scaled = (modality_values - lo) / (hi - lo)
        window = DisplayWindow("full_range", (lo + hi) / 2.0, hi - lo)

    if window is None:
        bad_header_window = counts is not None
        counts = counts if counts is not None else _histogram(index, len(domain))
        lo, hi = _percentile_bounds(counts, modality_values, *percentile_window)
        source = "percentile_header_window_unusable" if bad_header_window else "percentile"
        if hi <= lo:
            present = modality_values[counts > 0]
            lo, hi, source = float(present.min()), float(present.max()), "min_max"
        scaled = np.clip((modality_values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(modality_values)
        window = DisplayWindow(source, (lo + hi) / 2.0, hi - lo)

    lut = np.rint(scaled * 255.0).astype(np.uint8)
    if invert:
        lut = 255 - lut
    return lut[index], window
