"""The image stage over batches: find files, skip what is done, convert, de-duplicate, write.

Called by the Prefect task of `flows/build.py` once per batch; conversion fans out over a
process pool, and the batch is written to DuckDB in one insert per table.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cxrvqa.config import Config
from cxrvqa.core.parallel import process_map
from cxrvqa.core.provenance import sha256_file, stable_hash
from cxrvqa.errors import InputError
from cxrvqa.imaging.convert import convert_file, reject_row
from cxrvqa.imaging.header import acceptance_vocabulary
from cxrvqa.imaging.manifest import Manifest, load_manifests
from cxrvqa.imaging.models import RETRYABLE_REJECTS, ConversionJob, RejectReason, RenderSettings
from cxrvqa.imaging.pseudonym import scrub_uids
from cxrvqa.store import StageCounts, Store
from cxrvqa.store.retire import reconcile
from cxrvqa.store.shards import Tables, as_rows, write_tables

#: The stage's name (config `stages`, `run_stages.stage`, the flow's batch task `images-batch`).
NAME = "images"

logger = logging.getLogger(__name__)

#: Bump when the rendering code changes what a PNG looks like: every image is redone.
RENDER_RECIPE = "dicom-jpeg-png/2"


@dataclass(frozen=True)
class ImageStageContext:
    """What every batch of one run shares."""

    images_dir: Path
    out_dir: Path
    settings: RenderSettings
    manifest: Manifest
    workers: int
    only_failed: bool = False  # convert only files whose latest outcome is a RETRYABLE_REJECTS reject
    rehash: bool = False  # hash every file, not only those whose size, mtime or inode changed

    def source_files(self, limit: int | None = None) -> Iterator[str]:
        """The files to convert: every file under the images folder but the manifest files."""
        return iter_source_files(self.images_dir, limit, frozenset(Path(f).resolve() for f, _ in self.manifest.files))


def render_settings(config: Config) -> RenderSettings:
    imaging = config.imaging
    key, _ = config.privacy.resolved_key()
    recipe = stable_hash(
        {
            "recipe": RENDER_RECIPE,
            "scale": imaging.scale,
            "longest_side": imaging.longest_side,
            "percentile_window": list(imaging.percentile_window),
            "max_pixels": imaging.max_pixels,
            "accept_empty_body_part": imaging.accept_empty_body_part,
            "accept_burned_in_annotation": imaging.accept_burned_in_annotation,
            "acceptance_vocabulary": acceptance_vocabulary().content_hash,
            "key": config.privacy.key_fingerprint(),
        }
    )
    return RenderSettings(
        scale=imaging.scale,
        longest_side=imaging.longest_side,
        png_compress_level=imaging.png_compress_level,
        max_pixels=imaging.max_pixels,
        percentile_window=tuple(imaging.percentile_window),
        accept_empty_body_part=imaging.accept_empty_body_part,
        pseudonym_key=key,
        recipe_version=recipe,
        accept_burned_in_annotation=imaging.accept_burned_in_annotation,
    )


def prepare(config: Config) -> ImageStageContext:
    if config.images_dir is None or not config.images_dir.is_dir():
        raise InputError(str(config.images_dir), "a folder of DICOM, JPEG or PNG files (--images)", "no such folder")
    if config.privacy.resolved_key()[1]:
        logger.warning(
            "pseudonymising DICOM identifiers with the built-in demo key: they are NOT protected; "
            "set CXRVQA_PSEUDONYM_KEY for real data"
        )
    return ImageStageContext(
        images_dir=config.images_dir.resolve(),
        out_dir=config.out_dir.resolve(),
        settings=render_settings(config),
        manifest=load_manifests(config.manifest),
        workers=config.imaging.workers,
        only_failed=config.only_failed,
        rehash=config.imaging.rehash,
    )


def iter_source_files(
    images_dir: Path, limit: int | None = None, exclude: frozenset[Path] = frozenset()
) -> Iterator[str]:
    """Every regular file under ``images_dir`` (any name) but the ``exclude``d ones (the manifest files, which
    datasets ship inside their image folder), as relative POSIX paths.

    Deterministic order: a folder's files (sorted) before its sub-folders (sorted).
    """
    count = 0
    for root, dirs, files in os.walk(images_dir):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            if not full.is_file() or full in exclude:
                continue
            yield full.relative_to(images_dir).as_posix()
            count += 1
            if limit is not None and count >= limit:
                return


#: What the store recorded of a file when it last hashed it: (size, mtime_ns, inode, sha256).
FileStat = tuple[int, int, int, str]


def _hash(path: Path, known: FileStat | None) -> tuple[str | OSError, dict[str, Any] | None]:
    """The file's sha256 (or the error reading it) and, when it was hashed now, its stats to record.

    ``known``: the stats recorded for its path (None: hash it whatever they are). The file is stat-ed before
    it is read, so a file changed while being hashed differs from its recorded stats on the next build."""
    try:
        stat = os.stat(path)
        if known is not None and known[:3] == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
            return known[3], None
        digest = sha256_file(path)
    except OSError as exc:
        return exc, None
    return digest, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "input_hash": digest}


def _recorded_stats(store: Store, source_paths: list[str]) -> dict[str, FileStat]:
    """The size, mtime, inode and hash recorded for these stored source paths."""
    return {
        path: (size, mtime, inode, digest)
        for path, size, mtime, inode, digest in store.query(
            "SELECT source_path, size, mtime_ns, inode, input_hash FROM image_files "
            "WHERE source_path IN (SELECT unnest(?::VARCHAR[]))",
            [source_paths],
        )
    }


def _reject(
    source_path: str, reason: RejectReason, detail: str, input_hash: str | None, context: ImageStageContext
) -> dict[str, Any]:
    return reject_row(source_path, reason, detail, input_hash, context.settings.recipe_version)


@dataclass(frozen=True)
class ImageWork:
    """A batch after the store was read: the files to convert, and the rejects known without converting."""

    jobs: list[ConversionJob]
    rejects: list[dict[str, Any]]
    hashed: list[dict[str, Any]] = field(default_factory=list)  # `image_files` rows of the files hashed now


def _hash_batch(
    store: Store, batch: list[str], context: ImageStageContext
) -> tuple[dict[str, str], dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Hash the batch's files, on threads: the sha256 and the images-folder path of each readable file (both by
    stored source path), an unreadable_file reject for each other file, and the `image_files` rows of those
    hashed now."""
    source_paths = [scrub_uids(relative, context.settings.pseudonym_key) for relative in batch]
    recorded = {} if context.rehash else _recorded_stats(store, source_paths)
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing is I/O + hashlib, which releases the GIL
        hashes = list(pool.map(_hash, (context.images_dir / p for p in batch), map(recorded.get, source_paths)))

    rejects: list[dict[str, Any]] = []
    hashed: list[dict[str, Any]] = []
    readable: dict[str, str] = {}  # stored source path -> sha256
    real_path: dict[str, str] = {}  # stored source path -> path relative to the images folder
    for relative, source_path, (digest, stats) in zip(batch, source_paths, hashes):
        if stats is not None:
            hashed.append({"source_path": source_path, **stats})
        if isinstance(digest, OSError):
            rejects.append(
                _reject(
                    source_path,
                    RejectReason.unreadable_file,
                    f"{type(digest).__name__}: {digest.strerror or digest}",
                    None,
                    context,
                )
            )
        else:
            readable[source_path] = digest
            real_path[source_path] = relative
    return readable, real_path, rejects, hashed


