"""Item accuracy: is each generated answer what its report says? Measured by reading items.

Label scores (F1 against human labels) cannot see a wrong location, a hedge stated as definite, a
closed-world "no" the report does not cover, an ill-posed question or a grammar error: only a person
reading the item against its report can. This bench draws the sample, hands it to readers, and
scores the verdicts they return. The criteria readers follow are `bench/item_accuracy/CRITERIA.md`;
a reader must not be the author of the rule under test, and each round draws a fresh seed (a fix
that raises one sample and not a fresh one is tuning).

  sample  --out BUILD --n 400 --seed S --dest ROUND_DIR [--packets 4]
          [--stratum hedged-elsewhere|doubt-words|places-shadows] [--flagged REASON ...]
          [--exclude VERDICTS.jsonl ...]
          A uniform random sample of the build's current items (reproducible from the seed). Writes
          ROUND_DIR/items.jsonl (the items, with the study's report text) and ROUND_DIR/packet_K.md
          (the same, one file per reader); a --stratum draws from its items only (`_stratum_ids`),
          --flagged from the items a validator failed with one of those reason codes (what share of
          what a check demotes readers judge faulty),
          --exclude leaves out the items of earlier rounds' verdict files. ROUND_DIR holds report text:
          keep it outside the repository when the reports are licensed (the IU reports are).
  score   VERDICTS.jsonl [...]
          Prints accuracy overall, per template and per error class with a Wilson 95% interval.

A verdict line: {"item_id", "template_id", "question", "answer", "verdict":
"correct|wrong|unsupported|bad_question", "grammar": bool, "error_class": one of ERROR_CLASSES or
null, "reason": "..."}. Rounds kept as data (no report text) live in `bench/item_accuracy/rounds/`.

Run: .venv/bin/python bench/item_accuracy.py sample --out OUT --n 400 --seed $RANDOM --dest /tmp/round
     .venv/bin/python bench/item_accuracy.py score bench/item_accuracy/rounds/*.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from cxrvqa.core.stats import wilson
from cxrvqa.store import Store

VERDICTS = ("correct", "wrong", "unsupported", "bad_question")
#: The report's sections a packet shows, in report order (`current_reports` columns).
REPORT_SECTIONS = ("indication", "comparison", "technique", "findings", "impression", "other")
#: The error classes of the answer-correctness issue, for the reader's `error_class`.
ERROR_CLASSES = (
    "presupposition",
    "hedge_as_definite",
    "location_side_extent",
    "closed_world_no",
    "vocabulary_mapping",
    "grammar",
    "ill_defined_count",
    "evidence",
    "negation",
    "other",
)


#: `--stratum hedged-elsewhere`: items whose answer is not a denial, in a report with a hedge word in a sentence the
#: item does not cite. The stratum where a doubt the item does not quote can make a stated finding unsure; it is
#: defined by words, not by any check, so a check's recall and false demotion in it are measured, not designed in.
HEDGE_ELSEWHERE = re.compile(
    r"\b(?:may|might|could|possible|possibly|probable|probably|likely|versus|vs|questionable|suspicious|suggest\w*|"
    r"cannot exclude|uncertain|consider\w*|favou?r\w*|differential)\b"
)
DENIAL = re.compile(r"^(?:no|none|neither|not)\b")


def _doubt_words(text: str) -> bool:
    """`--stratum doubt-words`: the sentence has a mimic and an existence hedge, or an alternatives phrase, of the
    independent checks' `doubt_elsewhere` rules (where that check can act; its recall and false demotion are
    measured there by readers who do not know which items it demotes)."""
    from cxrvqa.validation.independent import _doubt_patterns

    words = _doubt_patterns()
    both = words["existence_hedges"].search(text) and words["mimics"].search(text)
    return bool(both or words["alternatives"].search(text))


#: `--stratum places-shadows`: items that ask where or on which side a finding is, and items that have a shadow (a
#: lung opacity, density or lucency) present in a report that says what something is ("compatible with", "due to").
#: Where the checks of places and attributions act; defined by templates and words, not by the checks.
ATTRIBUTION_WORDS = re.compile(
    r"\b(?:compatible|consistent with|secondary to|due to|represent\w*|correspond\w*|reflect\w*|caused by)\b"
)
SHADOWS = ("lung_opacity", "density", "lucency")


def _places_shadows_ids(store: Store) -> list[str]:
    """The item ids of `--stratum places-shadows`, in id order."""
    attributing = {
        study
        for study, text in store.query("SELECT study_id, text FROM current_sentences")
        if ATTRIBUTION_WORDS.search(text.lower())
    }
    return [
        item_id
        for item_id, study, answer, question_type, template, findings in store.query(
            "SELECT item_id, study_id, answer, question_type, template_id, findings FROM current_qa_items"
            " ORDER BY item_id"
        )
        if question_type == "where"
        or template == "finding_side"
        or (study in attributing and set(findings or ()) & set(SHADOWS) and not DENIAL.match(answer.strip().lower()))
    ]


def _stratum_ids(store: Store, stratum: str) -> list[str]:
    """The item ids of a `--stratum` (an uncited report sentence passes its test), in id order."""
    if stratum == "places-shadows":
        return _places_shadows_ids(store)
    test = _doubt_words if stratum == "doubt-words" else (lambda text: bool(HEDGE_ELSEWHERE.search(text)))
    sentences: dict[str, dict[int, str]] = defaultdict(dict)
    for study, sentence_id, text in store.query("SELECT study_id, sentence_id, text FROM current_sentences"):
        sentences[study][sentence_id] = text.lower()
    ids = []
    for item_id, study, answer, evidence in store.query(
        "SELECT item_id, study_id, answer, evidence_ids FROM current_qa_items ORDER BY item_id"
    ):
        cited = set(evidence or [])
        if DENIAL.match(answer.strip().lower()):
            continue
        if any(test(t) for i, t in sentences[study].items() if i not in cited):
            ids.append(item_id)
    return ids


def _items(
    store: Store,
    n: int,
    seed: int,
    stratum: str | None = None,
    exclude: frozenset[str] = frozenset(),
    flagged: tuple[str, ...] = (),
) -> list[dict]:
    if flagged:
        ids = [
            row[0]
            for row in store.query(
                "SELECT DISTINCT item_id FROM current_validation_results"
                " WHERE reason IN (SELECT unnest(?::VARCHAR[])) ORDER BY item_id",
                [list(flagged)],
            )
        ]
    elif stratum:
        ids = _stratum_ids(store, stratum)
    else:
        ids = [row[0] for row in store.query("SELECT item_id FROM current_qa_items ORDER BY item_id")]
    ids = [i for i in ids if i not in exclude]
    chosen = sorted(random.Random(seed).sample(ids, min(n, len(ids))))
    rows = store.query(
        "SELECT i.item_id, i.template_id, i.study_id, i.question, i.answer, i.options, i.correct_option,"
        " i.evidence_ids, r.indication, r.comparison, r.technique, r.findings, r.impression, r.other"
        " FROM current_qa_items i JOIN current_reports r USING (study_id)"
        " WHERE i.item_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY i.item_id",
        [chosen],
    )
    parts: dict[str, list[str]] = defaultdict(list)
    for item_id, kind, text in store.query(
        "SELECT item_id, kind, text FROM current_qa_answer_parts WHERE item_id IN (SELECT unnest(?::VARCHAR[]))"
        " ORDER BY item_id, part_index",
        [chosen],
    ):
        if kind != "main":
            parts[item_id].append(f"{kind}: {text}")
    sentences = {
        (s, i): t
        for s, i, t in store.query(
            "SELECT study_id, sentence_id, text FROM current_sentences WHERE study_id IN"
            " (SELECT DISTINCT study_id FROM current_qa_items WHERE item_id IN (SELECT unnest(?::VARCHAR[])))",
            [chosen],
        )
    }
    items = []
    for (
        item_id,
        template_id,
        study_id,
        question,
        answer,
        options,
        correct,
        evidence,
        *sections,
    ) in rows:
        items.append(
            {
                "item_id": item_id,
                "template_id": template_id,
                "study_id": study_id,
                "question": question,
                "options": list(options) if options else None,
                "correct_option": correct,
                "answer": answer,
                "answer_parts": parts.get(item_id, []),
                "evidence": [sentences.get((study_id, i), "?") for i in evidence or []],
                "report": dict(zip(REPORT_SECTIONS, sections)),
            }
        )
    random.Random(seed + 1).shuffle(items)
    return items


def _packet_entry(number: int, item: dict) -> str:
    lines = [
        f"## {number}. item_id `{item['item_id']}` (template `{item['template_id']}`)",
        "",
        "REPORT",
        # every section the generator may cite (the IU "image" field, read as the technique, often holds findings:
        # LLM replay round 9, two items read wrong because the packet left it out)
        *(
            f"- {name.capitalize()}: {item['report'].get(name) or '(none)'}"
            for name in REPORT_SECTIONS
            if name in ("indication", "findings", "impression") or item["report"].get(name)
        ),
        "",
        f"QUESTION: {item['question']}",
    ]
    if item["options"]:
        lines += [
            "OPTIONS: " + " | ".join(f"{letter}) {text}" for letter, text in zip("ABCD", item["options"])),
            f"CHOSEN OPTION: {item['correct_option']}",
        ]
    lines.append(f"ANSWER: {item['answer']}")
    lines += [f"  {part}" for part in item["answer_parts"]]
    lines.append("CITED EVIDENCE: " + (" / ".join(item["evidence"]) if item["evidence"] else "(none)"))
    return "\n".join(lines) + "\n"


def sample(
    out: Path,
    n: int,
    seed: int,
    dest: Path,
    packets: int,
    stratum: str | None = None,
    exclude: list[Path] = (),
    flagged: tuple[str, ...] = (),
) -> None:
    reviewed = frozenset(json.loads(line)["item_id"] for path in exclude for line in path.open() if line.strip())
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        items = _items(store, n, seed, stratum, reviewed, flagged)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "items.jsonl", "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    for k in range(packets):
        share = items[k::packets]
        text = [f"# Item review packet {k + 1} of {packets} (seed {seed}, {len(share)} items)", ""]
        text += [_packet_entry(i + 1, item) for i, item in enumerate(share)]
        (dest / f"packet_{k + 1}.md").write_text("\n".join(text), encoding="utf-8")
    print(f"{len(items)} items (seed {seed}) -> {dest}/items.jsonl and {packets} packet(s)")


def _read(paths: list[Path]) -> list[dict]:
    verdicts = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("verdict") not in VERDICTS:
                sys.exit(f"{path}:{number}: expected verdict in {VERDICTS}, found {row.get('verdict')!r}")
            if row.get("error_class") not in (None, *ERROR_CLASSES):
                sys.exit(
                    f"{path}:{number}: expected error_class in {ERROR_CLASSES} or null, "
                    f"found {row.get('error_class')!r}"
                )
            verdicts.append(row)
    return verdicts


def _line(label: str, good: int, n: int) -> str:
    low, high = wilson(good, n)
    return f"{label:<36} {n:>5} {good / n:>8.1%}  [{low:.1%}, {high:.1%}]" if n else f"{label:<36} {n:>5}"


def score(paths: list[Path]) -> None:
    verdicts = _read(paths)
    n = len(verdicts)
    counts = Counter(v["verdict"] for v in verdicts)
    grammar = sum(bool(v.get("grammar")) for v in verdicts)
    print(f"{'':<36} {'items':>5} {'share':>8}  Wilson 95%")
    print(_line("correct", counts["correct"], n))
    for verdict in VERDICTS[1:]:
        print(_line(verdict, counts[verdict], n))
    print(_line("grammar error", grammar, n))
    print(
        _line("correct and grammatical", sum(v["verdict"] == "correct" and not v.get("grammar") for v in verdicts), n)
    )
    print("\nError classes (items not correct, or with a grammar error)")
    classes = Counter(
        v.get("error_class") or "other" for v in verdicts if v["verdict"] != "correct" or v.get("grammar")
    )
    for name, count in classes.most_common():
        print(_line(name, count, n))
    print("\nPer template (share correct)")
    by_template: dict[str, list[dict]] = defaultdict(list)
    for v in verdicts:
        by_template[v["template_id"]].append(v)
    for template, rows in sorted(by_template.items(), key=lambda kv: -len(kv[1])):
        print(_line(template, sum(r["verdict"] == "correct" for r in rows), len(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", type=Path, required=True, help="the build's output folder")
    s.add_argument("--n", type=int, default=400)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--dest", type=Path, required=True)
    s.add_argument("--packets", type=int, default=4)
    s.add_argument(
        "--stratum",
        choices=["hedged-elsewhere", "doubt-words", "places-shadows"],
        help="sample this stratum only (see _stratum_ids)",
    )
    s.add_argument("--exclude", type=Path, nargs="*", default=[], help="verdict files whose items are not drawn again")
    s.add_argument("--flagged", nargs="*", default=[], help="sample the items a validator failed with these reasons")
    c = sub.add_parser("score")
    c.add_argument("verdicts", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.out, args.n, args.seed, args.dest, args.packets, args.stratum, args.exclude, tuple(args.flagged))
    else:
        score(args.verdicts)


if __name__ == "__main__":
    main()
