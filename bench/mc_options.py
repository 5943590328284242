"""What the options of a build's multiple-choice items give away, per template (issue 22).

What it measures
----------------
Input: a build folder (``--out DIR``), by default the IU dev reports-only build, built into a temporary
folder from ``$CXRVQA_DATA_DIR/reports/iu_dev_reports.csv`` when no ``--out`` is given (~5 min on the shared
two cores). Over the current multiple-choice items of each template, the three ways options can leak:
- position: the share of each correct letter (chance: 1/number of options);
- length: the share of items whose answer is the single longest, and the single shortest, option;
- value: per option value, how often it is the answer and how often a distractor, the values furthest from
  an answer share of 1/number of options first (a value never the answer is a value a reader drops).
Baseline: chance. Reported beside it: the question-only baseline that reads the options
(`cxrvqa.core.prior.OptionModel`, train -> held-out) and its ratio to chance.

``--simulate``: what a draw balanced over the whole dataset would keep. Every multiple-choice question of the
build's current scene graphs is asked again (per study, as in a build without images) for its answer and the
distractors its report allows, with n options: the template's own number (`options:`, 2 for the built-in
ones) or ``--options N`` for every template; chance is 1/n. Per template and value, A = questions it answers
and E = questions that may offer it as a distractor. A question is kept when its hash is below
min(1, E / ((n - 1) A)) for its answer,
and each allowed distractor is drawn when its own hash is below min(1, (n - 1) A / E) (the n - 1 lowest
relative to that bound; fewer: no item), so that each value is expected about n - 1 times a distractor per
time it is the answer. Reported per template: its n and chance, questions, items kept, and the option reader
on the uniform draw of the same questions and on the balanced one.

Run from the repository root::

    CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/mc_options.py [--out DIR] [--values 8] [--simulate]
        [--options N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from cxrvqa.core.prior import TRAIN, OptionModel, PriorItem, measure
from cxrvqa.qa.generate import _applies, _candidates, _digest, split_of
from cxrvqa.qa.programs import PROGRAMS, Ask
from cxrvqa.qa.study import study_view
from cxrvqa.qa.templates import builtin_templates
from cxrvqa.store import Store

ITEMS_SQL = (
    "SELECT template_id, answer, options, correct_option FROM current_qa_items "
    "WHERE answer_format = 'multiple_choice' ORDER BY item_id"
)


def build_iu(folder: Path) -> Path:
    data = os.environ.get("CXRVQA_DATA_DIR")
    if not data or not (Path(data) / "reports" / "iu_dev_reports.csv").is_file():
        sys.exit("error: give --out BUILD, or set CXRVQA_DATA_DIR to the folder holding reports/iu_dev_reports.csv")
    cli = Path(sys.executable).parent / "cxrvqa"
    subprocess.run(
        [
            str(cli),
            "build",
            "--reports",
            str(Path(data) / "reports" / "iu_dev_reports.csv"),
            "--report-format",
            "iu",
            "--stages",
            "reports,extract,qa",
            "--out",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return folder


def _alone(answer: str, options: list[str], extreme) -> bool:
    """Whether the answer is the only option of the extreme (max: longest, min: shortest) length."""
    lengths = [len(o) for o in options]
    return len(answer) == extreme(lengths) and lengths.count(len(answer)) == 1


def report(out: Path, n_values: int) -> None:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        rows = store.query(ITEMS_SQL)
        reader = {
            f.template_id: f
            for f in measure(store, "current_qa_items")
            if f.key == "options" and f.template_id is not None
        }
    by_template: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_template[row[0]].append(row)
    for template, items in sorted(by_template.items()):
        n_options = len(items[0][2])
        chance = 1 / n_options
        letters = Counter(letter for *_, letter in items)
        longest = sum(1 for _, answer, options, _ in items if _alone(answer, options, max))
        shortest = sum(1 for _, answer, options, _ in items if _alone(answer, options, min))
        answers, distractors = Counter(), Counter()
        for _, answer, options, _ in items:
            answers[answer] += 1
            distractors.update(o for o in options if o != answer)
        figure = reader.get(template)
        read = (
            (
                f"option reader {figure.accuracy:.3f} of {figure.n_items} held-out items "
                f"({figure.accuracy / chance:.2f}x chance)"
            )
            if figure
            else "option reader: no held-out items"
        )
        print(f"{template}: {len(items)} items, {n_options} options, chance {chance:.2f}; {read}")
        print("  letters: " + ", ".join(f"{k} {v / len(items):.2f}" for k, v in sorted(letters.items())))
        print(
            f"  answer the single longest option {longest / len(items):.2f}, the single shortest "
            f"{shortest / len(items):.2f}"
        )
        values = sorted(
            set(answers) | set(distractors),
            key=lambda v: (
                -abs(answers[v] / (answers[v] + distractors[v]) - chance) * (answers[v] + distractors[v]),
                v,
            ),
        )
        for value in values[:n_values]:
            share = answers[value] / (answers[value] + distractors[value])
            print(f"  {value:45s} answer {answers[value]:5d}  distractor {distractors[value]:5d}  share {share:.2f}")


def _questions(out: Path) -> tuple[list[tuple[str, str, tuple[str, ...], str, bytes]], dict[str, int]]:
    """(template, answer, allowed distractors, split, item hash) of every multiple-choice question of the
    build's current scene graphs, with the seed and split shares of its latest run; and each template's number
    of options."""
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        config = json.loads(store.query("SELECT config FROM runs ORDER BY started_at DESC LIMIT 1")[0][0])
        rows = store.query(
            "SELECT g.study_id, r.patient_id, g.graph FROM current_scene_graphs g "
            "JOIN current_reports r USING (study_id) ORDER BY g.study_id"
        )
    seed, splits = config.get("seed", 0), tuple(config.get("qa", {}).get("splits", {}).items())
    templates = [t for t in builtin_templates() if t.answer_format == "multiple_choice" and _applies(t, None)]
    found = []
    for study_id, patient_id, graph in rows:
        view, split = study_view(json.loads(graph), patient_id, ()), split_of(patient_id, seed, splits)
        for template in templates:
            prefix = "\x1f".join((template.id, study_id, "", ""))
            for args_text, args in _candidates(view, None, template):
                answer = PROGRAMS[template.program].fn(Ask(view, None, args, template))
                if answer is not None:
                    pool = tuple(d for d in dict.fromkeys(answer.distractors) if d != answer.text)
                    found.append((template.id, answer.text, pool, split, _digest(seed, prefix + args_text)))
    return found, {t.id: t.options for t in templates}


def _u(digest: bytes, value: str) -> float:
    return random.Random(digest + value.encode("utf-8")).random()


def _reader(items: list[tuple[str, str, tuple[str, ...], str]]) -> str:
    """The option reader (train -> held-out) on the items: accuracy and held-out count."""
    model = OptionModel(PriorItem(t, "multiple_choice", "", "{}", a, o, s) for t, a, o, s in items if s == TRAIN)
    credits = [model.credit(PriorItem(t, "multiple_choice", "", "{}", a, o, s)) for t, a, o, s in items if s != TRAIN]
    return f"{sum(credits) / len(credits):.3f} of {len(credits)}" if credits else "no held-out items"


def simulate(out: Path, options: int | None = None) -> None:
    """Per template, with its own number of options (or ``options`` for all): the uniform and the balanced draw."""
    questions, n_options = _questions(out)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    offers: dict[str, Counter[str]] = defaultdict(Counter)
    for template, answer, pool, _, _ in questions:
        answers[template][answer] += 1
        offers[template].update(pool)
    uniform, balanced = defaultdict(list), defaultdict(list)
    for template, answer, pool, split, digest in questions:
        n = options or n_options[template]
        if len(pool) < n - 1:
            continue
        uniform[template].append((template, answer, (*random.Random(digest).sample(pool, n - 1), answer), split))
        a, e = answers[template], offers[template]
        if _u(digest, "\x00answer") >= min(1.0, e[answer] / ((n - 1) * a[answer])):
            continue
        bound = {v: min(1.0, (n - 1) * a[v] / e[v]) for v in pool}
        drawn = sorted((_u(digest, v) / bound[v], v) for v in pool if bound[v] and _u(digest, v) < bound[v])
        if len(drawn) >= n - 1:
            balanced[template].append((template, answer, (*(v for _, v in drawn[: n - 1]), answer), split))
    for template in sorted(answers):
        total, n = sum(answers[template].values()), options or n_options[template]
        print(
            f"{template}: {n} options, chance {1 / n:.2f}; {total} questions; uniform draw "
            f"{len(uniform[template])} items, option reader "
            f"{_reader(uniform[template])}; balanced draw {len(balanced[template])} items, option reader "
            f"{_reader(balanced[template])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="a build folder (default: build the IU dev reports)")
    parser.add_argument("--values", type=int, default=8, help="option values listed per template")
    parser.add_argument("--simulate", action="store_true", help="also simulate a draw balanced over the dataset")
    parser.add_argument(
        "--options",
        type=int,
        choices=range(2, 6),
        metavar="N",
        help="--simulate with N options for every template (default: each template's own)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else build_iu(Path(tmp) / "iu")
        report(out, args.values)
        if args.simulate:
            simulate(out, args.options)


if __name__ == "__main__":
    main()
