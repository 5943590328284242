"""Rebuilds hash a file only when its size, mtime or inode changed (or with --rehash): every outcome the
same as when every file is hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cxrvqa.config import Config
from cxrvqa.core.provenance import sha256_file
from cxrvqa.imaging import stage
from cxrvqa.store import Store
from tests.imaging.helpers import four_chest_dicoms, run_stage


@pytest.fixture
def config(tmp_path: Path) -> Config:
    images = tmp_path / "images"
    four_chest_dicoms(images)
    (images / "garbage.dcm").write_bytes(b"not a dicom file at all" * 10)
    return Config(out_dir=tmp_path / "out", images_dir=images, imaging={"workers": 1})


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the stage hashes (names relative to the images folder), in any order."""
    calls: list[str] = []

    def counting(path: Path) -> str:
        calls.append(f"{Path(path).parent.name}/{Path(path).name}")
        return sha256_file(path)

    monkeypatch.setattr(stage, "sha256_file", counting)
    return calls


def rows(config: Config) -> tuple[list[tuple], list[tuple]]:
    with Store(config.db_path, read_only=True) as store:
        return (
            store.query("SELECT source_path, input_hash FROM images ORDER BY ALL"),
            store.query("SELECT source_path, reason, detail FROM image_rejects ORDER BY ALL"),
        )


def counts_of(config: Config) -> tuple[int, int, int, int]:
    counts = run_stage(config)
    return counts.n_input, counts.n_skipped, counts.n_done, counts.n_rejected


def test_first_build_hashes_and_records_every_file(config: Config, hashed: list[str]) -> None:
    assert counts_of(config) == (5, 0, 4, 1)
    assert len(hashed) == 5
    with Store(config.db_path, read_only=True) as store:
        recorded = store.query("SELECT source_path, size, mtime_ns, input_hash FROM image_files ORDER BY 1")
    assert [r[0] for r in recorded] == ["garbage.dcm", "s0/img0.dcm", "s1/img1.dcm", "s2/img2.dcm", "s3/img3.dcm"]
    for path, size, mtime_ns, digest in recorded:
        stat = (config.images_dir / path).stat()
        assert (size, mtime_ns, digest) == (stat.st_size, stat.st_mtime_ns, sha256_file(config.images_dir / path))


