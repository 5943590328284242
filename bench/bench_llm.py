"""Benchmark of the `llm` extraction backend's request concurrency and of its answer cache.

What it measures
----------------
The real CLI (``cxrvqa build --reports R.jsonl --report-format jsonl --out OUT --stages
reports,extract --extractor llm --llm-base-url URL --llm-model fake-model --llm-concurrency N``, API key in
``$CXRVQA_LLM_API_KEY``) runs in a subprocess against ``tests.llm_server.FakeLLMServer``, which
this process serves on 127.0.0.1 and which answers each request ``--latency`` seconds (default
0.5) after it arrived. The CLI, not the backend's Python API, is the contract measured here.
Stage seconds are those of ``run_stages``: from the stage's start (after ``prepare``, which
imports the openai client and the report checks' spaCy once per process) to its end.

* Baseline (same run, same server): the plain sync ``openai.OpenAI`` client sending
  ``--baseline-requests`` (default 8) reports one at a time, with the backend's prompt and
  response format, each answer parsed and grounded. Column ``x seq``: throughput / baseline's.
* Concurrency: for each N in ``--concurrency`` (default 1,8,16,32), max(32, 40 N) synthetic
  reports (40 rounds of requests, ~20 s at the ideal rate) are built into a fresh folder.
  Throughput = ``n_done / seconds`` of the newest ``extract`` row of ``run_stages``; the ideal is
  N / latency (N requests always in flight, no overhead). Target: >= 90% of ideal at N = 16.
  ``start-up``: stage start to the server's first request; ``tail``: last answer to stage end.
  Every report must cost exactly one request (no faults are injected).
* Cache: ``--cache-reports`` (default 6,000) reports are built once with the server's latency at 0
  and concurrency 32, then the same command is run again on the same folder. Target: the rerun
  sends zero requests and its extract stage handles >= 2,000 reports/s (``n_input / seconds``:
  on a rerun the reports are found done, so they count as input and skipped, not done).
  That rerun never reads ``llm_cache``, so the bench then deletes the graph tables' rows (the
  cache stays) and builds once more: zero requests, every graph rebuilt from the cached answers,
  >= 2,000 reports/s (``n_done / seconds``). That build is a fresh process, whose first batch
  pays ~0.5 s once (DuckDB imports pandas at the first Arrow insert; the first full garbage
  collection walks everything imported): 6,000 reports keep that from being what is measured,
  as the 40 rounds do for the concurrency levels. Its baseline, in this process: the naive
  rebuild of ``--baseline-graphs`` (default 300) studies one at a time (one query each for the
  inputs and the cached answer, the full JSON Schema + pydantic check, grounding, table rows;
  no writes, so the printed ratio is conservative).

Every request must carry ``Authorization: Bearer bench-key`` (the key reached the client).
The exit code is 0 (it is a report) unless ``--check`` is given, in which case a failed target
exits 1; a failed build always exits 2 with the CLI's own error.

Run from the repository root::

    .venv/bin/python bench/bench_llm.py [--check]

Takes about 3.5 minutes (the Prefect server start of each build is not in the timings).
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
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from openai import OpenAI  # noqa: E402

from cxrvqa.config import Config  # noqa: E402
from cxrvqa.core.scene_graph import Sentence  # noqa: E402
from cxrvqa.core.text import split_sentences  # noqa: E402
from cxrvqa.extraction import llm  # noqa: E402
from cxrvqa.extraction import stage as extraction  # noqa: E402
from cxrvqa.store import Store  # noqa: E402
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
NORMALS = (
    "Heart size is normal.",
    "The lungs are otherwise clear.",
    "No acute osseous abnormality.",
    "Mediastinal contours are within normal limits.",
)
CHANGES = ("new", "unchanged", "improved", "worsened")


@dataclass(frozen=True)
class StageRow:
    n_input: int
    n_done: int
    seconds: float
    started: float  # epoch seconds
    finished: float


def report_text(rng: random.Random, number: int) -> str:
    """One synthetic report: a positive and a negated finding, a normal statement and an impression;
    the indication's number makes every text, hence every request, distinct."""
    finding, negated = rng.sample(FINDINGS, 2)
    side, size, zone = rng.choice(SIDES), rng.choice(SIZES), rng.choice(ZONES)
    return (
        f"INDICATION: Follow-up visit number {number} for cough.\n"
        f"FINDINGS: {size} {side} {finding} in the {side} {zone} lobe. No {negated}. {rng.choice(NORMALS)}\n"
        f"IMPRESSION: {rng.choice(CHANGES).capitalize()} {side} {finding}."
    )