def load_batch(store: Store, batch: list[str], context: ImageStageContext) -> tuple[ImageWork, StageCounts]:
    """Hash the batch's files (relative paths) whose size, mtime or inode changed since they were last hashed
    (all of them with ``context.rehash``) and leave out those already done; the counts so far."""
    counts = StageCounts(n_input=len(batch))
    recipe = context.settings.recipe_version
    readable, real_path, rejects, hashed = _hash_batch(store, batch, context)
    # a file's latest outcome (an image or a reject, under any recipe) only: a file edited back (A, B, then A
    # again) or a recipe set back must make A's image under this recipe current again
    latest = dict(
        store.query(
            "SELECT source_path, arg_max([input_hash, recipe_version], created_at) FROM ("
            "  SELECT source_path, input_hash, recipe_version, created_at FROM images"
            "  UNION ALL SELECT source_path, input_hash, recipe_version, created_at FROM image_rejects"
            ") WHERE source_path IN (SELECT unnest(?::VARCHAR[])) GROUP BY source_path",
            [list(readable)],
        )
    )
    converted: dict[str, list[str]] = {}
    for digest, path in store.query(
        "SELECT input_hash, source_path FROM images WHERE recipe_version = ? AND input_hash IN "
        "(SELECT unnest(?::VARCHAR[])) ORDER BY source_path",
        [recipe, list(set(readable.values()))],
    ):
        converted.setdefault(digest, []).append(path)
    retry = _retryable(store, recipe, list(readable)) if context.only_failed else set()
    jobs = []
    for source_path, digest in readable.items():
        if source_path not in retry if context.only_failed else latest.get(source_path) == [digest, recipe]:
            counts.n_skipped += 1
        elif elsewhere := [path for path in converted.get(digest, ()) if path != source_path]:
            rejects.append(
                _reject(
                    source_path,
                    RejectReason.duplicate_image,
                    f"identical content to {elsewhere[0]!r}",
                    digest,
                    context,
                )
            )
        else:
            jobs.append(
                ConversionJob(
                    str(context.images_dir / real_path[source_path]),
                    source_path,
                    digest,
                    str(context.out_dir),
                    context.manifest.entry(real_path[source_path]),
                    context.settings,
                )
            )

    return ImageWork(jobs, rejects, hashed), counts


