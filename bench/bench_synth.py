"""Speed, memory and disk of `cxrvqa synth`: reports + gold graphs at 10k and 100k studies, DICOM writing.

Run: .venv/bin/python bench/bench_synth.py [--sizes 10000 100000] [--workers 1 2] [--image-studies 100]

Each corpus is written by a fresh process (`write_corpus`, as the CLI runs it), which reports its own
peak RSS (the pool's workers are separate processes of one chunk each, a few MB), then deleted.
Printed per run: studies/s (wall clock) and the ratio to the 20,000 studies/s goal, studies per CPU
second of the writing process (one worker: a measure that other load on the machine barely moves),
bytes per study on disk, peak memory (flat means the 100k peak is about the 10k peak), and the load
average, since wall-clock rates on a shared machine move with it. Images: a `--image-studies` set at the
realistic size with the spec's JPEG 2000 share, and the rates of native and JPEG 2000 files alone.

Baseline, measured in the same run on the same gold lines: writing each gold graph through the
pydantic model (`SceneGraph.model_validate_json(...).model_dump_json()`), the obvious way to write
scene graphs, which the generator avoids by building the JSON from plain dicts with orjson.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 20_000.0
_CHILD = """
import json, resource, sys
from pathlib import Path
from cxrvqa.synth.corpus import write_corpus
args = json.loads(sys.argv[1])
summary = write_corpus(Path(args["out"]), args["studies"], seed=args["seed"], images=args["images"],
                       workers=args["workers"], j2k_share=args["j2k_share"])
print(json.dumps({"report_seconds": summary.report_seconds, "report_cpu_seconds": summary.report_cpu_seconds,
                  "image_seconds": summary.image_seconds,
                  "report_bytes": summary.report_bytes, "gold_bytes": summary.gold_bytes, "images": summary.images,
                  "image_bytes": summary.image_bytes, "syntaxes": summary.transfer_syntaxes,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(studies: int, workers: int, images: int = 0, j2k_share: float | None = None, seed: int = 0) -> dict:
    out = Path(tempfile.mkdtemp(prefix="cxrvqa-bench-synth-")) / "corpus"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                json.dumps(
                    {
                        "out": str(out),
                        "studies": studies,
                        "seed": seed,
                        "images": images,
                        "workers": workers,
                        "j2k_share": j2k_share,
                    }
                ),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if studies <= 20_000:
            result["gold_sample"] = (out / "gold_graphs.jsonl").read_bytes().splitlines()[:2000]
        return result
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def pydantic_baseline(lines: list[bytes]) -> float:
    """Studies/s of writing gold graphs through the pydantic model."""
    from cxrvqa.core.scene_graph import SceneGraph

    SceneGraph.model_validate_json(lines[0]).model_dump_json()
    started = time.perf_counter()
    for line in lines:
        SceneGraph.model_validate_json(line).model_dump_json()
    return len(lines) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--image-studies", type=int, default=100)
    args = parser.parse_args()
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    print(f"reports + gold graphs (goal {GOAL:,.0f} studies/s)")
    print(
        f"  {'studies':>8} {'workers':>7} {'seconds':>8} {'studies/s':>10} {'x goal':>7} {'per CPU s':>10} "
        f"{'KiB/study':>10} {'report':>7} {'gold':>6} {'peak MB':>8}"
    )
    sample: list[bytes] = []
    peaks: dict[int, dict[int, float]] = {}
    for workers in args.workers:
        for studies in args.sizes:
            r = run(studies, workers)
            sample = sample or r.get("gold_sample", [])
            rate = studies / r["report_seconds"]
            peaks.setdefault(workers, {})[studies] = r["peak_mb"]
            per_cpu = f"{studies / r['report_cpu_seconds']:10,.0f}" if workers == 1 else f"{'':>10}"
            print(
                f"  {studies:8,} {workers:7} {r['report_seconds']:8.2f} {rate:10,.0f} {rate / GOAL:7.2f} {per_cpu} "
                f"{(r['report_bytes'] + r['gold_bytes']) / studies / 1024:10.2f} "
                f"{r['report_bytes'] / studies:6.0f}B {r['gold_bytes'] / studies:5.0f}B {r['peak_mb']:8.0f}"
            )
    for workers, by_size in peaks.items():
        if len(by_size) > 1:
            small, large = min(by_size), max(by_size)
            print(
                f"  memory, {workers} worker(s): peak at {large:,} studies = {by_size[large] / by_size[small]:.2f}x "
                f"the peak at {small:,}"
            )
    if sample:
        print(
            f"  baseline: gold graphs through the pydantic model alone: {pydantic_baseline(sample):,.0f} "
            f"studies/s (validate + dump, no generation)"
        )

    if args.image_studies:
        print(f"\nDICOMs at the realistic size ({args.image_studies} studies)")
        print(
            f"  {'JPEG 2000':>10} {'workers':>7} {'images':>7} {'seconds':>8} {'images/s':>9} {'MiB/image':>10}  "
            f"transfer syntaxes"
        )
        for share, label in ((None, "spec"), (0.0, "none"), (1.0, "all")):
            for workers in args.workers:
                studies = args.image_studies if share is None else max(4, args.image_studies // 10)
                r = run(studies, workers, images=studies, j2k_share=share)
                print(
                    f"  {label:>10} {workers:7} {r['images']:7} {r['image_seconds']:8.1f} "
                    f"{r['images'] / r['image_seconds']:9.2f} {r['image_bytes'] / r['images'] / 2**20:10.1f}  "
                    f"{r['syntaxes']}"
                )

    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