def write_reports(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for number in range(1, count + 1):
            record = {"study_id": f"b{number:05d}", "patient_id": f"p{number:05d}", "text": report_text(rng, number)}
            out.write(json.dumps(record) + "\n")


def reports_for(concurrency: int) -> int:
    """Enough reports for ~20 s of requests at the ideal rate (40 rounds of 0.5 s), so that the stage's
    fixed start-up (loading inputs, the client: ~0.2 s) is not what is measured."""
    return max(32, 40 * concurrency)


def build(reports: Path, out: Path, base_url: str, concurrency: int) -> None:
    """Run the CLI build; a failure stops the bench with the CLI's own message."""
    command = [
        str(CLI),
        "build",
        "--reports",
        str(reports),
        "--report-format",
        "jsonl",
        "--out",
        str(out),
        "--stages",
        "reports,extract",
        "--extractor",
        "llm",
        "--llm-base-url",
        base_url,
        "--llm-model",
        MODEL,
        "--llm-concurrency",
        str(concurrency),
    ]
    result = subprocess.run(command, env={**os.environ, "CXRVQA_LLM_API_KEY": API_KEY}, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        sys.exit(f"FAIL: the build exited {result.returncode}: {' '.join(command)}\n{output[-3000:]}")


def extract_stage(out: Path) -> StageRow:
    """The newest extract stage of the folder's store."""
    with duckdb.connect(str(out / "cxrvqa.duckdb"), read_only=True) as db:
        row = db.execute(
            "SELECT n_input, n_done, seconds, epoch(started_at), epoch(finished_at) FROM run_stages "
            "WHERE stage = 'extract' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        sys.exit(f"FAIL: no extract stage in {out / 'cxrvqa.duckdb'}")
    return StageRow(*row)


def drop_graphs(out: Path) -> None:
    """Delete the scene graphs but keep `llm_cache`, so that the next build rebuilds every graph
    from the cached answers (a plain rerun finds the graphs done and never reads the cache)."""
    with duckdb.connect(str(out / "cxrvqa.duckdb")) as db:
        for table in ("obs_regions", "obs_sentences", "observations", "scene_graphs"):
            db.execute(f"DELETE FROM {table}")


def report_sentences(text: str) -> list[Sentence]:
    """The report's sentences as the report stage splits them (what the backend's prompt lists)."""
    return [
        Sentence(id=number, section=span.section, text=span.text, start=span.start, end=span.end)
        for number, span in enumerate(split_sentences(text))
    ]


def sequential_baseline(reports: Path, base_url: str, count: int) -> float:
    """Reports/s of the obvious client: the plain sync `openai.OpenAI`, one request at a time, each
    sent with the backend's prompt and response format and its answer parsed and grounded."""
    prompt = llm.load_prompt("report_observations")
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "scene_graph_observations", "strict": True, "schema": llm.response_schema()},
    }
    records = [json.loads(line) for line in reports.read_text().splitlines()[:count]]
    start = time.perf_counter()
    with OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0) as client:
        for record in records:
            sentences = report_sentences(record["text"])
            response = client.chat.completions.create(
                model=MODEL,
                messages=prompt.messages(sentences, False),
                temperature=0.0,
                response_format=response_format,
            )
            answer = llm.parse_answer(response.choices[0].message.content or "")
            llm.answer_to_graph(record["study_id"], sentences, None, answer)
    return len(records) / (time.perf_counter() - start)