def compute_batch(work: ImageWork, context: ImageStageContext, run_id: str) -> Iterator[Tables]:
    """Convert the files over the worker processes: `images` rows (each with the ``pending_png`` it wrote
    under the out folder) and `image_rejects` rows."""
    results = list(process_map(convert_file, work.jobs, context.workers))
    images = [{**row, "run_id": run_id} for kind, row in results if kind == "image"]
    rejects = [{**row, "run_id": run_id} for row in work.rejects + [row for kind, row in results if kind == "reject"]]
    yield {"images": images, "image_rejects": rejects, "image_files": list(work.hashed)}


def write_batch(store: Store, counts: StageCounts, parts: Iterable[Tables], context: ImageStageContext) -> StageCounts:
    """Keep the first file of each image (a later one is a duplicate_image reject), move its PNG in place,
    and write the rows in one transaction."""
    candidates: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    hashed: list[dict[str, Any]] = []
    for part in parts:
        candidates.extend(as_rows(part.get("images", [])))
        rejects.extend(as_rows(part.get("image_rejects", [])))
        hashed.extend(as_rows(part.get("image_files", [])))
    replaced: set[str] = set()
    recipe = context.settings.recipe_version
    images = _keep_first_of_each_image(store, recipe, candidates, rejects, context, replaced)
    for row in images:
        os.replace(row.pop("pending_png"), context.out_dir / row["png_path"])
    now = datetime.now(timezone.utc)
    with store.transaction():  # the stats recorded commit with the rows their hashes decided
        if replaced:
            store.con.execute(
                "DELETE FROM images WHERE recipe_version = ? AND image_id IN (SELECT unnest(?::VARCHAR[]))",
                [recipe, sorted(replaced)],
            )
        if hashed:
            store.con.execute(
                "DELETE FROM image_files WHERE source_path IN (SELECT unnest(?::VARCHAR[]))",
                [[row["source_path"] for row in hashed]],
            )
        written = {
            table: store.insert(table, rows)
            for table, rows in (
                ("images", images),
                ("image_rejects", rejects),
                ("image_files", [{**row, "created_at": now} for row in hashed]),
            )
        }
    counts.n_done += written["images"]
    counts.n_rejected += written["image_rejects"]
    return counts


