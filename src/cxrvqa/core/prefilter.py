"""Compiled patterns with a cheap test before the search: the literal words one of which every match
contains, read from the pattern itself (patterns stay data). A text holding none of them is not searched,
so the answer is the pattern's own; only its cost changes (a substring test is ~50x cheaper than a search
of an alternation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

try:  # Python 3.11+
    from re import _constants as _ops, _parser as _parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as _ops  # type: ignore[no-redef]
    import sre_parse as _parse  # type: ignore[no-redef]

_REPEATS = {_ops.MAX_REPEAT, _ops.MIN_REPEAT, getattr(_ops, "POSSESSIVE_REPEAT", _ops.MAX_REPEAT)}


@dataclass(frozen=True)
class Guarded:
    """A compiled pattern and the literals one of which each of its matches contains (None: none known).
    For a pattern that ignores case the literals are lowercase ASCII and only ASCII texts are tested."""

    pattern: re.Pattern[str]
    literals: tuple[str, ...] | None
    folded: bool = False

    def may_match(self, text: str) -> bool:
        if self.literals is not None and self.folded:
            if not text.isascii():
                return True
            text = text.lower()
        return holds_one(text, self.literals)

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.may_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text) if self.may_match(text) else iter(())


def guarded(pattern: re.Pattern[str]) -> Guarded:
    literals = required_literals(pattern)
    if literals is not None and pattern.flags & re.IGNORECASE:
        if not all(literal.isascii() for literal in literals):  # "ſ" matches "s" when case is ignored
            return Guarded(pattern, None)
        return Guarded(pattern, _minimal([literal.lower() for literal in literals]), folded=True)
    return Guarded(pattern, literals)


def holds_one(text: str, literals: tuple[str, ...] | None) -> bool:
    """Whether the text holds one of the literals (None: none known, so it may match)."""
    return literals is None or any(literal in text for literal in literals)


def literals_of_any(patterns: Iterable[re.Pattern[str]]) -> tuple[str, ...] | None:
    """Literals one of which every match of any of the patterns contains, for a text searched as it is: a text
    holding none of them matches none of the patterns, and a caller that searches many patterns in turn skips them
    all with one test. None when one of them has no known literals or ignores case."""
    words: list[str] = []
    for pattern in patterns:
        literals = None if pattern.flags & re.IGNORECASE else required_literals(pattern)
        if literals is None:
            return None
        words += literals
    return _minimal(words)


def required_literals(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Non-empty literals one of which every match of the pattern contains; None when none are known."""
    return _best(_candidates(_parse.parse(pattern.pattern, pattern.flags)))


def _best(candidates: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The most selective candidate: the longest shortest literal, then the fewest literals."""
    return max(candidates, key=lambda c: (min(len(w) for w in c), -len(c)), default=None)


def _minimal(literals: list[str]) -> tuple[str, ...]:
    """The literals without those that hold another ("hips" holds "hip": a text with it has "hip")."""
    unique = list(dict.fromkeys(literals))
    return tuple(w for w in unique if not any(v != w and v in w for v in unique))


def _candidates(sequence) -> list[tuple[str, ...]]:  # noqa: ANN001 (a parsed sre SubPattern)
    """Sets of literals (each set: one of them occurs) that every match of a parsed sequence contains."""
    found: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, av in sequence:
        if op is _ops.LITERAL:
            run.append(chr(av))
            continue
        if run:
            found.append(("".join(run),))
            run = []
        if op is _ops.SUBPATTERN and not av[1] and not av[2]:  # a group without flags of its own
            found += _candidates(av[3])
        elif op in _REPEATS and av[0] >= 1:
            found += _candidates(av[2])
        elif op is getattr(_ops, "ATOMIC_GROUP", None):
            found += _candidates(av)
        elif op is _ops.BRANCH:
            options = [_best(_candidates(alternative)) for alternative in av[1]]
            if all(options):
                found.append(_minimal([w for option in options for w in option]))
    if run:
        found.append(("".join(run),))
    return found
