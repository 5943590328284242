"""Extraction scored against the known graphs of a synthetic corpus (a second gold standard).

Scored per (study, finding): a study's state of a finding is its strongest mention (present >
uncertain > absent; not mentioned = none). For each presence: precision, recall and F1 over all
(study, finding) pairs, counting a prediction of a finding the report never names as a false
positive. Laterality: over the pairs the gold says are present or uncertain with a side and that the
labeller found present or uncertain: correct when the sides agree (left + right = bilateral).
Errors are traced back to the sentence frames that wrote the sentences involved, so that a weak
spot of an extractor shows up as the phrasing it misreads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from cxrvqa.core.scene_graph import SceneGraph
from cxrvqa.reports.loaders import RawReport, load_reports

PRESENCES = ("present", "absent", "uncertain")
_STRENGTH = {"absent": 0, "uncertain": 1, "present": 2}


@dataclass(frozen=True)
class Mention:
    """What a graph or a labeller says about one finding in one place of a report."""

    finding: str
    presence: str
    laterality: str | None = None
    sentences: tuple[int, ...] = ()
    derived: bool = False  # implied by a normal statement ("lungs are clear"), not named


@dataclass(frozen=True)
class State:
    presence: str
    side: str | None  # left | right | bilateral | None
    sentences: frozenset[int]  # where the mentions of that presence are


def study_states(mentions: Iterable[Mention]) -> dict[str, State]:
    """finding -> its strongest presence, the side of those mentions, and their sentences."""
    best: dict[str, list[Mention]] = {}
    for mention in mentions:
        held = best.get(mention.finding)
        if held is None or _STRENGTH[mention.presence] > _STRENGTH[held[0].presence]:
            best[mention.finding] = [mention]
        elif _STRENGTH[mention.presence] == _STRENGTH[held[0].presence]:
            held.append(mention)
    states = {}
    for finding, strongest in best.items():
        sides = {m.laterality for m in strongest if m.laterality}
        if "bilateral" in sides or {"left", "right"} <= sides:
            side = "bilateral"
        else:
            side = next(iter(sides)) if sides else None
        states[finding] = State(strongest[0].presence, side, frozenset(s for m in strongest for s in m.sentences))
    return states


def graph_mentions(observations: Iterable[dict]) -> list[Mention]:
    """Mentions of a graph's observations (as dicts: a gold line, or ``SceneGraph.model_dump()``)."""
    return [
        Mention(
            o["finding"],
            o["presence"],
            o.get("laterality"),
            tuple(e["sentence_id"] for e in o.get("evidence", ())),
            bool(o.get("derived_from")),
        )
        for o in observations
        if o.get("finding")
    ]


@dataclass
class ClassScore:
    presence: str
    support: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None


@dataclass
class FrameScore:
    frame: str
    facts: int  # gold (study, finding) states its sentences carry
    errors: int  # presence errors traced to it (either side)
    side_errors: int
    example: str  # a sentence it wrote that was misread


@dataclass
class SynthScores:
    studies: int
    classes: list[ClassScore]
    micro_f1: float
    laterality: dict[str, float | int]
    findings: list[dict]
    frames: list[FrameScore] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r else 0.0


