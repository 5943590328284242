"""Benchmark of the `llm` extraction backend's request concurrency and of its answer cache.

What it measures
----------------
The real CLI (``cxrvqa build --reports R.jsonl --report-format jsonl --out OUT --extractor llm
--llm-base-url URL --llm-model fake-model --llm-concurrency N``, API key in
``$CXRVQA_LLM_API_KEY``) runs in a subprocess against ``tests.llm_server.FakeLLMServer``, which
this process serves on 127.0.0.1 and which sleeps ``--latency`` seconds (default 0.5) per request.
The CLI, not the backend's Python API, is the contract measured here.

* Concurrency: for each N in ``--concurrency`` (default 1,8,16,32), max(32, 40 N) synthetic
  reports (at least ~6 s of requests at the ideal rate) are built into a fresh folder.
  Throughput = ``n_done / seconds`` of the newest ``extract`` row of ``run_stages``; the ideal is
  N / latency (N requests always in flight, no overhead). Target: >= 90% of ideal at N = 16.
  Every report must cost exactly one request (no faults are injected).
* Cache: ``--cache-reports`` (default 3,000) reports are built once with the server's latency at 0
  and concurrency 32, then the same command is run again on the same folder. Target: the rerun
  sends zero requests and its extract stage handles >= 2,000 reports/s (``n_input / seconds``:
  on a rerun the reports are found done, so they count as input and skipped, not done).
  That rerun never reads ``llm_cache``, so the bench then deletes the graph tables' rows (the
  cache stays) and builds once more: zero requests, every graph rebuilt from the cached answers,
  >= 2,000 reports/s (``n_done / seconds``).

Every request must carry ``Authorization: Bearer bench-key`` (the key reached the client).
The exit code is 0 (it is a report) unless ``--check`` is given, in which case a failed target
exits 1; a failed build always exits 2 with the CLI's own error.

Run from the repository root::

    .venv/bin/python bench/bench_llm.py [--check]

Takes about 3 minutes (the Prefect server start of each build is not in the timings).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.llm_server import FakeLLMServer  # noqa: E402

CLI = Path(sys.executable).parent / "cxrvqa"
API_KEY = "bench-key"
MODEL = "fake-model"
TARGET_CONCURRENCY, TARGET_RATIO = 16, 0.9
CACHE_CONCURRENCY, CACHE_TARGET = 32, 2000.0

FINDINGS = ("pleural effusion", "pneumothorax", "consolidation", "atelectasis", "nodule", "opacity")
SIDES = ("left", "right")
SIZES = ("Small", "Moderate", "Large")
ZONES = ("upper", "lower")
NORMALS = ("Heart size is normal.", "The lungs are otherwise clear.", "No acute osseous abnormality.",
           "Mediastinal contours are within normal limits.")
CHANGES = ("new", "unchanged", "improved", "worsened")


@dataclass(frozen=True)
class StageRow:
    n_input: int
    n_done: int
    seconds: float
    started: float    # epoch seconds
    finished: float


def report_text(rng: random.Random, number: int) -> str:
    """One synthetic report: a positive and a negated finding, a normal statement and an impression;
    the indication's number makes every text, hence every request, distinct."""
    finding, negated = rng.sample(FINDINGS, 2)
    side, size, zone = rng.choice(SIDES), rng.choice(SIZES), rng.choice(ZONES)
    return (f"INDICATION: Follow-up visit number {number} for cough.\n"
            f"FINDINGS: {size} {side} {finding} in the {side} {zone} lobe. No {negated}. {rng.choice(NORMALS)}\n"
            f"IMPRESSION: {rng.choice(CHANGES).capitalize()} {side} {finding}.")