def naive_cache_baseline(out: Path, count: int) -> float:
    """Graphs/s of the obvious rebuild from `llm_cache`, one study at a time: its inputs and its cached
    answer by one query each, the answer checked in full (JSON Schema, then pydantic), grounded and
    turned into table rows. Nothing is written, so the ratio to the stage (which writes) is conservative."""
    config = Config(
        out_dir=out, extraction={"backend": "llm", "llm": {"base_url": "http://127.0.0.1:9/v1", "model": MODEL}}
    )
    context = extraction.prepare(config)
    now = datetime.now(timezone.utc)
    with Store(config.db_path, read_only=True) as store:
        study_ids = [row[0] for row in store.query("SELECT study_id FROM current_reports ORDER BY 1 LIMIT ?", [count])]
        start = time.perf_counter()
        for study_id in study_ids:
            [study] = extraction.load_inputs(store, [study_id])
            [(response,)] = store.query(
                "SELECT response FROM llm_cache WHERE study_id = ? AND status = 'ok' ORDER BY created_at DESC LIMIT 1",
                [study_id],
            )
            sentences = [
                Sentence(id=i, section=section, text=text, start=s, end=e)
                for i, section, text, s, e, deid_only in study.sentences
                if not deid_only
            ]
            graph, codes = llm.answer_to_graph(
                study_id, sentences, study.indication or None, llm.parse_answer(response)
            )
            extraction.graph_rows(study, graph, codes, context, "baseline", now)
        return len(study_ids) / (time.perf_counter() - start)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency",
        default="1,8,16,32",
        type=lambda text: [int(n) for n in text.split(",")],
        help="Comma-separated levels.",
    )
    parser.add_argument("--latency", type=float, default=0.5, help="Server seconds per request.")
    parser.add_argument("--cache-reports", type=int, default=6000, help="Reports of the cache rerun.")
    parser.add_argument(
        "--baseline-requests", type=int, default=8, help="Requests of the sequential baseline (each takes --latency)."
    )
    parser.add_argument("--baseline-graphs", type=int, default=300, help="Studies of the naive cache baseline.")
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
            folder = work / "baseline"
            folder.mkdir()
            write_reports(folder / "reports.jsonl", args.baseline_requests, seed=2)
            sequential = sequential_baseline(folder / "reports.jsonl", server.base_url, args.baseline_requests)
            print(
                f"baseline: plain sync openai client, one request at a time ({args.baseline_requests} reports): "
                f"{sequential:.2f} reports/s"
            )
            print(
                f"{'concurrency':>11} {'reports':>7} {'requests':>8} {'seconds':>8} {'start-up':>8} {'tail':>6} "
                f"{'reports/s':>9} {'ideal':>7} {'ratio':>6} {'x seq':>6}"
            )
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
                    stage.n_done == count and requests == count
                )
                print(
                    f"{concurrency:>11} {stage.n_done:>7} {requests:>8} {stage.seconds:>8.2f} {startup:>8.2f} "
                    f"{tail:>6.2f} {rate:>9.1f} {ideal:>7.1f} {rate / ideal:>6.2f} {rate / sequential:>6.1f} "
                    f"{verdict}"
                )

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
            print(
                f"\ncache: {args.cache_reports} reports, first build {first.n_done} done in {first.seconds:.2f} s; "
                f"rerun: {requests} requests sent, {rerun.n_input} reports in {rerun.seconds:.3f} s "
                f"= {rate:,.0f} reports/s (target >= {CACHE_TARGET:,.0f})"
            )
            results["cache rerun sends zero requests"] = requests == 0
            results[f"cache rerun handles all {args.cache_reports} reports"] = rerun.n_input == args.cache_reports
            results[f"cache rerun >= {CACHE_TARGET:,.0f} reports/s"] = rate >= CACHE_TARGET

            drop_graphs(folder / "out")
            before = server.request_count
            build(folder / "reports.jsonl", folder / "out", server.base_url, CACHE_CONCURRENCY)
            rebuilt, requests = extract_stage(folder / "out"), server.request_count - before
            rate = rebuilt.n_done / rebuilt.seconds
            naive = naive_cache_baseline(folder / "out", args.baseline_graphs)
            print(
                f"graphs dropped, answers from llm_cache: {requests} requests sent, {rebuilt.n_done} graphs in "
                f"{rebuilt.seconds:.3f} s = {rate:,.0f} reports/s (target >= {CACHE_TARGET:,.0f}); "
                f"{rate / naive:.1f}x the naive per-study rebuild's {naive:,.0f} graphs/s "
                f"({args.baseline_graphs} studies, no writes)"
            )
            results["graphs from llm_cache: zero requests, every graph rebuilt"] = (
                requests == 0 and rebuilt.n_done == args.cache_reports
            )
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
