"""Property-based fuzzing of every input reader: arbitrary bytes and mutated valid files in; each record ends as
a row or a reject with a reason (or the whole file as one InputError), never an uncaught exception, and no
stored text holds U+FFFD or anything else a database cannot store.

Seeded (``derandomize``) and bounded: the default profile ``ci`` runs in well under a minute. A longer run for a
bench: ``CXRVQA_FUZZ_PROFILE=bench python -m pytest tests/test_fuzz_inputs.py -s`` (``-s`` prints the outcome
counts per reader).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxrvqa.core.resources import resource
from cxrvqa.errors import InputError
from cxrvqa.imaging.boxes import import_boxes
from cxrvqa.imaging.header import check_acceptance, read_header
from cxrvqa.imaging.manifest import load_manifests
from cxrvqa.imaging.models import ImageRejection, RejectReason
from cxrvqa.reports.loaders import RawReject, RawReport, ReportReason, load_reports
from cxrvqa.reports.stage import ReportStageContext, parse_report
from cxrvqa.store import Store

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "bench",
    max_examples=3000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(os.environ.get("CXRVQA_FUZZ_PROFILE", "ci"))

DATA = Path(__file__).resolve().parent / "data"
DEMO = Path(str(resource("demo")))
VALID = {
    "iu": (DATA / "bad_inputs" / "iu_excel_bom.csv").read_bytes(),
    "csv": b"study_id,patient_id,findings,impression\ns1,p1,Small left effusion.,Effusion.\ns2,p2,Clear.,Normal.\n",
    "jsonl": (DEMO / "reports.jsonl").read_bytes(),
    "mimic": b"FINAL REPORT\nINDICATION: Cough.\nFINDINGS: No pneumothorax. Heart size normal.\nIMPRESSION: Normal.\n",
    "chexpert_plus": (DATA / "raster" / "chexpert_plus" / "df_chexpert_plus_240401.csv").read_bytes(),
    "rexgradient": b"id,PatientID,Indication,Comparison,Findings,Impression\ns1,p1,Cough.,None.,Small left effusion.,"
    b"Effusion.\ns1,p1,Cough.,None.,Small left effusion.,Effusion.\ns2,p2,,,Clear.,Normal.\n",
    "manifest": (DEMO / "manifest.csv").read_bytes(),
    "boxes": (DATA / "boxes" / "vindr_small.csv").read_bytes(),
    "dicom": (DATA / "cr_cspine_16x16.dcm").read_bytes(),
}
OUTCOMES: dict[str, Counter[str]] = {}
CONTEXT = ReportStageContext(report_format="jsonl", parser_version="fuzz", max_chars=200_000)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid file with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(("flip", "insert", "delete", "truncate")))
        if operation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del data[position:]
    return bytes(data)


def inputs(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, text in other encodings (with controls, U+FFFD, anything), and mutated valid files."""
    text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)
    return st.one_of(
        st.binary(max_size=600),
        text.map(lambda t: t.encode("utf-8")),
        text.map(lambda t: t.encode("utf-16")),
        text.map(lambda t: t.encode("cp1252", "replace")),
        mutated(valid),
        mutated(valid),
    )


def _storable(text: str | None) -> bool:
    """What a DuckDB VARCHAR takes, and no silent replacement character."""
    if text is None:
        return True
    text.encode("utf-8")  # raises on a lone surrogate
    return "\ufffd" not in text


@pytest.fixture(scope="module", autouse=True)
def _print_outcomes() -> Iterator[None]:
    yield
    for reader, counts in sorted(OUTCOMES.items()):
        print(f"\nfuzz {reader}: {dict(counts.most_common())}")


def _count(reader: str, outcome: str) -> None:
    OUTCOMES.setdefault(reader, Counter())[str(outcome)] += 1


@pytest.mark.parametrize("report_format", ["iu", "csv", "jsonl", "mimic", "chexpert_plus", "rexgradient"])
def test_report_loaders_turn_any_bytes_into_reports_rejects_or_one_input_error(report_format: str) -> None:
    @PROFILE
    @given(data=inputs(VALID[report_format]))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "reports"
            if report_format == "mimic":
                (path / "p10" / "p10000001").mkdir(parents=True)
                (path / "p10" / "p10000001" / "s50000001.txt").write_bytes(data)
            else:
                path.write_bytes(data)
            try:
                records = list(load_reports(path, report_format))
            except InputError as exc:
                assert _storable(str(exc).encode("utf-8", "backslashreplace").decode())
                _count(f"reports {report_format}", "input_error")
                return
        for record in records:
            assert _storable(record.source) and _storable(record.study_id)
            if isinstance(record, RawReject):
                assert record.reason in set(ReportReason) and _storable(record.detail)
                _count(f"reports {report_format}", record.reason)
            else:
                assert isinstance(record, RawReport)
                assert _storable(record.text) and _storable(record.patient_id)
                parse_report(record, CONTEXT, "run", "hash")  # sections and sentences never raise
                _count(f"reports {report_format}", "report")

    check()


def test_the_manifest_is_a_mapping_or_one_input_error() -> None:
    @PROFILE
    @given(data=inputs(VALID["manifest"]))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "manifest.csv"
            path.write_bytes(data)
            try:
                manifest = load_manifests([path])
            except InputError:
                _count("manifest", "input_error")
                return
        entries = [*manifest.by_path.items(), *manifest.by_name.items()]
        assert all(
            _storable(key) and _storable(entry.study_id) and _storable(entry.patient_id) for key, entry in entries
        )
        _count("manifest", "mapping")

    check()


def test_box_files_import_as_boxes_rejects_or_one_input_error(tmp_path: Path) -> None:
    with Store(tmp_path / "cxrvqa.duckdb") as store:

        @PROFILE
        @given(data=inputs(VALID["boxes"]))
        def check(data: bytes) -> None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "boxes.csv"
                path.write_bytes(data)
                try:
                    summary = import_boxes(store, path, run_id="fuzz")
                except InputError:
                    _count("boxes", "input_error")
                    return
            assert summary.n_rows == summary.n_imported + summary.n_skipped + summary.n_rejected
            _count("boxes", "file imported")
            for reason, n in summary.reasons.items():
                OUTCOMES["boxes"][f"row {reason}"] += n

        check()
        rejects = store.query("SELECT detail FROM box_rejects")
    assert all(_storable(detail) for (detail,) in rejects)


def test_the_dicom_header_reader_accepts_or_rejects_any_bytes_with_a_reason() -> None:
    @PROFILE
    @given(data=inputs(VALID["dicom"]))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "image.dcm"
            path.write_bytes(data)
            try:
                header = read_header(str(path))
                check_acceptance(header, str(path), max_pixels=50_000_000, accept_empty_body_part=True)
            except ImageRejection as rejection:
                assert rejection.reason in set(RejectReason) and rejection.detail
                _count("dicom header", rejection.reason)
                return
        _count("dicom header", "accepted")

    check()
