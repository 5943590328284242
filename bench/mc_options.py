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
(`cxrvqa.prior.OptionModel`, train -> held-out) and its ratio to chance.

Run from the repository root::

    CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/mc_options.py [--out DIR] [--values 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from cxrvqa.prior import measure
from cxrvqa.store import Store

ITEMS_SQL = ("SELECT template_id, answer, options, correct_option FROM current_qa_items "
             "WHERE answer_format = 'multiple_choice' ORDER BY item_id")


def build_iu(folder: Path) -> Path:
    data = os.environ.get("CXRVQA_DATA_DIR")
    if not data or not (Path(data) / "reports" / "iu_dev_reports.csv").is_file():
        sys.exit("error: give --out BUILD, or set CXRVQA_DATA_DIR to the folder holding reports/iu_dev_reports.csv")
    cli = Path(sys.executable).parent / "cxrvqa"
    subprocess.run([str(cli), "build", "--reports", str(Path(data) / "reports" / "iu_dev_reports.csv"),
                    "--report-format", "iu", "--stages", "reports,extract,qa", "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def _alone(answer: str, options: list[str], extreme) -> bool:
    """Whether the answer is the only option of the extreme (max: longest, min: shortest) length."""
    lengths = [len(o) for o in options]
    return len(answer) == extreme(lengths) and lengths.count(len(answer)) == 1


def report(out: Path, n_values: int) -> None:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        rows = store.query(ITEMS_SQL)
        reader = {f.template_id: f for f in measure(store, "current_qa_items")
                  if f.key == "options" and f.template_id is not None}
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
        read = (f"option reader {figure.accuracy:.3f} of {figure.n_items} held-out items "
                f"({figure.accuracy / chance:.2f}x chance)") if figure else "option reader: no held-out items"
        print(f"{template}: {len(items)} items, {n_options} options, chance {chance:.2f}; {read}")
        print("  letters: " + ", ".join(f"{k} {v / len(items):.2f}" for k, v in sorted(letters.items())))
        print(f"  answer the single longest option {longest / len(items):.2f}, the single shortest "
              f"{shortest / len(items):.2f}")
        values = sorted(set(answers) | set(distractors), key=lambda v: (
            -abs(answers[v] / (answers[v] + distractors[v]) - chance) * (answers[v] + distractors[v]), v))
        for value in values[:n_values]:
            share = answers[value] / (answers[value] + distractors[value])
            print(f"  {value:45s} answer {answers[value]:5d}  distractor {distractors[value]:5d}  share {share:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="a build folder (default: build the IU dev reports)")
    parser.add_argument("--values", type=int, default=8, help="option values listed per template")
    args = parser.parse_args()
    if args.out is not None:
        report(args.out, args.values)
        return
    with tempfile.TemporaryDirectory() as tmp:
        report(build_iu(Path(tmp) / "iu"), args.values)


if __name__ == "__main__":
    main()