class Scorer:
    """Accumulates (gold graph, predicted mentions) pairs, study by study. ``named_only``: leave out what
    normal statements imply (derived observations) on both sides, to score what the report names."""

    def __init__(self, named_only: bool = False) -> None:
        self.named_only = named_only
        self.studies = 0
        self.counts = {p: Counter() for p in PRESENCES}  # tp / fp / fn / support
        self.per_finding: dict[str, Counter] = {}
        self.side = Counter()
        self.frame_facts = Counter()
        self.frame_errors = Counter()
        self.frame_side_errors = Counter()
        self.examples: dict[str, str] = {}

    def add(self, gold: dict, predicted: Iterable[Mention], frames: list[str] | None = None) -> None:
        self.studies += 1
        truth_mentions = graph_mentions(gold["observations"])
        if self.named_only:
            truth_mentions = [m for m in truth_mentions if not m.derived]
            predicted = [m for m in predicted if not m.derived]
        truth = study_states(truth_mentions)
        guess = study_states(predicted)
        texts = [s["text"] for s in gold["sentences"]]

        def blame(sentences: Iterable[int], counter: Counter) -> None:
            for frame, sentence in {(frames[s], s) for s in sentences if s < len(frames)}:
                counter[frame] += 1
                if counter is not self.frame_facts:
                    self.examples.setdefault(frame, texts[sentence])

        for finding in truth.keys() | guess.keys():
            gold_state, pred_state = truth.get(finding), guess.get(finding)
            g = gold_state.presence if gold_state else None
            p = pred_state.presence if pred_state else None
            per = self.per_finding.setdefault(finding, Counter())
            if g:
                self.counts[g]["support"] += 1
                per[f"{g}_support"] += 1
                if frames:
                    blame(gold_state.sentences, self.frame_facts)
            if g == p:
                self.counts[g]["tp"] += 1
                per[f"{g}_tp"] += 1
            else:
                if p:
                    self.counts[p]["fp"] += 1
                    per[f"{p}_fp"] += 1
                if g:
                    self.counts[g]["fn"] += 1
                    per[f"{g}_fn"] += 1
                if frames:
                    blame(
                        (gold_state.sentences if gold_state else frozenset())
                        | (pred_state.sentences if pred_state else frozenset()),
                        self.frame_errors,
                    )
            if g in ("present", "uncertain") and gold_state.side:
                if p in ("present", "uncertain"):
                    self.side["scored"] += 1
                    outcome = (
                        "correct"
                        if pred_state.side == gold_state.side
                        else "missing"
                        if pred_state.side is None
                        else "wrong"
                    )
                    self.side[outcome] += 1
                    if outcome != "correct" and frames:
                        blame(gold_state.sentences, self.frame_side_errors)
            elif g in ("present", "uncertain") and p in ("present", "uncertain") and pred_state.side:
                self.side["spurious"] += 1  # a side the report does not give

    def scores(self) -> SynthScores:
        classes = []
        total = Counter()
        for presence in PRESENCES:
            c = self.counts[presence]
            total.update(c)
            precision, recall = _ratio(c["tp"], c["tp"] + c["fp"]), _ratio(c["tp"], c["tp"] + c["fn"])
            classes.append(
                ClassScore(presence, c["support"], c["tp"], c["fp"], c["fn"], precision, recall, _f1(precision, recall))
            )
        micro = _f1(_ratio(total["tp"], total["tp"] + total["fp"]), _ratio(total["tp"], total["tp"] + total["fn"]))
        side = dict(self.side)
        side["accuracy"] = _ratio(self.side["correct"], self.side["scored"]) or 0.0
        findings = []
        for finding, c in sorted(self.per_finding.items()):
            row = {"finding": finding}
            for presence in PRESENCES:
                tp, fp, fn = (c[f"{presence}_{k}"] for k in ("tp", "fp", "fn"))
                row[presence] = {
                    "support": c[f"{presence}_support"],
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "f1": _f1(_ratio(tp, tp + fp), _ratio(tp, tp + fn)),
                }
            findings.append(row)
        frames = [
            FrameScore(
                frame,
                self.frame_facts[frame],
                self.frame_errors[frame],
                self.frame_side_errors[frame],
                self.examples.get(frame, ""),
            )
            for frame in sorted(self.frame_facts | self.frame_errors)
        ]
        return SynthScores(self.studies, classes, micro or 0.0, side, findings, frames)


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def rules_graphs(reports: Path) -> Iterator[SceneGraph]:
    """The rules extractor's graph of every report of a JSONL file, through the real report loader,
    parser and extraction entry point (as the build's stages run them, without the store)."""
    from cxrvqa.extraction.stage import StudyInput, extract_study
    from cxrvqa.reports.stage import PARSER_RECIPE, ReportStageContext, parse_report

    context = ReportStageContext(report_format="jsonl", parser_version=PARSER_RECIPE, max_chars=1_000_000)
    for record in load_reports(reports, "jsonl"):
        if not isinstance(record, RawReport):
            raise ValueError(f"{record.source}: {record.reason}: {record.detail}")
        row, sentence_rows = parse_report(record, context, run_id="synth-eval", input_hash="")
        study = StudyInput(
            record.study_id,
            row["report_hash"],
            row["parser_version"],
            row["indication"],
            tuple(
                (s["sentence_id"], s["section"], s["text"], s["start"], s["end"], s["deid_only"]) for s in sentence_rows
            ),
        )
        yield extract_study(study)[0]


def rules_pairs(reports: Path, gold: Path) -> Iterator[tuple[dict, list[Mention]]]:
    """(gold graph, the rules extractor's mentions) of every study of a corpus (files in the same order)."""
    for number, (graph, truth) in enumerate(zip(rules_graphs(reports), read_jsonl(gold), strict=True)):
        if graph.study_id != truth["study_id"]:
            raise ValueError(f"{gold}:{number + 1}: expected study {graph.study_id}, found {truth['study_id']}")
        yield truth, graph_mentions(o.model_dump() for o in graph.observations)


def score_rules(reports: Path, gold: Path, named_only: bool = False) -> SynthScores:
    """The rules extractor on a synthetic corpus against its gold graphs."""
    scorer = Scorer(named_only)
    for truth, predicted in rules_pairs(reports, gold):
        scorer.add(truth, predicted)
    return scorer.scores()
