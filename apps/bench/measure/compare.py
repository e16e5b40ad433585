"""*Pure*: when do two sets of repeats differ? The rule every verdict of the report uses.

Two backends differ on a criterion only when both hold:
1. **the spread says so**: the percentile-bootstrap interval (CONFIDENCE, seeded, so a
   report is reproducible) of the difference of their medians excludes zero;
2. **the effect is large enough**: |difference of medians| >= the criterion's minimum
   effect, which is the larger of MIN_EFFECT_REL of the best median, the criterion's own
   absolute floor, and the noise floor measured in the same run (the spread of cells where
   the queue cannot matter).
With fewer than MIN_REPEATS samples on either side there is no verdict: "cannot decide".
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_REPEATS = 3
CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_EFFECT_REL = 0.10  # a difference under 10 % of the best is not worth a choice
SEED = 20261204


@dataclass(frozen=True)
class Samples:
    """One backend's values of one criterion, one per repeat."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    @property
    def runs(self) -> int:
        return len(self.values)


def samples(values: Sequence[float | None]) -> Samples | None:
    """The non-missing values as Samples, or None when there are none."""
    kept = tuple(float(v) for v in values if v is not None)
    return Samples(kept) if kept else None


def bootstrap_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Percentile-bootstrap CONFIDENCE interval of median(a) - median(b)."""
    rng = random.Random(SEED)
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(RESAMPLES)
    )
    tail = (1.0 - CONFIDENCE) / 2
    return diffs[int(tail * (RESAMPLES - 1))], diffs[int((1 - tail) * (RESAMPLES - 1))]


def min_effect(best: float, *, abs_floor: float = 0.0, noise_rel: float = 0.0) -> float:
    """The smallest difference that counts, in the criterion's unit."""
    return max(MIN_EFFECT_REL * abs(best), abs_floor, noise_rel * abs(best))


def differs(a: Samples, b: Samples, *, effect: float) -> bool | None:
    """True: a and b differ (both conditions above); False: they do not; None: too few
    repeats to tell."""
    if a.runs < MIN_REPEATS or b.runs < MIN_REPEATS:
        return None
    if abs(a.median - b.median) < effect:
        return False
    lo, hi = bootstrap_interval(a.values, b.values)
    return lo > 0 or hi < 0


def relative_spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of `values`: the noise floor of a set of like cells."""
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else None
