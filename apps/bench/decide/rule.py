"""*Pure*: when do two sets of repeats differ? The rule every verdict of the report uses.

Each backend's figure is the median of its repeats (a tail is judged on the median of its
repeats' p99, so one lucky repeat cannot hide two bad ones). Two backends differ on a
criterion only when both hold:
1. **beyond the spread**: |difference of medians| > SPREAD_K x the larger median absolute
   deviation (MAD) of the two sets of repeats (MAD x 1.48 estimates a standard deviation,
   so 3 MAD is about 2 sigma, robust to one wild repeat);
2. **large enough to matter**: |difference of medians| >= the criterion's minimum effect,
   the largest of MIN_EFFECT_REL of the best median, the criterion's absolute floor and
   the noise floor measured in the same run (the spread of cells where the queue cannot
   matter).
With fewer than MIN_REPEATS repeats on either side there is no verdict: "cannot decide".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_REPEATS = 3
SPREAD_K = 3.0  # differences within 3 MAD of the repeats are spread, not a difference
MIN_EFFECT_REL = 0.10  # a difference under 10 % of the best is not worth a choice


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


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median."""
    mid = statistics.median(values)
    return statistics.median(abs(v - mid) for v in values)


def min_effect(best: float, *, abs_floor: float = 0.0, noise_rel: float = 0.0) -> float:
    """The smallest difference that counts, in the criterion's unit."""
    return max(MIN_EFFECT_REL * abs(best), abs_floor, noise_rel * abs(best))


def differs(a: Samples, b: Samples, *, effect: float) -> bool | None:
    """True: a and b differ (both conditions above); False: they do not; None: too few
    repeats to tell."""
    if a.runs < MIN_REPEATS or b.runs < MIN_REPEATS:
        return None
    gap = abs(a.median - b.median)
    return gap >= effect and gap > SPREAD_K * max(mad(a.values), mad(b.values))


def relative_spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of `values`: the noise floor of a set of like cells."""
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else None
