"""Benchmark of `cxrvqa audit` on a large build against the one read it cannot avoid.

What it measures
----------------
Input: a build folder (``--out DIR``), by default the IU dev reports-only build (~128k QA items, 14
validators each: ~1.8M validation rows), built into a temporary folder from
``$CXRVQA_DATA_DIR/reports/iu_dev_reports.csv`` when no ``--out`` is given (~1.5 min on two cores).

Baseline: one pass over the current validation results, ``SELECT validator, status, reason, count(*)
FROM current_validation_results GROUP BY ALL``: every audit must read that view (it ranks every result
of every run per item and validator), so no audit can be faster than this pass.

Timed (wall clock, best of ``--repeats``, default 3, on a read-only connection as the CLI opens it):
- ``summarise``: the whole audit of the current dataset (10 example items);
- ``as of run 1``: the audit as of the build's first run (only when the build has more than one run);
- ``html``: the page's extra queries (thumbnails, reports) and its rendering, with 200 items.
Reported: seconds of each, the ratio to the baseline, and the peak RSS of this process.

Target: the audit of the IU dev build within a few seconds (``summarise`` <= 10 s on the shared 2-core
machine) and within 6x the baseline. ``--check`` exits 1 when a target is missed.

Run from the repository root::

    CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/bench_audit.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cxrvqa.audit import html
from cxrvqa.audit.summary import as_of, summarise
from cxrvqa.store import Store

TARGET_SECONDS, TARGET_RATIO = 10.0, 6.0


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def build_iu(out: Path) -> None:
    data = os.environ.get("CXRVQA_DATA_DIR")
    if not data:
        sys.exit("give --out DIR (a build) or set CXRVQA_DATA_DIR to build the IU dev reports")
    reports = Path(data) / "reports" / "iu_dev_reports.csv"
    print(f"building {reports} into {out} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cxrvqa.cli",
            "build",
            "--reports",
            str(reports),
            "--report-format",
            "iu",
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="a build folder (default: build the IU dev reports)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out
        if out is None:
            out = Path(scratch) / "iu"
            build_iu(out)
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            store.con.execute("SET enable_progress_bar = false")
            items = store.query("SELECT count(*) FROM current_qa_items")[0][0]
            results = store.query("SELECT count(*) FROM validation_results")[0][0]
            runs = [r for (r,) in store.query("SELECT run_id FROM runs ORDER BY started_at")]
            print(f"build {out}: {items} current items, {results} validation rows, {len(runs)} run(s)")
            baseline = best_of(
                args.repeats,
                lambda: store.query(
                    "SELECT validator, status, reason, count(*) FROM current_validation_results GROUP BY ALL"
                ),
            )
            timings = {"summarise": best_of(args.repeats, lambda: summarise(store, limit=10))}
            if len(runs) > 1:
                timings["as of run 1"] = best_of(args.repeats, lambda: summarise(store, run_id=runs[0], limit=10))
            page_summary = summarise(store, limit=html.DEFAULT_ITEMS)

            def render() -> None:
                with as_of(store, None):
                    html.render_page(page_summary, html.page_extras(store, page_summary, out), str(out))

            timings["html"] = best_of(args.repeats, render)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"baseline (one pass over current_validation_results): {baseline:.2f} s")
    for name, seconds in timings.items():
        print(f"{name:>12}: {seconds:.2f} s  ({seconds / baseline:.1f}x baseline)")
    print(f"peak RSS: {peak:.0f} MiB")
    missed = timings["summarise"] > TARGET_SECONDS or timings["summarise"] / baseline > TARGET_RATIO
    print(
        f"target (summarise <= {TARGET_SECONDS:.0f} s and <= {TARGET_RATIO:.0f}x baseline): "
        f"{'MISSED' if missed else 'met'}"
    )
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