def write_missing_images(store: Store, run_id: str, context: ImageStageContext, seen: Iterable[str]) -> StageCounts:
    """A `missing_image` reject for each manifest row whose image is not among ``seen`` (every file under
    --images), unless its latest outcome already is that reject; the counts (input and rejected)."""
    missing = context.manifest.missing(seen)
    if not missing:
        return StageCounts()
    recipe = context.settings.recipe_version
    key = context.settings.pseudonym_key
    rows = {scrub_uids(image, key): where for where, image in missing}
    known = {
        path
        for (path,) in store.query(
            "SELECT source_path FROM current_image_rejects WHERE reason = ? AND recipe_version = ? AND source_path IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [str(RejectReason.missing_image), recipe, list(rows)],
        )
    }
    rejects = [
        {
            **_reject(
                path,
                RejectReason.missing_image,
                f"expected the file that {Path(where).name} names under --images, found none",
                None,
                context,
            ),
            "run_id": run_id,
        }
        for path, where in rows.items()
        if path not in known
    ]
    written = write_tables(store, [{"image_rejects": rejects}])
    return StageCounts(n_input=len(rows), n_skipped=len(rows) - len(rejects), n_rejected=written["image_rejects"])


def retire_absent(store: Store, run_id: str, config: Config, context: ImageStageContext, files: Iterable[str]) -> None:
    """After the stage: the current images whose file is not among ``files`` (every file under --images),
    retired with --prune (a warning without it); retired images whose file is back restored. Nothing under
    --limit."""
    if config.limit is None:
        seen = (scrub_uids(path, context.settings.pseudonym_key) for path in files)
        reconcile(store, run_id, "image", seen, f"--images {context.images_dir}", config.prune)


def _retryable(store: Store, recipe: str, source_paths: list[str]) -> set[str]:
    """Of these files, those whose latest outcome under this recipe is a reject worth retrying."""
    return {
        path
        for (path,) in store.query(
            "SELECT source_path FROM current_image_rejects WHERE recipe_version = ? AND reason IN "
            "(SELECT unnest(?::VARCHAR[])) AND source_path IN (SELECT unnest(?::VARCHAR[]))",
            [recipe, sorted(RETRYABLE_REJECTS), source_paths],
        )
    }


def _keep_first_of_each_image(
    store: Store,
    recipe: str,
    candidates: list[dict[str, Any]],
    rejects: list[dict[str, Any]],
    context: ImageStageContext,
    replaced: set[str],
) -> list[dict[str, Any]]:
    """The image rows to keep; a second file of the same SOP instance becomes a reject (added to ``rejects``).
    A file that now holds another version of its own image (re-exported, corrected) is that image's new version:
    its stored row is deleted in the batch's transaction (``replaced``: image ids) and the new one written."""
    known = {
        image_id: (source_path, input_hash)
        for image_id, source_path, input_hash in store.query(
            "SELECT image_id, source_path, input_hash FROM images WHERE recipe_version = ? "
            "AND image_id IN (SELECT unnest(?::VARCHAR[]))",
            [recipe, [row["image_id"] for row in candidates]],
        )
    }
    images = []
    for row in candidates:
        first = known.get(row["image_id"])
        if first is None or first[0] == row["source_path"]:  # a batch holds each path once
            if first is not None:
                replaced.add(row["image_id"])
            known[row["image_id"]] = (row["source_path"], row["input_hash"])
            images.append(row)
            continue
        os.remove(row["pending_png"])
        first_path, first_hash = first
        detail = (
            f"identical content to {first_path!r}"
            if first_hash == row["input_hash"]
            else f"same SOP Instance UID as {first_path!r} but different file content"
        )
        rejects.append(
            {
                **_reject(row["source_path"], RejectReason.duplicate_image, detail, row["input_hash"], context),
                "run_id": row["run_id"],
            }
        )
    return images
