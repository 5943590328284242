"""Every validator's verdict on every current item of a build, written or compared: the check that a change
meant to make the validators faster (or to reorganise their code) leaves every verdict as it was.

    .venv/bin/python bench/validator_verdicts.py --out BUILD --dest before.jsonl     # at the old commit
    .venv/bin/python bench/validator_verdicts.py --out BUILD --compare before.jsonl  # at the new one

One line per item: item_id and, per validator, [ok, reason, detail]. --compare prints every item whose
verdicts differ (at most --show of them) and exits 1 when any does. Timing is validator_recall.py --speed's job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def verdicts(build: Path, only: set[str] | None = None) -> dict[str, dict[str, list[Any]]]:
    """item_id -> validator -> [ok, reason, detail], every current item of the build, study by study."""
    from cxrvqa.config import load_config
    from cxrvqa.store import Store
    from cxrvqa.validation import stage
    from cxrvqa.validation.validators import run_validators

    with Store(build / "cxrvqa.duckdb", read_only=True) as store:
        context = stage.prepare(load_config(None, {"out_dir": build}), store)
        studies = [s for (s,) in store.query("SELECT DISTINCT study_id FROM current_qa_items ORDER BY 1")]
        out: dict[str, dict[str, list[Any]]] = {}
        for start in range(0, len(studies), 500):
            batch = studies[start : start + 500]
            items = store.query_dicts(
                f"SELECT {', '.join(stage.ITEM_FIELDS)} FROM current_qa_items "
                "WHERE study_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY study_id, item_id",
                [batch],
            )
            contexts, _ = stage.study_contexts(store, batch, context)
            by_study: dict[str, list[dict[str, Any]]] = {}
            for item in items:
                by_study.setdefault(item["study_id"], []).append(item)
            for study, ctx in contexts.items():  # as the stage does: answer_program regenerates these items only
                ctx.item_ids = stage.item_ids_of(by_study.get(study, []))
            for item in items:
                results = run_validators(item, contexts[item["study_id"]], context.strictness)
                out[item["item_id"]] = {
                    v.name: [verdict.ok, verdict.reason, verdict.detail]
                    for v, verdict, _ in results
                    if only is None or v.name in only
                }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the build's output folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dest", type=Path, help="write the verdicts here (JSON lines)")
    group.add_argument("--compare", type=Path, help="compare with verdicts written before")
    parser.add_argument("--show", type=int, default=20, help="differences to print")
    args = parser.parse_args()
    start = time.perf_counter()
    now = verdicts(args.out)
    print(f"{len(now):,} items, {sum(len(v) for v in now.values()):,} verdicts in {time.perf_counter() - start:.1f} s")
    if args.dest:
        with args.dest.open("w", encoding="utf-8") as out:
            for item_id, row in now.items():
                out.write(json.dumps({"item_id": item_id, "verdicts": row}) + "\n")
        return 0
    before = {}
    for line in args.compare.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        before[row["item_id"]] = row["verdicts"]
    differ = [i for i in sorted(set(before) | set(now)) if before.get(i) != now.get(i)]
    for item_id in differ[: args.show]:
        old, new = before.get(item_id, {}), now.get(item_id, {})
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                print(f"{item_id} {name}: {old.get(name)} -> {new.get(name)}")
    print(f"{len(differ)} of {len(set(before) | set(now)):,} items have different verdicts")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
