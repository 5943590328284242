"""The rules extractor on the IU development reports: labels14 quality, laterality and location
against the human MeSH coding, and speed.

Run: make eval-extraction   (or CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/eval_extraction.py)

It runs what a user runs: `cxrvqa build --reports ... --report-format iu --stages reports,extract`
(one worker), `cxrvqa export --format labels14`, `cxrvqa eval labels14 --json`; then reads
the stored observations to score laterality and location against the MeSH qualifiers
(`Opacity/lung/upper lobe/right`) and times the extractor alone on one core.

Targets (issue 3): micro-F1 >= 0.90 over the 14 labels; every label with support >= 20 at
F1 >= 0.75; `normal` F1 >= 0.90; laterality accuracy >= 0.85 where MeSH gives one;
>= 1,000 reports/s on one core (printed as a ratio to that figure).

Speed baseline, measured in the same run on the same stored studies: the textbook alternative
(NegEx on spaCy), one report at a time: `spacy.blank("en")` tokenizes each sentence, a
PhraseMatcher finds the vocabulary's synonyms, and a regex pass marks a mention negated when a
NegEx cue (no, not, without, negative for, ...) precedes it in the sentence. It has no sections,
hedges, scope ends, laterality, regions or normal statements, so it does less work than the
extractor and the printed ratio (extractor / baseline) is conservative.

Laterality: for each MeSH term with left/right/bilateral whose heading is the `codes.mesh` of a
vocabulary finding, the study's present or uncertain observations of that finding (or its
descendants) are compared: correct when one of them has that side (left + right together count as
bilateral). Scored over the terms where the extractor found the finding; a finding found without a
side counts as wrong. Location: the same for anatomical qualifiers (upper lobe, base, apex,
hilum, ...), correct when an observation's region has a synonym containing the qualifier.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from cxrvqa.core.vocab import vocabulary
from cxrvqa.extraction import rules
from cxrvqa.extraction import stage as extract_stage
from cxrvqa.store import Store

SIDES = {"left", "right", "bilateral"}
#: NegEx's common pre-negation cues, for the speed baseline.
NEGEX_CUES = re.compile(r"\b(?:no|not|without|negative for|free of|clear of|absence of|resolved)\b", re.IGNORECASE)
TARGET_RATE = 1000.0


def cli(*args: str) -> str:
    command = [str(Path(sys.executable).parent / "cxrvqa"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def descendants_by_mesh() -> dict[str, set[str]]:
    """MeSH heading -> the findings coded with it and all their descendants."""
    findings = vocabulary().findings
    children: dict[str, set[str]] = defaultdict(set)
    for fid, finding in findings.items():
        if finding.get("parent"):
            children[finding["parent"]].add(fid)

    def below(fid: str) -> set[str]:
        found = {fid}
        for child in children[fid]:
            found |= below(child)
        return found

    by_heading: dict[str, set[str]] = defaultdict(set)
    for fid, finding in findings.items():
        heading = finding.get("codes", {}).get("mesh")
        if heading:
            by_heading[heading] |= below(fid)
    return by_heading


def regions_for(qualifier: str) -> set[str]:
    return {
        rid
        for rid, region in vocabulary().regions.items()
        if any(f" {qualifier} " in f" {synonym} " for synonym in region.get("synonyms", []))
    }


def score_mesh(db: Path, reports_csv: Path) -> dict[str, object]:
    by_heading = descendants_by_mesh()
    observations: dict[str, list[tuple[str, str | None, set[str]]]] = defaultdict(list)
    with Store(db, read_only=True) as store:
        regions: dict[tuple[str, str], set[str]] = defaultdict(set)
        for graph_id, obs_id, region in store.query(
            "SELECT r.graph_id, r.obs_id, r.region FROM obs_regions r JOIN current_scene_graphs USING (graph_id)"
        ):
            regions[(graph_id, obs_id)].add(region)
        for study, graph_id, obs_id, finding, laterality in store.query(
            "SELECT study_id, graph_id, obs_id, finding, laterality FROM current_observations "
            "WHERE backend = 'rules' AND presence IN ('present', 'uncertain')"
        ):
            observations[study].append((finding, laterality, regions[(graph_id, obs_id)]))
    qualifier_regions: dict[str, set[str]] = {}
    side = Counter()
    place = Counter()
    with open(reports_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for term in row["MeSH"].split(";"):
                heading, *qualifiers = [
                    part.strip().lower() if i else part.strip() for i, part in enumerate(term.split("/"))
                ]
                findings = by_heading.get(heading)
                if not findings:
                    continue
                found = [o for o in observations[row["uid"]] if o[0] in findings]
                sides = SIDES.intersection(qualifiers)
                if len(sides) == 1:
                    side["terms"] += 1
                    if found:
                        side["found"] += 1
                        ours = {o[1] for o in found if o[1]}
                        if {"left", "right"} <= ours:
                            ours.add("bilateral")
                        side["correct" if sides <= ours else "no_side" if not ours else "wrong"] += 1
                for qualifier in qualifiers:
                    if qualifier in SIDES or qualifier == "lung":
                        continue
                    if qualifier not in qualifier_regions:
                        qualifier_regions[qualifier] = regions_for(qualifier)
                    wanted = qualifier_regions[qualifier]
                    if not wanted:
                        continue  # a severity or shape qualifier, not a place
                    place["terms"] += 1
                    if found:
                        place["found"] += 1
                        place["correct" if any(o[2] & wanted for o in found) else "wrong"] += 1
    return {"laterality": dict(side), "location": dict(place)}


def time_extractor(db: Path) -> tuple[int, float, float]:
    """Reports, seconds for the extractor alone (sentences in, graph + quality codes out, one core) and
    seconds for the NegEx-style baseline on the same studies."""
    with Store(db, read_only=True) as store:
        ids = [row[0] for row in store.query("SELECT study_id FROM current_reports")]
        studies = extract_stage.load_inputs(store, ids)
    extract_stage.extract_study(studies[0])  # loads the rules once, outside the timing
    best = float("inf")
    for _ in range(3):
        rules.clear_sentence_memo()  # each pass sees the reports as a build does: once (repeats within them count)
        start = time.perf_counter()
        for study in studies:
            extract_stage.extract_study(study)
        best = min(best, time.perf_counter() - start)
    return len(studies), best, time_negex_baseline(studies)


def negex_labeller() -> Callable[[Iterable[str]], dict[str, str]]:
    """The NegEx-style baseline (see the module docstring): sentences -> {finding: "present" | "absent"}.
    Also the baseline of bench/eval_synth.py."""
    import spacy
    from spacy.matcher import PhraseMatcher

    nlp = spacy.blank("en")
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    for finding_id, finding in vocabulary().findings.items():
        if finding.get("synonyms"):
            matcher.add(finding_id, [nlp.make_doc(synonym) for synonym in finding["synonyms"]])

    def label(sentences: Iterable[str]) -> dict[str, str]:
        found = {}
        for text in sentences:
            doc = nlp(text)
            for match_id, start, _ in matcher(doc):
                negated = NEGEX_CUES.search(doc[:start].text) is not None
                found[nlp.vocab.strings[match_id]] = "absent" if negated else "present"
        return found

    return label


def time_negex_baseline(studies: list[extract_stage.StudyInput]) -> float:
    """Seconds for the NegEx-style baseline (see the module docstring) over the studies, best of three."""
    label = negex_labeller()

    def label_study(study: extract_stage.StudyInput) -> dict[str, str]:
        return label(text for _, _, text, _, _, deid_only in study.sentences if not deid_only)

    label_study(studies[0])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for study in studies:
            label_study(study)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uncertain", choices=["negative", "positive"], default="negative")
    parser.add_argument("--keep", type=Path, help="Build into this folder (kept) instead of a temporary one.")
    args = parser.parse_args()
    data = os.environ.get("CXRVQA_DATA_DIR")
    if not data or not Path(data, "reports", "iu_dev_reports.csv").is_file():
        sys.exit("set CXRVQA_DATA_DIR to the shared data folder (with reports/iu_dev_reports.csv)")
    reports_csv = Path(data, "reports", "iu_dev_reports.csv")
    gold = Path(data, "reports", "iu_dev_labels14.csv")
    out = args.keep or Path(tempfile.mkdtemp(prefix="cxrvqa-eval-"))
    db = out / "cxrvqa.duckdb"

    start = time.perf_counter()
    cli(
        "build",
        "--reports",
        str(reports_csv),
        "--report-format",
        "iu",
        "--out",
        str(out),
        "--stages",
        "reports,extract",
        "--workers",
        "1",
    )
    build_seconds = time.perf_counter() - start
    pred = out / "labels14.csv"
    cli("export", "--out", str(out), "--format", "labels14", "--dest", str(pred), "--uncertain", args.uncertain)
    report = json.loads(cli("eval", "labels14", "--pred", str(pred), "--gold", str(gold), "--json"))
    with Store(db, read_only=True) as store:
        ((stage_n, stage_seconds),) = store.query(
            "SELECT n_done, seconds FROM run_stages WHERE stage = 'extract' ORDER BY started_at DESC LIMIT 1"
        )
    n_reports, seconds, baseline_seconds = time_extractor(db)
    mesh = score_mesh(db, reports_csv)

    print(f"IU dev: {report['studies']} studies; uncertain mentions counted as {args.uncertain}")
    print(f"{'label':20} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}")
    failing = []
    for score in [*report["labels"], report["normal"], report["micro"]]:
        cells = ["   n/a" if score[k] is None else f"{score[k]:6.3f}" for k in ("precision", "recall", "f1")]
        print(f"{score['label']:20} {score['support']:7} {' '.join(cells)}")
        if score["label"] not in ("micro", "normal") and score["support"] >= 20 and score["f1"] < 0.75:
            failing.append(score["label"])
    print(f"macro F1 {report['macro_f1']:.3f}")
    side, place = mesh["laterality"], mesh["location"]
    side_accuracy = side.get("correct", 0) / side["found"] if side.get("found") else 0.0
    place_accuracy = place.get("correct", 0) / place["found"] if place.get("found") else 0.0
    print(
        f"laterality vs MeSH: {side.get('correct', 0)}/{side.get('found', 0)} = {side_accuracy:.3f} "
        f"(wrong side {side.get('wrong', 0)}, no side {side.get('no_side', 0)}; "
        f"{side.get('terms', 0)} MeSH terms with a side, finding found for {side.get('found', 0)})"
    )
    print(
        f"location vs MeSH:   {place.get('correct', 0)}/{place.get('found', 0)} = {place_accuracy:.3f} "
        f"({place.get('terms', 0)} MeSH terms with a place qualifier)"
    )
    rate, baseline_rate = n_reports / seconds, n_reports / baseline_seconds
    print(
        f"speed: extractor alone {rate:,.0f} reports/s on one core = {rate / baseline_rate:.2f}x the NegEx-style "
        f"baseline's {baseline_rate:,.0f} reports/s (same studies, same run) and {rate / TARGET_RATE:.2f}x the "
        f"1,000/s target; "
        f"extract stage with store reads and writes {stage_n / stage_seconds:,.0f} reports/s; "
        f"whole `cxrvqa build` (Prefect start, reports + extract) {build_seconds:.1f} s"
    )
    checks = {
        "micro-F1 >= 0.90": report["micro"]["f1"] >= 0.90,
        "labels with support >= 20 at F1 >= 0.75": not failing,
        "normal F1 >= 0.90": report["normal"]["f1"] >= 0.90,
        "laterality >= 0.85": side_accuracy >= 0.85,
        ">= 1,000 reports/s": rate >= TARGET_RATE,
    }
    for name, ok in checks.items():
        print(
            f"  {'PASS' if ok else 'FAIL'}  {name}"
            + (f" (below: {', '.join(failing)})" if name.startswith("labels") and failing else "")
        )


if __name__ == "__main__":
    main()