def write_reports(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for number in range(1, count + 1):
            record = {"study_id": f"b{number:05d}", "patient_id": f"p{number:05d}", "text": report_text(rng, number)}
            out.write(json.dumps(record) + "\n")


def reports_for(concurrency: int) -> int:
    """Enough reports for ~20 s of requests at the ideal rate (40 rounds of 0.5 s), so that the stage's
    fixed start-up (loading inputs, the client; about a second) is not what is measured."""
    return max(32, 40 * concurrency)


def build(reports: Path, out: Path, base_url: str, concurrency: int) -> None:
    """Run the CLI build; a failure stops the bench with the CLI's own message."""
    command = [str(CLI), "build", "--reports", str(reports), "--report-format", "jsonl", "--out", str(out),
               "--extractor", "llm", "--llm-base-url", base_url, "--llm-model", MODEL,
               "--llm-concurrency", str(concurrency)]
    result = subprocess.run(command, env={**os.environ, "CXRVQA_LLM_API_KEY": API_KEY}, capture_output=True,
                            text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        sys.exit(f"FAIL: the build exited {result.returncode}: {' '.join(command)}\n{output[-3000:]}\n"
                 "(until the llm extraction backend lands, the CLI rejects --extractor llm)")


def extract_stage(out: Path) -> StageRow:
    """The newest extract stage of the folder's store."""
    with duckdb.connect(str(out / "cxrvqa.duckdb"), read_only=True) as db:
        row = db.execute("SELECT n_input, n_done, seconds, epoch(started_at), epoch(finished_at) FROM run_stages "
                         "WHERE stage = 'extract' ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        sys.exit(f"FAIL: no extract stage in {out / 'cxrvqa.duckdb'}")
    return StageRow(*row)


def drop_graphs(out: Path) -> None:
    """Delete the scene graphs but keep `llm_cache`, so that the next build rebuilds every graph
    from the cached answers (a plain rerun finds the graphs done and never reads the cache)."""
    with duckdb.connect(str(out / "cxrvqa.duckdb")) as db:
        for table in ("obs_regions", "obs_sentences", "observations", "scene_graphs"):
            db.execute(f"DELETE FROM {table}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,16,32",
                        type=lambda text: [int(n) for n in text.split(",")], help="Comma-separated levels.")
    parser.add_argument("--latency", type=float, default=0.5, help="Server seconds per request.")
    parser.add_argument("--cache-reports", type=int, default=3000, help="Reports of the cache rerun.")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (its path is printed).")
    parser.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not CLI.exists():
        sys.exit(f"FAIL: {CLI} not found: run with the project's venv Python (.venv/bin/python)")
    work = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    results: dict[str, bool] = {}
    try:
        with FakeLLMServer(latency=args.latency) as server:
            print(f"server {server.base_url}, latency {args.latency * 1000:.0f} ms per request")
            print(f"{'concurrency':>11} {'reports':>7} {'requests':>8} {'seconds':>8} {'start-up':>8} {'tail':>6} "
                  f"{'reports/s':>9} {'ideal':>7} {'ratio':>6}")
            for concurrency in args.concurrency:
                folder = work / f"c{concurrency}"
                folder.mkdir()
                count = reports_for(concurrency)
                write_reports(folder / "reports.jsonl", count)
                before = server.request_count
                build(folder / "reports.jsonl", folder / "out", server.base_url, concurrency)
                stage, requests = extract_stage(folder / "out"), server.request_count - before
                if requests == 0:
                    sys.exit(f"FAIL: the build of {count} reports sent no request to {server.base_url}")
                received = [r["received_at"] for r in server.requests[before:]]
                startup = min(received) - stage.started
                tail = stage.finished - (max(received) + args.latency)
                rate, ideal = stage.n_done / stage.seconds, concurrency / args.latency
                verdict = ""
                if concurrency == TARGET_CONCURRENCY:
                    passed = rate / ideal >= TARGET_RATIO
                    results[f"throughput at {concurrency} >= {TARGET_RATIO:.0%} of ideal"] = passed
                    verdict = "PASS" if passed else "FAIL"
                results[f"concurrency {concurrency}: {count} reports done with {count} requests"] = (
                    stage.n_done == count and requests == count)
                print(f"{concurrency:>11} {stage.n_done:>7} {requests:>8} {stage.seconds:>8.2f} {startup:>8.2f} "
                      f"{tail:>6.2f} {rate:>9.1f} {ideal:>7.1f} {rate / ideal:>6.2f} {verdict}")

            folder = work / "cache"
            folder.mkdir()
            write_reports(folder / "reports.jsonl", args.cache_reports, seed=1)
            server.latency = 0.0
            build(folder / "reports.jsonl", folder / "out", server.base_url, CACHE_CONCURRENCY)
            first = extract_stage(folder / "out")
            before = server.request_count
            build(folder / "reports.jsonl", folder / "out", server.base_url, CACHE_CONCURRENCY)
            rerun, requests = extract_stage(folder / "out"), server.request_count - before
            rate = rerun.n_input / rerun.seconds
            print(f"\ncache: {args.cache_reports} reports, first build {first.n_done} done in {first.seconds:.2f} s; "
                  f"rerun: {requests} requests sent, {rerun.n_input} reports in {rerun.seconds:.3f} s "
                  f"= {rate:,.0f} reports/s (target >= {CACHE_TARGET:,.0f})")
            results["cache rerun sends zero requests"] = requests == 0
            results[f"cache rerun handles all {args.cache_reports} reports"] = rerun.n_input == args.cache_reports
            results[f"cache rerun >= {CACHE_TARGET:,.0f} reports/s"] = rate >= CACHE_TARGET

            drop_graphs(folder / "out")
            before = server.request_count
            build(folder / "reports.jsonl", folder / "out", server.base_url, CACHE_CONCURRENCY)
            rebuilt, requests = extract_stage(folder / "out"), server.request_count - before
            rate = rebuilt.n_done / rebuilt.seconds
            print(f"graphs dropped, answers from llm_cache: {requests} requests sent, {rebuilt.n_done} graphs in "
                  f"{rebuilt.seconds:.3f} s = {rate:,.0f} reports/s (target >= {CACHE_TARGET:,.0f})")
            results["graphs from llm_cache: zero requests, every graph rebuilt"] = (
                requests == 0 and rebuilt.n_done == args.cache_reports)
            results[f"graphs from llm_cache >= {CACHE_TARGET:,.0f} reports/s"] = rate >= CACHE_TARGET
            keys = {r["authorization"] for r in server.requests}
            results[f"every request carried the API key ({API_KEY})"] = keys == {f"Bearer {API_KEY}"}
    finally:
        if args.keep:
            print(f"\nwork folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nsummary:")
    for name, passed in results.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    print("PASS" if all(results.values()) else "FAIL")
    return 1 if args.check and not all(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
