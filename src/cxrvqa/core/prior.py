"""The question-only baseline: how much of a dataset's answers the question alone gives away.

A "model" that never sees the image learns, on the train split, the majority answer of each question, and
answers the held-out items (every other split) with it. Three keys say what "the question" is:
- `question`: the normalised question text (lower case, punctuation and spacing folded);
- `arguments`: the template and the arguments the question shows (e.g. the finding; not an argument that is
  the answer, as the finding of "Which of these findings is present?");
- `options`: multiple choice only, a model that reads the question and its options: it picks the option whose
  value was most often the correct one among the times train showed it (per template, refined per question
  text where train asked that question with that option; `OptionModel`). It sees what an option-only
  model learns, e.g. that a finding shown 500 times as a distractor and never as the answer is not the
  answer, where a count of correct answers alone would not.
An item whose key train never saw gets chance credit (1/2 yes/no, 1/number of options); ties between top
answers share the credit (the expected accuracy of a random pick). Chance is the mean of the items' (a
template asks with 2-5 options).
Accuracy is reported per answer format and per template beside chance (VQA-CP's language prior; VQA v2
rebuilt its answers in complementary pairs for this reason).

Pure: rows in, figures out. The QA stage stores the build's figures (`qa_prior`); status, the audit and the
dataset checks read them (the checks: by question text and by template + arguments only); every export
computes them again on what it contains.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.core.provenance import code_digest
from cxrvqa.store import Store

KEYS = ("question", "arguments", "options")
CHANCE = {"yes_no": 0.5, "multiple_choice": 0.25}  # multiple choice: with four options
TRAIN = "train"
#: Questions (arguments) listed per template, the most predictable first.
WORST = 5
_FOLD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class PriorItem:
    template_id: str
    answer_format: str
    question: str
    arguments: str  # JSON of the arguments the question shows
    answer: str
    options: tuple[str, ...] | None
    split: str


@dataclass(frozen=True)
class PriorFigure:
    key: str
    answer_format: str
    template_id: str | None  # None: the whole answer format
    n_items: int  # held-out items
    accuracy: float
    chance: float | None
    worst: tuple[tuple[str, int, float], ...] = ()  # (arguments, items, accuracy): the template's worst questions

    def as_row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "answer_format": self.answer_format,
            "template_id": self.template_id,
            "n_items": self.n_items,
            "accuracy": self.accuracy,
            "chance": self.chance,
            "worst": json.dumps([list(w) for w in self.worst]),
        }

    @property
    def excess(self) -> float:
        """Accuracy above chance (above 0 for open answers)."""
        return self.accuracy - (self.chance or 0.0)


@lru_cache(maxsize=1)
def baseline_code_hash() -> str:
    """Digest of this module: a build whose stored figures another version computed measures them again."""
    return code_digest(__file__)[:16]


@lru_cache(maxsize=65536)
def normalise(question: str) -> str:
    """Question text as a question-only model reads it (memoised: templates repeat their question texts)."""
    return " ".join(_FOLD.sub(" ", question.lower()).split())


def shown_arguments(arguments: str, hidden: Iterable[str]) -> str:
    """The arguments JSON without the ones that are the answer (`hidden`)."""
    hidden = set(hidden)
    if not hidden:
        return arguments
    return json.dumps({k: v for k, v in json.loads(arguments).items() if k not in hidden}, sort_keys=True)


def _majority(counts: Counter[str]) -> frozenset[str]:
    """The answers a question got most often in train (ties share the majority)."""
    best = max(counts.values(), default=0)
    return frozenset(c for c, n in counts.items() if n == best)


def _credit(top: frozenset[str] | None, answer: str, fallback: float) -> float:
    """The majority answer's credit: ``fallback`` (chance) when train never saw the question. The majority is
    found once per question (`_majority`), not per held-out item: an open question has as many answers as items."""
    if not top:
        return fallback
    return 1 / len(top) if answer in top else 0.0


def _key_of(key: str) -> Callable[[PriorItem], tuple[str, ...]]:
    if key == "arguments":
        return lambda item: (item.template_id, item.arguments)
    return lambda item: (normalise(item.question),)


class OptionModel:
    """What a model that sees the question and its options, never the image, learns from the train items: per
    template and option value, how often the value was the answer among the times it was shown (`shown`,
    `correct`), and the same per normalised question text."""

    def __init__(self, train: Iterable[PriorItem] = ()) -> None:
        self.shown: Counter[tuple[str, ...]] = Counter()
        self.correct: Counter[tuple[str, ...]] = Counter()
        for item in train:
            self.add(item)

    def add(self, item: PriorItem, n: int = 1) -> None:
        """Learn from a train item (seen ``n`` times)."""
        question = normalise(item.question)
        for option in item.options or ():
            for key in ((item.template_id, option), (item.template_id, question, option)):
                self.shown[key] += n
                self.correct[key] += n * (option == item.answer)

    def scores(self, item: PriorItem) -> dict[str, float]:
        """Per option of ``item``: its share of being the answer, smoothed towards chance (1/number of options,
        as if shown once more and right by chance) per template, then towards the template's share per question
        text. An option train never showed scores chance."""
        options = item.options or ()
        question, chance = normalise(item.question), 1 / max(1, len(options))
        out = {}
        for option in options:
            by_template, by_question = (item.template_id, option), (item.template_id, question, option)
            share = (self.correct[by_template] + chance) / (self.shown[by_template] + 1)
            out[option] = (self.correct[by_question] + share) / (self.shown[by_question] + 1)
        return out

    def credit(self, item: PriorItem) -> float:
        """1 when the answer scores highest alone, 1/k when it shares the top with k - 1 others, else 0."""
        scores = self.scores(item)
        best = max(scores.values(), default=0.0)
        top = [option for option, score in scores.items() if score == best]
        return 1 / len(top) if item.answer in top else 0.0


class _Scored:
    """The held-out items of a group: how many, their credit, chance and credit above chance (summed in the order
    the distinct items come, each with its count)."""

    __slots__ = ("n", "credit", "chance", "excess")

    def __init__(self) -> None:
        self.n, self.credit, self.chance, self.excess = 0, 0, 0, 0

    def add(self, credit: float, chance: float, n: int) -> None:
        self.n += n
        self.credit += credit * n
        self.chance += chance * n
        self.excess += (credit - chance) * n


def _figure(
    key: str, fmt: str, template: str | None, scored: _Scored, worst: tuple[tuple[str, int, float], ...] = ()
) -> PriorFigure:
    """A figure from its held-out items: chance is their mean (multiple choice: 1/number of options, which a
    template sets); None for open answers."""
    chance = scored.chance / scored.n if fmt in CHANCE else None
    return PriorFigure(key, fmt, template, scored.n, scored.credit / scored.n, chance, worst)


def _question_of(item: PriorItem, key: str) -> str:
    """How a template's worst questions are named: the arguments the question shows, or for the options reader
    the set of options (what it reads; a choice template's arguments are the answer, hidden)."""
    if key == "options" and item.options:
        return "[" + ", ".join(sorted(item.options)) + "]"
    return item.arguments


def baseline(items: Iterable[PriorItem]) -> list[PriorFigure]:
    """Per key: one figure per answer format, then one per template (formats and templates in name order).
    The `options` key covers multiple-choice items only (OptionModel). Nothing without held-out items."""
    counted = list(Counter(items).items())
    return baseline_of(
        lambda: ((i, n) for i, n in counted if i.split == TRAIN),
        lambda: ((i, n) for i, n in counted if i.split != TRAIN),
    )


def baseline_of(
    train: Callable[[], Iterable[tuple[PriorItem, int]]], held_out: Callable[[], Iterable[tuple[PriorItem, int]]]
) -> list[PriorFigure]:
    """`baseline` over a stream of the distinct train items with their counts and one of the held-out items, each
    read once: what it keeps grows with the distinct questions and options, not with the items (a 100k-study
    build's two million items are 300 thousand distinct ones)."""
    counts: dict[str, dict[tuple[str, ...], Counter[str]]] = {key: defaultdict(Counter) for key in KEYS[:2]}
    key_of = {key: _key_of(key) for key in counts}  # once, not per item
    reader = OptionModel()
    for item, n in train():
        for key, table in counts.items():
            table[key_of[key](item)][item.answer] += n
        reader.add(item, n)
    majority = {key: {q: _majority(c) for q, c in table.items()} for key, table in counts.items()}
    groups = {key: (defaultdict(_Scored), defaultdict(_Scored)) for key in KEYS}
    for item, n in held_out():
        chance = 1 / len(item.options) if item.options else CHANCE.get(item.answer_format, 0.0)
        for key, (by_template, by_question) in groups.items():
            if key == "options":
                if not item.options:
                    continue
                credit = reader.credit(item)
            else:
                credit = _credit(majority[key].get(key_of[key](item)), item.answer, chance)
            by_template[(item.template_id, item.answer_format)].add(credit, chance, n)
            by_question[(item.template_id, _question_of(item, key))].add(credit, chance, n)
    return combined(figure for key in KEYS for figure in _template_figures(key, *groups[key]))


def _template_figures(
    key: str, by_template: dict[tuple[str, str], _Scored], by_question: dict[tuple[str, str], _Scored]
) -> list[PriorFigure]:
    """A key's figures per template, each with its worst questions."""
    figures = []
    for (template, fmt), scored in sorted(by_template.items()):
        questions = sorted(
            ((args, q.n, q.credit / q.n, q.excess) for (t, args), q in by_question.items() if t == template),
            key=lambda q: (-q[3], q[0]),
        )
        worst = tuple((args, n, round(acc, 4)) for args, n, acc, _ in questions[:WORST])
        figures.append(_figure(key, fmt, template, scored, worst))
    return figures


def combined(figures: Iterable[PriorFigure]) -> list[PriorFigure]:
    """Every figure of a dataset from its per-template ones (any per-format figure among them is ignored): per key,
    one per answer format, then one per template (formats and templates in name order). A per-format figure is its
    templates' held-out items together, summed from their figures (accuracy and chance x items) in template order,
    so that a template edit needs the baseline of its own items only: the other templates' stored figures give the
    same sums (`cxrvqa.qa.stage`; the `question` key's majorities are per text, so only where no other template
    asks one of its question texts)."""
    per_template = sorted(
        (f for f in figures if f.template_id is not None),
        key=lambda f: (KEYS.index(f.key), f.template_id or "", f.answer_format),
    )
    out = []
    for key in KEYS:
        of_key = [f for f in per_template if f.key == key]
        for fmt in sorted({f.answer_format for f in of_key}):
            scored = _Scored()
            for f in of_key:
                if f.answer_format == fmt:
                    scored.add(f.accuracy, f.chance or 0.0, f.n_items)
            out.append(_figure(key, fmt, None, scored))
        out.extend(of_key)
    return out


#: The fields a baseline reads of each item, over a relation of items (`x`) with the build's templates (`t`): their
#: hidden arguments read from the definition once per template, not per item (half of the query at 10k studies).
ITEM_SQL = """
SELECT x.template_id, x.answer_format, x.question, x.arguments, x.answer, x.options, x.split,
       coalesce(t.hidden, []) AS hidden
FROM {source} x LEFT JOIN (SELECT template_id,
                                  CAST(json_extract(any_value(definition), '$.hidden_arguments') AS VARCHAR[]) AS hidden
                           FROM current_qa_templates GROUP BY template_id) t USING (template_id)"""


def prior_items(rows: Iterable[tuple]) -> Iterable[PriorItem]:
    """PriorItems from the rows of ITEM_SQL."""
    for template, fmt, question, arguments, answer, options, split, hidden in rows:
        yield PriorItem(
            template,
            fmt,
            question,
            shown_arguments(arguments, hidden),
            answer,
            tuple(options) if options is not None else None,
            split,
        )


def headline(figures: Iterable[PriorFigure]) -> list[PriorFigure]:
    """The per-format figures, question key then arguments key then options (multiple choice)."""
    return sorted((f for f in figures if f.template_id is None), key=lambda f: (f.answer_format, KEYS.index(f.key)))


def strongest(figures: Iterable[PriorFigure], n: int | None = None) -> list[PriorFigure]:
    """Per template, its figure of the key with the highest accuracy above chance (for multiple choice also reading
    the options); the strongest prior first."""
    best: dict[str, PriorFigure] = {}
    for figure in figures:
        if figure.template_id is not None:
            current = best.get(figure.template_id)
            if current is None or figure.excess > current.excess:
                best[figure.template_id] = figure
    ranked = sorted(best.values(), key=lambda f: (-f.excess, f.template_id or ""))
    return ranked[:n] if n is not None else ranked


def stored_prior(store: Store, source: str = "current_qa_prior") -> list[PriorFigure]:
    """The figures the QA stage stored for the current dataset (none before a QA stage of this version)."""
    return [
        PriorFigure(
            key, fmt, template, n, accuracy, chance, tuple((args, k, acc) for args, k, acc in json.loads(worst))
        )
        for key, fmt, template, n, accuracy, chance, worst in store.query(
            f"SELECT key, answer_format, template_id, n_items, accuracy, chance, worst FROM {source} "
            "ORDER BY answer_format, template_id NULLS FIRST, key"
        )
    ]


def measure(store: Store, source: str, params: Sequence[Any] = ()) -> list[PriorFigure]:
    """The baseline of the items of a relation (`current_qa_items`, an export's `read_parquet(...)`; ``params``:
    the values of its placeholders), streamed from the database: its distinct train items with their counts, in any
    order (what they give is counts: integers), then its held-out ones in a fixed order (their credits are summed as
    floats). Sorting the train items took 2.3 of the 5.8 s at 100k synthetic studies."""
    items = f"SELECT *, count(*) AS n FROM ({ITEM_SQL.format(source=source)}) WHERE split "
    return baseline_of(
        lambda: _streamed(store, items + "= ? GROUP BY ALL", params),
        lambda: _streamed(store, items + "IS DISTINCT FROM ? GROUP BY ALL ORDER BY ALL", params),
    )


def _streamed(store: Store, sql: str, params: Sequence[Any], batch: int = 20_000) -> Iterator[tuple[PriorItem, int]]:
    """The query's distinct items and their counts, batch by batch as DuckDB streams them (not a materialised
    result)."""
    for record_batch in store.con.sql(sql, params=[*params, TRAIN]).to_arrow_reader(batch):
        columns = record_batch.to_pydict()
        counts = columns.pop("n")
        yield from zip(prior_items(zip(*columns.values(), strict=True)), counts, strict=True)


#: Columns of `format_rows`.
FORMAT_COLUMNS = (
    "answer format",
    "held-out items",
    "by question text",
    "by template + arguments",
    "reading the options",
    "chance",
)


def format_rows(figures: Iterable[PriorFigure]) -> list[list[str]]:
    """One row per answer format (FORMAT_COLUMNS): its accuracy under each key, beside chance."""
    rows: dict[str, dict[str, PriorFigure]] = {}
    for figure in headline(figures):
        rows.setdefault(figure.answer_format, {})[figure.key] = figure
    out = []
    for fmt, by_key in rows.items():
        first = next(iter(by_key.values()))
        out.append(
            [
                fmt,
                str(first.n_items),
                *(f"{by_key[k].accuracy:.3f}" if k in by_key else "" for k in KEYS),
                "" if first.chance is None else f"{first.chance:.2f}",
            ]
        )
    return out