def test_no_change_rebuild_hashes_nothing(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    before = rows(config)
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == []
    assert rows(config) == before


def test_rehash_hashes_every_file_and_changes_nothing(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    before = rows(config)
    hashed.clear()
    config.imaging.rehash = True
    assert counts_of(config) == (5, 5, 0, 0)
    assert sorted(hashed) == ["images/garbage.dcm", "s0/img0.dcm", "s1/img1.dcm", "s2/img2.dcm", "s3/img3.dcm"]
    assert rows(config) == before


def _rewrite_same_size(path: Path) -> None:
    """Change the last pixel byte in place: same size, other content."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_same_size_new_mtime_is_hashed_again(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    target = config.images_dir / "s0" / "img0.dcm"
    stat = target.stat()
    _rewrite_same_size(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert target.stat().st_size == stat.st_size
    hashed.clear()
    assert counts_of(config) == (5, 4, 1, 0)  # a new version of its image (it was a reject: a duplicate of itself)
    assert hashed == ["s0/img0.dcm"]
    images, rejects = rows(config)
    assert ("s0/img0.dcm", sha256_file(target)) in images and len(images) == 4
    assert [r[:2] for r in rejects] == [("garbage.dcm", "not_dicom")]


def test_touched_file_is_hashed_again_but_adds_no_row(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    before = rows(config)
    target = config.images_dir / "s1" / "img1.dcm"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == ["s1/img1.dcm"]
    assert rows(config) == before
    with Store(config.db_path, read_only=True) as store:  # the new mtime is recorded: not hashed a third time
        assert store.query("SELECT mtime_ns FROM image_files WHERE source_path = 's1/img1.dcm'") == [
            (stat.st_mtime_ns + 1_000_000_000,)
        ]
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == []


def test_same_size_and_mtime_is_only_seen_with_rehash(config: Config, hashed: list[str]) -> None:
    """The documented blind spot: content changed in place, size and mtime as before."""
    run_stage(config)
    before = rows(config)
    target = config.images_dir / "s2" / "img2.dcm"
    stat = target.stat()
    _rewrite_same_size(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_ino == stat.st_ino
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == []
    assert rows(config) == before
    config.imaging.rehash = True
    assert counts_of(config) == (5, 4, 1, 0)
    assert ("s2/img2.dcm", sha256_file(target)) in rows(config)[0]


def test_file_swapped_by_rename_is_hashed_again(config: Config, hashed: list[str]) -> None:
    """mv keeps the mtime, and two DICOMs of one size are common: the inode tells them apart."""
    run_stage(config)
    first, second = config.images_dir / "s0" / "img0.dcm", config.images_dir / "s1" / "img1.dcm"
    assert first.stat().st_size == second.stat().st_size
    os.rename(first, first.with_suffix(".tmp"))
    os.rename(second, first)
    os.rename(first.with_suffix(".tmp"), second)
    hashed.clear()
    assert counts_of(config) == (5, 3, 0, 2)
    assert sorted(hashed) == ["s0/img0.dcm", "s1/img1.dcm"]
    _, rejects = rows(config)
    assert ("s0/img0.dcm", "duplicate_image", "identical content to 's1/img1.dcm'") in rejects
    assert ("s1/img1.dcm", "duplicate_image", "identical content to 's0/img0.dcm'") in rejects


def test_renamed_file_is_hashed_under_its_new_name(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    os.rename(config.images_dir / "s3" / "img3.dcm", config.images_dir / "s3" / "renamed.dcm")
    hashed.clear()
    assert counts_of(config) == (5, 4, 0, 1)
    assert hashed == ["s3/renamed.dcm"]
    _, rejects = rows(config)
    assert ("s3/renamed.dcm", "duplicate_image", "identical content to 's3/img3.dcm'") in rejects


def test_corrupt_file_stays_a_reject_with_its_reason(config: Config, hashed: list[str]) -> None:
    run_stage(config)
    _, rejects = rows(config)
    assert [r[:2] for r in rejects] == [("garbage.dcm", "not_dicom")]
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == []
    assert rows(config)[1] == rejects


def test_build_without_recorded_stats_hashes_each_file_once(config: Config, hashed: list[str]) -> None:
    """A build made before the stats were recorded (migration 0018 leaves image_files empty)."""
    run_stage(config)
    before = rows(config)
    with Store(config.db_path) as store:
        store.con.execute("DELETE FROM image_files")
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert len(hashed) == 5
    hashed.clear()
    assert counts_of(config) == (5, 5, 0, 0)
    assert hashed == []
    assert rows(config) == before


def test_a_file_edited_back_makes_its_first_version_current_again(config: Config, hashed: list[str]) -> None:
    """A, B (the same SOP instance re-exported with other content), then A again: A's image is current, under its
    own path (it was skipped as already converted, or rejected as identical to itself, and B stayed)."""
    run_stage(config)
    target = config.images_dir / "s0" / "img0.dcm"
    first = target.read_bytes()
    stat = target.stat()
    _rewrite_same_size(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert counts_of(config) == (5, 4, 1, 0)
    target.write_bytes(first)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert counts_of(config) == (5, 4, 1, 0)
    images, rejects = rows(config)
    assert ("s0/img0.dcm", sha256_file(target)) in images and len(images) == 4
    assert [r[:2] for r in rejects] == [("garbage.dcm", "not_dicom")]
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT input_hash FROM current_images WHERE source_path = 's0/img0.dcm'") == [
            (sha256_file(target),)
        ]
    assert counts_of(config) == (5, 5, 0, 0)
