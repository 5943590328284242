"""The LLM judge's recall on reviewed items: does the judge demote what careful readers judged faulty?

bench/validator_recall.py measures the offline checks; this bench measures the optional LLM judge (and the
judge together with them) on the same reviewed items, through the real judge path
(`cxrvqa.validation.judge.judge_batch`: prompt, JSON-schema verdict, caps) against any OpenAI-compatible
server. It reads a `validator_recall.py --dump` file (each reviewed item's round build, reviewer verdict and
grades: base, and with every content check), takes every faulty item and `--correct` correct ones per round
(seeded), judges them on a scratch copy of each build (the build itself is never written) and prints the
share demoted (the item's grade with the judge's cap falls below its base grade) of faulty and of correct
items, for the judge alone and for the judge with the offline checks, with Wilson 95% intervals.

No model is reachable from this machine, so a recorded model stands in (`../shared/tools/replay_openai.py`:
a server that records each prompt and answers those it has answers for):

    python replay_openai.py 8791 prompts.jsonl answers.jsonl &            # 1. record (every request: 503)
    .venv/bin/python bench/judge_recall.py --dump D.jsonl --base-url http://127.0.0.1:8791/v1 --correct 25
    #  2. someone answers each recorded prompt as the model would ({"key", "content"} lines in answers.jsonl)
    python replay_openai.py 8791 prompts.jsonl answers.jsonl &            # 3. replay: the same command again

Items without an answer (the server failed) are counted apart and left out of the shares.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from item_accuracy import wilson  # noqa: E402

FAULTY = ("wrong", "unsupported", "bad_question")


def _chosen(rows: list[dict], correct_per_round: int, seed: int) -> list[dict]:
    """Every faulty item and a seeded sample of the correct ones, per round."""
    by_round: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_round[row["round"]].append(row)
    rng = random.Random(seed)
    out = []
    for build in sorted(by_round):
        group = by_round[build]
        correct = sorted((r for r in group if r["verdict"] == "correct"), key=lambda r: r["item_id"])
        out += [r for r in group if r["verdict"] in FAULTY]
        out += rng.sample(correct, min(correct_per_round, len(correct)))
    return out


def _judge_round(
    build: Path, item_ids: list[str], scratch: Path, base_url: str, model: str, attempts: int
) -> dict[str, dict]:
    """item id -> {grade, weakest, rationale} (or {failed: reason}) from the judge on a copy of the build."""
    from cxrvqa.config import load_config
    from cxrvqa.store import Store
    from cxrvqa.validation.judge import judge_batch, prepare_judge

    copy = scratch / build.name
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "cxrvqa.duckdb", copy / "cxrvqa.duckdb")
    config = load_config(
        None,
        {
            "out_dir": copy,
            "judge": {"enabled": True, "min_grade": "D"},
            "extraction": {
                "llm": {"base_url": base_url, "model": model, "max_attempts": attempts, "max_concurrency": 8}
            },
        },
    )
    context = prepare_judge(config)
    with Store(copy / "cxrvqa.duckdb") as store:
        keys = [
            tuple(k)
            for k in store.query(
                "SELECT item_id, template_version, input_hash FROM current_qa_grades "
                "WHERE item_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY item_id",
                [item_ids],
            )
        ]
        judge_batch(store, "bench-judge-recall", keys, context)
        out = {}
        for item_id, status, grade, weakest, rationale, reason in store.query(
            "SELECT item_id, status, grade, weakest, rationale, reason FROM judge_results "
            "WHERE item_id IN (SELECT unnest(?::VARCHAR[]))",
            [item_ids],
        ):
            out[item_id] = (
                {"grade": grade, "weakest": weakest, "rationale": rationale} if status == "ok" else {"failed": reason}
            )
    return out


def _rate(k: int, n: int) -> str:
    if not n:
        return "-"
    low, high = wilson(k, n)
    return f"{k}/{n} {k / n:.0%} [{low:.0%}, {high:.0%}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", type=Path, required=True, help="a bench/validator_recall.py --dump file")
    parser.add_argument("--base-url", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8791/v1")
    parser.add_argument("--model", default="replay")
    parser.add_argument("--correct", type=int, default=25, help="correct items judged per round (seeded sample)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--attempts", type=int, default=1, help="requests per item (1 while recording prompts)")
    parser.add_argument(
        "--cut",
        default="A",
        help="also count only demotions below this grade (default A: out of the fine-tuning selection)",
    )
    parser.add_argument("--dest", type=Path, help="write one JSON line per judged item (verdict, judge's grade)")
    args = parser.parse_args()
    os.environ.setdefault("CXRVQA_LLM_API_KEY", "not-needed")
    rows = _chosen(
        [json.loads(line) for line in args.dump.read_text(encoding="utf-8").splitlines() if line.strip()],
        args.correct,
        args.seed,
    )
    judged: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="judge_recall_") as scratch:
        for build in sorted({r["round"] for r in rows}):
            ids = [r["item_id"] for r in rows if r["round"] == build]
            judged.update(
                {
                    (build, k): v
                    for k, v in _judge_round(
                        Path(build), ids, Path(scratch), args.base_url, args.model, args.attempts
                    ).items()
                }
            )
    answered = [r for r in rows if "grade" in judged.get((r["round"], r["item_id"]), {})]
    print(
        f"{len(rows)} items chosen ({sum(r['verdict'] in FAULTY for r in rows)} faulty), "
        f"{len(answered)} judged, {len(rows) - len(answered)} without a verdict (the server failed)"
    )
    if not answered:
        return 1
    from cxrvqa.core.grading import grading

    # any demotion (below the item's base grade), and out of the fine-tuning selection (CXR-QBA: >= A), which a
    # judge's "mostly_complete" (a minor detail left out: A) does not take an item out of
    cuts = (("any demotion", None), (f"below {args.cut}", grading().code(args.cut)))
    faulty = [r for r in answered if r["verdict"] in FAULTY]
    correct = [r for r in answered if r["verdict"] == "correct"]
    for label, with_checks in (("the judge alone", False), ("the judge with the offline checks", True)):
        for cut_label, cut in cuts:

            def demoted(r: dict, with_checks: bool = with_checks, cut: int | None = cut) -> bool:
                base = r["grades"]["(base)"][0]
                checks = r["grades"]["ALL content validators"][0] if with_checks else base
                grade = min(checks, judged[(r["round"], r["item_id"])]["grade"])
                return grade < base and (cut is None or grade < cut)

            print(
                f"{label:<34} {cut_label:<13} demotes faulty {_rate(sum(map(demoted, faulty)), len(faulty))}, "
                f"correct {_rate(sum(map(demoted, correct)), len(correct))}"
            )
    weakest: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in answered:
        weakest[judged[(r["round"], r["item_id"])]["weakest"] or "(nothing)"][r["verdict"] == "correct"] += 1
    print(
        "the judge's weakest value: faulty / correct items: "
        + ", ".join(f"{k} {f}/{c}" for k, (f, c) in sorted(weakest.items(), key=lambda kv: -sum(kv[1])))
    )

    def by_checks(group: list[dict]) -> str:
        demoted = sum(r["grades"]["ALL content validators"][0] < r["grades"]["(base)"][0] for r in group)
        return _rate(demoted, len(group))

    print(f"{'the offline checks alone':<48} demote faulty {by_checks(faulty)}, correct {by_checks(correct)}")
    if args.dest:
        with args.dest.open("w", encoding="utf-8") as out:
            for r in answered:
                out.write(
                    json.dumps(
                        {
                            k: r[k]
                            for k in (
                                "round",
                                "item_id",
                                "template_id",
                                "question",
                                "answer",
                                "verdict",
                                "error_class",
                                "review_reason",
                            )
                        }
                        | {
                            "judge": judged[(r["round"], r["item_id"])],
                            "base_grade": r["grades"]["(base)"][0],
                            "checks_grade": r["grades"]["ALL content validators"][0],
                        }
                    )
                    + "\n"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
