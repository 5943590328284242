"""Validator recall on reviewed items: do the validators demote what careful readers judged faulty?

The mutation harness (bench/validator_mutations.py) measures edits made to items after generation;
this bench measures the generator's own errors. Reviewed items (bench/item_accuracy.py rounds: a
verdict per item, correct | wrong | unsupported | bad_question, and a grammar tick) are looked up in
the build they were sampled from, and every validator runs over them at its default strictness.

For each check, and for the independent checks together (cxrvqa.validation.independent, .scope, .wording) and all
validators together, it prints:
  - recall on faulty items (wrong, unsupported, bad_question): the share *flagged* (the check failed, at
    any strictness) and the share *demoted* (the item's grade falls below its grade with every content
    check passing: the grade from the structural checks, the scene-graph quality and the evidence only);
  - false-demotion rate on correct items (and the share flagged);
each with a Wilson 95% interval. Targets (issue 16): demote >= 80% of faulty, <= 5% of correct.
A report-only build (no images) grades every item C at best: there a `warn` (B) demotes nothing and
only a `reject` (D) does, so both shares are shown.

    .venv/bin/python bench/validator_recall.py \
        --round /tmp/work/before 'bench/item_accuracy/rounds/*.jsonl' \
        --round /tmp/work/after3 '/tmp/work/round_dev1/verdicts_*.jsonl' [--speed 3000]

A build whose database has an older schema is copied to a temporary folder and migrated there (the
original is never written). --speed N also times every validator over N current items of the last
build, with and without the independent checks (one process).
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from item_accuracy import wilson  # noqa: E402

FAULTY = ("wrong", "unsupported", "bad_question")
#: The modules of the independent checks (they share no rule with the extractor or the programs).
INDEPENDENT = ("cxrvqa.validation.independent", "cxrvqa.validation.scope", "cxrvqa.validation.wording")
#: The reviewed rounds of issue 16 and the builds they were sampled from. The checks were written while
#: reading the first two (development); the last two were reviewed afterwards and not read (held out).
DEFAULT_ROUNDS = [
    ["/tmp/work/before", "bench/item_accuracy/rounds/*-before-*.jsonl"],
    ["/tmp/work/after3", "bench/item_accuracy/rounds/*-dev1-*.jsonl"],
    ["/tmp/work/after4", "bench/item_accuracy/rounds/*-dev2-*.jsonl"],
    ["/tmp/work/after6", "/tmp/work/round_final/verdicts.jsonl"],
]
HELD_OUT = 2  # the last two default rounds


def _open_store(build: Path, scratch: Path) -> Any:
    from cxrvqa.errors import StoreError
    from cxrvqa.store import Store

    try:
        return Store(build / "cxrvqa.duckdb", read_only=True), build
    except StoreError as exc:
        if "schema version" not in str(exc):
            raise
    copy = scratch / build.name
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "cxrvqa.duckdb", copy / "cxrvqa.duckdb")
    with Store(copy / "cxrvqa.duckdb"):
        pass  # migrates the copy
    print(f"  ({build} has an older schema: migrated a copy in {copy})")
    return Store(copy / "cxrvqa.duckdb", read_only=True), copy


def _as_reviewed(item: dict, verdict: dict) -> bool:
    """Whether the reviewer read this question and answer (the answer line, with or without its detail lines)."""
    answer = verdict.get("answer") or ""
    return item["question"] == verdict.get("question") and answer.split("\n", 1)[0].rstrip() == item["answer"]


def _verdicts(pattern: str) -> dict[str, dict]:
    rows = {}
    for path in sorted(glob.glob(pattern)):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["item_id"]] = row
    return rows


def _load(build: Path, pattern: str, scratch: Path) -> tuple[list[dict], dict, dict, dict, Any, Path]:
    from cxrvqa.config import load_config
    from cxrvqa.validation import stage

    verdicts = _verdicts(pattern)
    store, used = _open_store(build, scratch)
    with store:
        # given the store, a build without images is graded as text-VQA (as the build grades it); the items' scene
        # graphs are those of the build's backend (an LLM build's, not the rules')
        backends = [b for (b,) in store.query("SELECT DISTINCT backend FROM current_qa_items")]
        overrides = {"out_dir": used, **({"extraction": {"backend": backends[0]}} if len(backends) == 1 else {})}
        context = stage.prepare(load_config(None, overrides), store)
        items = store.query_dicts(
            f"SELECT {', '.join(stage.ITEM_FIELDS)} FROM current_qa_items "
            "WHERE item_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY item_id",
            [list(verdicts)],
        )
        contexts, quality = stage.study_contexts(store, sorted({i["study_id"] for i in items}), context)
    # an item id names the same question in every build, but its answer may differ: keep only the items
    # whose question and answer are the ones the reviewer read (some reviewers copy the packet's indented detail
    # lines of a many-part answer after its answer line)
    same = [i for i in items if _as_reviewed(i, verdicts[i["item_id"]])]
    missing = len(verdicts) - len(same)
    if missing:
        print(f"  {missing} reviewed item(s) are not current items of {build} as reviewed: left out")
    items = same
    return items, contexts, quality, verdicts, context, used


def _grades(item: dict, results: list, quality: list[str], closed_world: bool) -> dict[str, tuple[int, bool]]:
    """Per check name (and the groups): (grade with the structural failures and that check's, flagged)."""
    from cxrvqa.core.grading import grade_item
    from cxrvqa.validation import independent  # noqa: F401  (registers the checks)

    structural = [(level, v.reason) for val, v, level in results if not v.ok and val.kind == "structural"]
    out = {"(base)": (grade_item(item, structural, quality, closed_world)[0], False)}
    content = [(val, v, level) for val, v, level in results if val.kind != "structural"]
    groups: dict[str, list] = defaultdict(list)
    for val, verdict, level in content:
        failed = [] if verdict.ok else [(level, verdict.reason)]
        out[val.name] = (grade_item(item, structural + failed, quality, closed_world)[0], not verdict.ok)
        groups["ALL content validators"] += failed
        if val.check.__module__ in INDEPENDENT:
            groups["INDEPENDENT checks"] += failed
        else:
            groups["previous content validators"] += failed
    for name, failed in groups.items():
        out[name] = (grade_item(item, structural + failed, quality, closed_world)[0], bool(failed))
    return out


def _rate(k: int, n: int) -> str:
    if not n:
        return f"{'-':>21}"
    low, high = wilson(k, n)
    return f"{k:>3}/{n:<3} {k / n:>5.0%} [{low:>3.0%},{high:>4.0%}]"


def _report(rows: list[dict], title: str) -> None:
    faulty = [r for r in rows if r["verdict"] in FAULTY]
    correct = [r for r in rows if r["verdict"] == "correct"]
    grammar = [r for r in correct if r["grammar"]]
    print(
        f"\n== {title}: {len(rows)} reviewed items: {len(faulty)} faulty, {len(correct)} correct "
        f"({len(grammar)} of them with a grammar error)"
    )
    names = [n for n in rows[0]["grades"] if n != "(base)"] if rows else []
    order = [n for n in names if n.isupper() or n.startswith(("ALL", "INDEPENDENT", "previous"))]
    order = sorted(set(names) - set(order)) + sorted(order, key=lambda n: ("INDEP" not in n, n))
    print(
        f"{'check':<30} {'faulty demoted':>21} {'faulty flagged':>21} {'correct demoted':>21} "
        f"{'correct flagged':>21} {'grammar-only flagged':>21}"
    )
    for name in order:

        def counts(group: list[dict], kind: str) -> str:
            if kind == "demoted":
                k = sum(r["grades"][name][0] < r["grades"]["(base)"][0] for r in group)
            else:
                k = sum(r["grades"][name][1] for r in group)
            return _rate(k, len(group))

        print(
            f"{name:<30} {counts(faulty, 'demoted'):>21} {counts(faulty, 'flagged'):>21} "
            f"{counts(correct, 'demoted'):>21} {counts(correct, 'flagged'):>21} {counts(grammar, 'flagged'):>21}"
        )
    print("\nIndependent checks per reviewer error class (faulty items, and correct ones with a grammar error)")
    by_class: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["verdict"] != "correct" or r["grammar"]:
            by_class[f"{r['verdict']}/{r.get('error_class') or 'other'}"].append(r)
    key = "INDEPENDENT checks"
    for name, group in sorted(by_class.items(), key=lambda kv: -len(kv[1])):
        demoted = sum(r["grades"][key][0] < r["grades"]["(base)"][0] for r in group)
        flagged = sum(r["grades"][key][1] for r in group)
        print(f"  {name:<38} demoted {_rate(demoted, len(group))}   flagged {_rate(flagged, len(group))}")
    reasons = Counter(reason for r in correct for reason in r["reasons"])
    if reasons:
        print(
            "\nReasons the independent checks gave on correct items: "
            + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        )
    reasons = Counter(reason for r in faulty for reason in r["reasons"])
    if reasons:
        print(
            "Reasons the independent checks gave on faulty items: "
            + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        )


def _speed(used: Path, n: int, repeat: int = 3) -> None:
    """The validation stage's compute step (stage.validate_studies: contexts, every validator, result and
    grade rows) over the current items of whole studies (about n items, validated or not), without and with the
    independent checks, `repeat` times each, alternating, with empty sentence caches (cold: every sentence is read
    again), and with the independent checks once more with the sentences read (what the checks cost besides
    reading); the best CPU time of this process (time.process_time: the machine is shared) of each counts. The
    pipeline, the target and ConText matchers and the target cue are built once per process beforehand (~1 s, once
    per worker)."""
    import dataclasses
    from datetime import datetime, timezone

    from cxrvqa.config import load_config
    from cxrvqa.store import Store
    from cxrvqa.validation import independent, scope, stage, validators
    from cxrvqa.validation.validators import VALIDATORS

    context = stage.prepare(load_config(None, {"out_dir": used}))
    with Store(used / "cxrvqa.duckdb", read_only=True) as store:
        counts = store.query("SELECT study_id, count(*) FROM current_qa_items GROUP BY 1 ORDER BY hash(study_id)")
        studies, total = [], 0
        for study, count in counts:
            if total >= n:
                break
            studies.append(study)
            total += count
        # every current item of these studies: a validators version no item was validated by makes them pending
        work, _ = stage.load_batch(store, studies, dataclasses.replace(context, validators_version="bench:all"))
        payloads = stage.with_items(work.payloads, work.items)
    ours = {name for name, v in VALIDATORS.items() if v.check.__module__ in INDEPENDENT}
    without = dataclasses.replace(context, strictness={**context.strictness, **{name: "ignore" for name in ours}})
    independent._pipeline()
    independent._target_cue()
    independent._targets()
    independent._modifiers()
    items = sum(len(p.items) for p in payloads)
    best: dict[str, float] = {}
    runs = [
        ("without the independent checks", without, True),
        ("with the independent checks", context, True),
        ("with them, sentences read", context, False),
    ] * repeat
    for label, ctx, cold in runs:
        if cold:
            independent.clear_caches()
            scope._elsewhere.cache_clear()
        validators._presence_in.cache_clear()
        work = [dataclasses.replace(p, items=[dict(i) for i in p.items]) for p in payloads]  # it pops fields
        start = time.process_time()
        stage.validate_studies(work, ctx, "bench", datetime.now(timezone.utc))
        best[label] = min(best.get(label, float("inf")), time.process_time() - start)
    for label, seconds in best.items():
        print(
            f"  {label:<32} {items:,} items of {len(payloads):,} studies in {seconds:.2f} s = "
            f"{items / seconds:,.0f} items/s"
        )
    base, ours_s, warm = best[runs[0][0]], best[runs[1][0]], best[runs[2][0]]
    print(
        f"  the independent checks cost {ours_s / base - 1:+.0%} of the validation compute step (target: "
        f"validation within 20% of today's): reading the sentences {(ours_s - warm) / base:+.0%}, "
        f"the checks {warm / base - 1:+.0%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--round",
        nargs=2,
        action="append",
        metavar=("BUILD", "VERDICTS_GLOB"),
        help="a build's output folder and a glob of the verdict files reviewed from it",
    )
    parser.add_argument("--speed", type=int, default=0, help="time the validators over N current items")
    parser.add_argument(
        "--repeat", type=int, default=3, help="--speed: runs of each kind, the best counts (more on a busy machine)"
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="write one JSON line per reviewed item (verdict, the checks that "
        "failed with their reasons and details, grades) for reading what the checks miss",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="VALIDATOR",
        help="run without this validator (e.g. answer_program when the code changed since the build)",
    )
    args = parser.parse_args()
    rounds = args.round or DEFAULT_ROUNDS
    from cxrvqa.validation import independent  # noqa: F401
    from cxrvqa.validation.validators import run_validators

    all_rows: list[dict] = []
    per_round: list[list[dict]] = []
    used = None
    with tempfile.TemporaryDirectory(prefix="validator_recall_") as scratch:
        for build, pattern in rounds:
            print(f"round: {build} ({pattern})")
            items, contexts, quality, verdicts, context, used = _load(Path(build), pattern, Path(scratch))
            templates = {t.id: t for t, _ in context.settings.templates}
            rows = []
            for item in items:
                ctx = contexts[item["study_id"]]
                results = run_validators(item, ctx, {**context.strictness, **{n: "ignore" for n in args.ignore}})
                template = templates.get(item["template_id"])
                grades = _grades(
                    item, results, quality.get(item["study_id"], []), bool(template and template.closed_world)
                )
                verdict = verdicts[item["item_id"]]
                rows.append(
                    {
                        "round": build,
                        "item_id": item["item_id"],
                        "template_id": item["template_id"],
                        "question": item["question"],
                        "answer": item["answer"],
                        "review_reason": verdict.get("reason"),
                        "failed": [[val.name, level, v.reason, v.detail] for val, v, level in results if not v.ok],
                        "verdict": verdict["verdict"],
                        "grammar": bool(verdict.get("grammar")),
                        "error_class": verdict.get("error_class"),
                        "grades": grades,
                        "reasons": [
                            v.reason for val, v, _ in results if not v.ok and val.check.__module__ in INDEPENDENT
                        ],
                    }
                )
            _report(rows, f"{build}")
            all_rows += rows
            per_round.append(rows)
        if args.round is None:
            _report([r for rows in per_round[:-HELD_OUT] for r in rows], "development rounds (before, dev1)")
            _report([r for rows in per_round[-HELD_OUT:] for r in rows], "held-out rounds (dev2, final)")
        if len(rounds) > 1:
            _report(all_rows, "all rounds together")
        if args.dump:
            with args.dump.open("w", encoding="utf-8") as out:
                for row in all_rows:
                    out.write(json.dumps(row) + "\n")
            print(f"\n{len(all_rows)} reviewed items written to {args.dump}")
        if args.speed and used is not None:
            print(f"\nspeed on {used}:")
            _speed(used, args.speed, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
