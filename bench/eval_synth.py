"""The rules extractor scored against the known graphs of a synthetic corpus (the second gold standard).

Run: .venv/bin/python bench/eval_synth.py [--studies 2000] [--seed 0] [--json]

It writes a corpus with `cxrvqa.synth` (reports + gold graphs, no images) into a temporary folder,
runs the rules extractor on every report through the real report loader, parser and extraction
entry point (`cxrvqa.synth.score.rules_graphs`), and scores it per (study, finding): presence
precision / recall / F1 for present, absent and uncertain, and laterality accuracy
(`cxrvqa.synth.score`). Errors are traced back to the sentence frames of
`schemas/vocab/synth_phrases.yaml` that wrote the sentences involved: the frames with the highest
error rates are the phrasings the extractor misreads.

Baseline, measured in the same run on the same reports: the keyword-only NegEx-style labeller of
bench/eval_extraction.py (the vocabulary's synonyms, negated when a NegEx cue precedes them in the
sentence; no sections, hedges, scope ends or sides), so its laterality is not scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_extraction import negex_labeller  # noqa: E402  (a sibling benchmark script)

from cxrvqa.synth.corpus import GOLD, REPORTS, write_corpus  # noqa: E402
from cxrvqa.synth.reports import CHUNK, make_chunk  # noqa: E402
from cxrvqa.synth.score import Mention, Scorer, SynthScores, read_jsonl, rules_pairs  # noqa: E402


def baseline_scores(gold: Path) -> dict[str, SynthScores]:
    """The NegEx-style keyword labeller over every sentence of each report (it has no sections)."""
    label = negex_labeller()
    scorers = {"all": Scorer(), "named": Scorer(named_only=True)}
    for truth in read_jsonl(gold):
        said = label(sentence["text"] for sentence in truth["sentences"])
        found = [Mention(finding, presence) for finding, presence in said.items()]
        for scorer in scorers.values():
            scorer.add(truth, found)
    return {name: scorer.scores() for name, scorer in scorers.items()}


def rules_scores(reports: Path, gold: Path, frames: list[list[str]]) -> dict[str, SynthScores]:
    """The rules extractor: every gold fact; only what reports name; reports with / without wrapped lines."""
    scorers = {"all": Scorer(), "named": Scorer(named_only=True), "unwrapped": Scorer(), "wrapped": Scorer()}
    for (truth, predicted), frames_of in zip(rules_pairs(reports, gold), frames, strict=True):
        scorers["all"].add(truth, predicted)
        scorers["named"].add(truth, predicted)
        wrapped = any("\n" in sentence["text"] for sentence in truth["sentences"])
        scorers["wrapped" if wrapped else "unwrapped"].add(truth, predicted, frames_of)
    return {name: scorer.scores() for name, scorer in scorers.items()}


def sentence_frames(seed: int, studies: int) -> list[list[str]]:
    """The frame that wrote each sentence of each study (the generator run again, asked for them)."""
    frames: list[list[str]] = []
    for chunk in range((studies + CHUNK - 1) // CHUNK):
        frames.extend(make_chunk(seed, chunk, studies, with_frames=True).frames)
    return frames


def _cell(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def print_scores(name: str, scores: SynthScores, seconds: float) -> None:
    print(f"\n{name}: {scores.studies} studies in {seconds:.1f} s ({scores.studies / seconds:,.0f} studies/s)")
    print(f"  {'presence':10} {'support':>7} {'tp':>6} {'fp':>6} {'fn':>6} {'P':>6} {'R':>6} {'F1':>6}")
    for c in scores.classes:
        print(
            f"  {c.presence:10} {c.support:7} {c.tp:6} {c.fp:6} {c.fn:6} {_cell(c.precision)} {_cell(c.recall)} "
            f"{_cell(c.f1)}"
        )
    print(f"  micro F1 over present/absent/uncertain: {scores.micro_f1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worst", type=int, default=15, help="Frames and findings to list, worst first.")
    parser.add_argument("--json", action="store_true", help="Also print the scores as JSON.")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="cxrvqa-eval-synth-"))
    write_corpus(out, args.studies, seed=args.seed)
    frames = sentence_frames(args.seed, args.studies)

    started = time.perf_counter()
    rules = rules_scores(out / REPORTS, out / GOLD, frames)
    rules_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baseline = baseline_scores(out / GOLD)
    baseline_seconds = time.perf_counter() - started

    print(f"synthetic corpus: {args.studies} studies, seed {args.seed} ({out})")
    print("every gold fact, including what normal statements imply ('the lungs are clear' -> no edema, ...):")
    print_scores("rules extractor", rules["all"], rules_seconds)
    side = rules["all"].laterality
    print(
        f"  laterality: {side.get('correct', 0)}/{side.get('scored', 0)} = {side['accuracy']:.3f} "
        f"(wrong side {side.get('wrong', 0)}, no side {side.get('missing', 0)}; a side where the report gives "
        f"none: {side.get('spurious', 0)})"
    )
    print_scores("baseline: NegEx-style keyword labeller", baseline["all"], baseline_seconds)
    for name in ("all", "named"):
        r, b = rules[name], baseline[name]
        per_class = ", ".join(
            f"{x.presence} F1 {x.f1 or 0:.3f} vs {y.f1 or 0:.3f}" for x, y in zip(r.classes, b.classes, strict=True)
        )
        print(
            f"\nrules / baseline ({'every fact' if name == 'all' else 'named findings only'}): micro F1 "
            f"{r.micro_f1:.3f} / {b.micro_f1:.3f} = {r.micro_f1 / b.micro_f1:.2f}x; {per_class}"
        )
    for name in ("unwrapped", "wrapped"):
        scores = rules[name]
        side = scores.laterality
        print(
            f"rules on reports {'with' if name == 'wrapped' else 'without'} MIMIC-style line wraps "
            f"({scores.studies} studies): micro F1 {scores.micro_f1:.3f}, "
            + ", ".join(f"{c.presence} F1 {c.f1 or 0:.3f}" for c in scores.classes)
            + f", laterality {side['accuracy']:.3f}"
        )

    worst_findings = sorted(
        rules["all"].findings,
        key=lambda row: -sum(row[p]["fp"] + row[p]["fn"] for p in ("present", "absent", "uncertain")),
    )
    print("\nfindings with the most presence errors (rules, every fact): support / fp / fn per presence")
    for row in worst_findings[: args.worst]:
        cells = "  ".join(
            f"{p[:4]} {row[p]['support']:4}/{row[p]['fp']:3}/{row[p]['fn']:3}"
            for p in ("present", "absent", "uncertain")
        )
        print(f"  {row['finding']:36} {cells}")
    print(
        "\nframes with the highest error rates (rules, reports without line wraps): facts their sentences "
        "carry, presence errors, side errors per fact, an example"
    )
    ranked = sorted(
        (f for f in rules["unwrapped"].frames if f.facts >= 10), key=lambda f: -(f.errors + f.side_errors) / f.facts
    )
    for frame in ranked[: args.worst]:
        print(
            f"  {frame.frame:36} {frame.facts:5} {frame.errors / frame.facts:6.1%} "
            f"{frame.side_errors / frame.facts:6.1%}  {frame.example[:90]!r}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "rules": {k: v.as_dict() for k, v in rules.items()},
                    "baseline": {k: v.as_dict() for k, v in baseline.items()},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
