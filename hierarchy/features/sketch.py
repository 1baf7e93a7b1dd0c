"""A log-bucket quantile sketch (DDSketch, Masson et al., VLDB 2019) for non-negative values.

Bounded memory: at most ``log(max / min_value) / log(gamma)`` buckets (about 800 for values
from 1e-4 to 1e3 at 1 % accuracy); O(1) work per value. For a value ``x > min_value`` the
returned quantile is within a factor ``1 +- alpha`` of the true order statistic.
"""

from __future__ import annotations

import math

from hierarchy.features.spec import SKETCH_ALPHA, SKETCH_MIN


class LogSketch:
    """Quantiles of a stream of non-negative floats within relative error ``alpha``."""

    __slots__ = ("alpha", "min_value", "_gamma", "_log_gamma", "bins", "zero", "n")

    def __init__(self, alpha: float = SKETCH_ALPHA, min_value: float = SKETCH_MIN) -> None:
        if not 0.0 < alpha < 1.0 or min_value <= 0.0:
            raise ValueError("need 0 < alpha < 1 and min_value > 0")
        self.alpha = alpha
        self.min_value = min_value
        self._gamma = (1.0 + alpha) / (1.0 - alpha)
        self._log_gamma = math.log(self._gamma)
        self.bins: dict[int, int] = {}
        self.zero = 0
        self.n = 0

    def add(self, x: float) -> None:
        """Count one value (values <= ``min_value``, negatives included, count as 0)."""
        self.n += 1
        if x <= self.min_value:
            self.zero += 1
            return
        k = math.ceil(math.log(x) / self._log_gamma)
        self.bins[k] = self.bins.get(k, 0) + 1

    def quantile(self, q: float) -> float:
        """The order statistic of rank ``floor(q (n - 1))``, within relative error ``alpha``
        (0.0 for an empty sketch)."""
        if self.n == 0:
            return 0.0
        rank = math.floor(q * (self.n - 1))
        if rank < self.zero:
            return 0.0
        cum = self.zero
        for k in sorted(self.bins):
            cum += self.bins[k]
            if cum > rank:
                return 2.0 * self._gamma**k / (self._gamma + 1.0)
        return 2.0 * self._gamma ** max(self.bins) / (self._gamma + 1.0)
