"""Benchmark of the item exports (jsonl, parquet, hf, llava) against a naive jsonl export.

What it measures
----------------
Input: a build (``--out DIR``); without one, the IU reports-only dev build is made in a temporary folder
from ``$CXRVQA_DATA_DIR/reports/iu_dev_reports.csv`` (~128k items, no images, ~1-2 minutes).

* ours: ``cxrvqa.export`` for every item format, every current item, through DuckDB's ``COPY ... TO``
  (streamed, nothing loaded into Python); wall clock per format, best of ``--repeats`` (default 3).
* naive: the same items query, ``fetchall()`` into Python, then ``json.dumps`` of one dict per row,
  written line by line: the obvious Python export of the same jsonl content.

The store is opened read-only with the build's default DuckDB memory limit (config `duckdb_memory_limit`,
1GB), as `cxrvqa export` opens it. Reported: items/s of each format and of the naive jsonl, the ratio
ours/naive for jsonl; the peak RSS of a fresh process doing only our jsonl export and of one doing only
the naive one (DuckDB's buffer pool is in both; the naive one also holds every row in Python); and a
check that both jsonl files parse to the same items in the same order.

Run from the repository root::

    CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/bench_export.py [--out DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cxrvqa.config import load_config
from cxrvqa.export.items import EVERY_ITEM, items_query
from cxrvqa.export.jsonl import export_jsonl
from cxrvqa.export.llava import export_llava
from cxrvqa.export.parquet import export_parquet
from cxrvqa.store import Store

FORMATS = {
    "jsonl": lambda store, dest: export_jsonl(store, dest / "items.jsonl"),
    "parquet": lambda store, dest: export_parquet(store, dest / "parquet"),
    "hf": lambda store, dest: export_parquet(store, dest / "hf", hf=True),
    "llava": lambda store, dest: export_llava(store, dest / "llava.json"),
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_jsonl(store: Store, dest: Path) -> int:
    sql, params = items_query(EVERY_ITEM)
    cursor = store.con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    with open(dest, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(dict(zip(names, row, strict=True))) + "\n")
    return len(rows)


def iu_build(folder: Path) -> Path:
    data = os.environ.get("CXRVQA_DATA_DIR")
    if not data:
        sys.exit("give --out DIR (a build) or set CXRVQA_DATA_DIR to build the IU dev reports")
    out = folder / "iu"
    command = [
        str(Path(sys.executable).parent / "cxrvqa"),
        "build",
        "--reports",
        str(Path(data) / "reports" / "iu_dev_reports.csv"),
        "--report-format",
        "iu",
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    print("building the IU dev build:", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def open_store(out: Path) -> Store:
    limit = load_config(None, {"out_dir": out}).duckdb_memory_limit
    return Store(out / "cxrvqa.duckdb", read_only=True, memory_limit=limit)


def peak_rss_of(out: Path, path: str) -> float:
    """Peak RSS (MiB) of a fresh process that runs only one jsonl export (``ours`` or ``naive``)."""
    result = subprocess.run(
        [sys.executable, __file__, "--out", str(out), "--measure", path], capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"the {path} export failed:\n{result.stderr}")
    return float(result.stdout.split()[-1])


def measure(out: Path, path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, open_store(out) as store:
        dest = Path(tmp) / "items.jsonl"
        if path == "ours":
            export_jsonl(store, dest)
        else:
            naive_jsonl(store, dest)
    print(peak_rss_mib())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="a build folder (default: build the IU dev reports)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", choices=("ours", "naive"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.out, args.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = args.out or iu_build(folder)
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        # first, while this process is small: a child's peak RSS starts from its parent's at fork
        ours_rss, naive_rss = peak_rss_of(out, "ours"), peak_rss_of(out, "naive")
        with open_store(out) as store:
            best = {}
            for name, export in FORMATS.items():
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    summary = export(store, folder)
                    times.append(time.perf_counter() - started)
                best[name] = (min(times), summary.items)
            started = time.perf_counter()
            naive_items = naive_jsonl(store, folder / "naive.jsonl")
            naive = time.perf_counter() - started
        with (
            open(folder / "items.jsonl", encoding="utf-8") as ours_file,
            open(folder / "naive.jsonl", encoding="utf-8") as naive_file,
        ):
            same = all(json.loads(a) == json.loads(b) for a, b in zip(ours_file, naive_file, strict=True))
    print(f"build {out}: {naive_items} current items")
    print(f"{'format':<8} {'items':>9} {'seconds':>8} {'items/s':>10}")
    for name, (seconds, items) in best.items():
        print(f"{name:<8} {items:>9} {seconds:>8.2f} {items / seconds:>10,.0f}")
    print(
        f"{'naive':<8} {naive_items:>9} {naive:>8.2f} {naive_items / naive:>10,.0f}   "
        "(fetchall + json.dumps per row, jsonl)"
    )
    print(f"jsonl ours/naive speed: {naive / best['jsonl'][0]:.1f}x; same items in the same order: {same}")
    print(f"peak RSS of a jsonl export alone: ours {ours_rss:.0f} MiB, naive {naive_rss:.0f} MiB")


if __name__ == "__main__":
    main()
