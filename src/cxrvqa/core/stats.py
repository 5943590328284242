"""Binomial proportions with Wilson 95% intervals: what a reviewed sample says about the dataset.

Shared by the review accuracy (audit, dataset card) and bench/item_accuracy.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The two-sided 95% normal quantile.
Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927): unlike the normal interval it stays
    inside [0, 1] and is honest for small samples and shares near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Proportion:
    """`k` of `n` with its share and Wilson 95% interval (share None when n is 0)."""

    k: int
    n: int
    share: float | None
    low: float
    high: float

    @classmethod
    def of(cls, k: int, n: int) -> "Proportion":
        low, high = wilson(k, n)  # kept unrounded: rounding twice would move shown bounds (6.149% -> 6.2%)
        return cls(k, n, k / n if n else None, low, high)

    def text(self) -> str:
        """'83.3% [55.2%, 95.3%] (10/12)', or 'n/a (0 items)'."""
        if not self.n:
            return "n/a (0 items)"
        return f"{100 * self.share:.1f}% [{100 * self.low:.1f}%, {100 * self.high:.1f}%] ({self.k}/{self.n})"
