"""Mutation harness: do the validators catch what they claim? And how fast are they?

Takes the current (clean) QA items of a built database, makes one faulty copy per item and
mutation type where the type applies, and runs every validator at its default strictness.
A mutant counts as detected when at least one validator rejects it (a `warn` does not count).
Prints the detection rate per mutation type and overall, and the false-rejection rate on the
unmutated items. Targets: every type >= 90%, overall >= 95%, false rejection <= 1%. A second
rate leaves out the answer-program check (it rejects any change to an item the generator made):
what the other validators catch on their own, as they must for items from elsewhere.

Speed: all validators over the clean items, items/s, against a baseline measured in the same
run: a naive per-item `jsonschema.validate()` call (it re-builds the validator for every item
and checks the schema only).

    .venv/bin/python bench/validator_mutations.py --out demo-out [--per-type 2000] [--check]
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Mutation = Callable[[dict[str, Any], Any, random.Random], bool]


def _flip_yes_no(item: dict, ctx: Any, rng: random.Random) -> bool:
    if item["answer"] not in ("yes", "no"):
        return False
    item["answer"] = "no" if item["answer"] == "yes" else "yes"
    return True


def _wrong_laterality(item: dict, ctx: Any, rng: random.Random) -> bool:
    swapped = {"left": "right", "right": "left"}
    words = item["answer"].split()
    if not any(w in swapped for w in words):
        return False
    item["answer"] = " ".join(swapped.get(w, w) for w in words)
    return True


def _wrong_finding(item: dict, ctx: Any, rng: random.Random) -> bool:
    from cxrvqa.qa.programs import finding_name

    if not item["findings"]:
        return False
    name = finding_name(item["findings"][0])
    other = "pneumothorax" if name != "pneumothorax" else "pleural effusion"
    if name not in item["question"]:
        return False
    item["question"] = item["question"].replace(name, other)
    return True


def _contradicting_answer(item: dict, ctx: Any, rng: random.Random) -> bool:
    if item["answer_format"] not in ("full_sentence", "multi_part", "short"):
        return False
    item["answer"] = (
        "There is no abnormality."
        if "no abnormality" not in item["answer"].lower()
        else "There is a large right pneumothorax."
    )
    return True


def _box_outside(item: dict, ctx: Any, rng: random.Random) -> bool:
    if not item["boxes"]:
        return False
    item["boxes"][0]["x_max"] = item["boxes"][0]["x_max"] + 10_000
    return True


def _duplicate_options(item: dict, ctx: Any, rng: random.Random) -> bool:
    if not item["options"]:
        return False
    wrong = [o for o in item["options"] if o != item["answer"]]
    item["options"][item["options"].index(wrong[0])] = wrong[1]
    return True


def _two_correct(item: dict, ctx: Any, rng: random.Random) -> bool:
    if not item["options"]:
        return False
    wrong = [i for i, o in enumerate(item["options"]) if o != item["answer"]]
    item["options"][wrong[0]] = item["answer"]
    return True


def _letter_outside(item: dict, ctx: Any, rng: random.Random) -> bool:
    if not item["options"]:
        return False
    item["correct_option"] = "E"
    return True


def _missing_field(item: dict, ctx: Any, rng: random.Random) -> bool:
    del item[rng.choice(["question", "answer", "split", "findings", "image_id", "answer_format"])]
    return True


def _wrong_type(item: dict, ctx: Any, rng: random.Random) -> bool:
    key = rng.choice(["evidence_ids", "findings", "question", "boxes"])
    item[key] = 42 if key != "evidence_ids" else "0"
    return True


def _unrendered(item: dict, ctx: Any, rng: random.Random) -> bool:
    item["question"] = item["question"].rstrip("?") + " in the {region}?"
    return True


def _deid(item: dict, ctx: Any, rng: random.Random) -> bool:
    item["answer"] = item["answer"] + " XXXX"
    return True


def _leaked(item: dict, ctx: Any, rng: random.Random) -> bool:
    if item["answer_format"] != "short" or len(item["answer"]) < 4:
        return False
    item["question"] = item["question"].rstrip("?") + f" ({item['answer']})?"
    return True


def _lateral_left_right(item: dict, ctx: Any, rng: random.Random) -> bool:
    from cxrvqa.validation.validators import ImageFacts

    text = f"{item['question']} {item['answer']}".lower()
    if not ({"left", "right"} & set(text.replace("?", " ").replace(".", " ").split())) or not item["image_id"]:
        return False
    image = ctx.images[item["image_id"]]
    item["image_id"] = item["image_id"] + "-lateral"
    ctx.images[item["image_id"]] = ImageFacts(image.png_cols, image.png_rows, "lateral")
    return True


def _two_splits(item: dict, ctx: Any, rng: random.Random) -> bool:
    item["split"] = rng.choice([s for s in ("train", "val", "test") if s != item["split"]])
    return True


MUTATIONS: dict[str, Mutation] = {
    "flipped_yes_no": _flip_yes_no,
    "wrong_laterality": _wrong_laterality,
    "wrong_finding": _wrong_finding,
    "answer_contradicts_report": _contradicting_answer,
    "box_outside_image": _box_outside,
    "duplicate_options": _duplicate_options,
    "two_correct_options": _two_correct,
    "correct_letter_outside_options": _letter_outside,
    "missing_required_field": _missing_field,
    "wrong_type": _wrong_type,
    "unrendered_variable": _unrendered,
    "deid_token": _deid,
    "leaked_answer": _leaked,
    "lateral_image_left_right_question": _lateral_left_right,
    "patient_in_two_splits": _two_splits,
}


def _rejected(item: dict, ctx: Any, strictness: dict[str, str]) -> bool:
    from cxrvqa.validation.validators import run_validators

    return any(not verdict.ok and level == "reject" for _, verdict, level in run_validators(item, ctx, strictness))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Output folder of a build (with QA items).")
    parser.add_argument("--per-type", type=int, default=2000, help="At most N mutants per mutation type.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    import jsonschema

    from cxrvqa.config import load_config
    from cxrvqa.core.resources import load_json_schema
    from cxrvqa.store import Store
    from cxrvqa.validation import stage

    config = load_config(None, {"out_dir": args.out})
    context = stage.prepare(config)
    with Store(args.out / "cxrvqa.duckdb", read_only=True) as store:
        items = store.query_dicts(f"SELECT {', '.join(stage.ITEM_FIELDS)} FROM current_qa_items ORDER BY item_id")
        contexts, _ = stage.study_contexts(store, sorted({i["study_id"] for i in items}), context)
    print(f"validator mutations on {args.out}: {len(items):,} clean items, {len(contexts):,} studies")

    start = time.perf_counter()
    false_rejections = sum(_rejected(item, contexts[item["study_id"]], context.strictness) for item in items)
    seconds = time.perf_counter() - start
    schema = load_json_schema("qa_item.schema.json")
    sample = items[: min(len(items), 2000)]
    naive_start = time.perf_counter()
    for item in sample:
        jsonschema.validate(item, schema)
    naive = len(sample) / (time.perf_counter() - naive_start)
    speed = len(items) / seconds
    print(
        f"  speed: every validator over {len(items):,} items in {seconds:.2f} s = {speed:,.0f} items/s "
        f"(1 process); naive per-item jsonschema.validate(): {naive:,.0f} items/s; ratio {speed / naive:.2f}x"
    )
    false_rate = false_rejections / len(items) if items else 0.0
    print(f"  false rejections on clean items: {false_rejections} / {len(items)} = {false_rate:.2%}")

    rng = random.Random(args.seed)
    # the answer-program check rejects any change to an item the generator made; the second rate shows
    # what the other validators catch alone (items from elsewhere cannot be reproduced)
    independent = {**context.strictness, "answer_program": "ignore"}
    print(f"  {'mutation':36} {'mutants':>8} {'detected':>9} {'rate':>7} {'w/o answer_program':>19}")
    total_mutants = total_detected = 0
    missed_types = []
    for name, mutate in MUTATIONS.items():
        mutants = detected = alone = 0
        for item in rng.sample(items, len(items)):
            if mutants >= args.per_type:
                break
            mutant, ctx = copy.deepcopy(item), copy.copy(contexts[item["study_id"]])
            ctx.images = dict(ctx.images)
            if not mutate(mutant, ctx, rng):
                continue
            mutants += 1
            detected += _rejected(mutant, ctx, context.strictness)
            alone += _rejected(mutant, ctx, independent)
        rate = detected / mutants if mutants else float("nan")
        total_mutants += mutants
        total_detected += detected
        if mutants and rate < 0.9:
            missed_types.append(name)
        print(
            f"  {name:36} {mutants:>8,} {detected:>9,} {rate:>7.1%} "
            f"{(alone / mutants if mutants else float('nan')):>19.1%}"
        )
    overall = total_detected / total_mutants if total_mutants else 0.0
    print(f"  {'overall':36} {total_mutants:>8,} {total_detected:>9,} {overall:>7.1%}")
    met = not missed_types and overall >= 0.95 and false_rate <= 0.01
    print(
        f"  targets (every type >= 90%, overall >= 95%, false rejection <= 1%): {'met' if met else 'MISSED'}"
        + (f" (below 90%: {', '.join(missed_types)})" if missed_types else "")
    )
    print(f"  target >= 20,000 items/s: {'met' if speed >= 20_000 else 'MISSED'}")
    return 1 if args.check and not (met and speed >= 20_000) else 0


if __name__ == "__main__":
    sys.exit(main())
