"""Error bars for correlated Monte Carlo time series by reblocking.

Successive VMC samples are correlated, so the naive standard error of the mean is too small.
Reblocking (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461, 1989) averages neighbouring
samples in pairs, level after level; once blocks are longer than the correlation time the
standard error stops growing. The level is chosen by the criterion of Lee, Needs & Towler
(Phys. Rev. B 84, 205206, 2011): the smallest block length B with
``B^3 > 2 n (se_B / se_1)^4``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Mean of a series with its reblocked standard error.

    Attributes:
      mean, error: the mean and its standard error.
      block_size: samples per block at the chosen level.
      n_samples: length of the series.
      converged: False if no level met the criterion (the error is then a lower bound).
      naive_error: standard error ignoring correlations.
    """

    mean: float
    error: float
    block_size: int
    n_samples: int
    converged: bool
    naive_error: float

    def __str__(self) -> str:
        return format_value(self.mean, self.error)


def reblocking_levels(x) -> list[tuple[int, float, int]]:
    """``[(block_size, standard_error, n_blocks), ...]`` for block sizes 1, 2, 4, ..."""
    x = np.asarray(x, dtype=np.float64)
    levels, size = [], 1
    while x.size >= 2:
        se = np.std(x, ddof=1) / np.sqrt(x.size)
        levels.append((size, float(se), int(x.size)))
        n = x.size // 2 * 2
        x = 0.5 * (x[:n:2] + x[1:n:2])
        size *= 2
    return levels


def reblock(x) -> Estimate:
    """Mean and autocorrelation-aware standard error of the series ``x`` ``[T]``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), 1, 0, False, float("nan"))
    mean = float(np.mean(x))
    if x.size < 2:
        return Estimate(mean, float("nan"), 1, int(x.size), False, float("nan"))
    levels = reblocking_levels(x)
    se0 = levels[0][1]
    for size, se, _ in levels:
        if se0 == 0 or size**3 > 2 * x.size * (se / se0) ** 4:
            return Estimate(mean, se, size, int(x.size), True, se0)
    usable = [lv for lv in levels if lv[2] >= 8] or levels[:1]
    size, se, _ = max(usable, key=lambda lv: lv[1])
    return Estimate(mean, se, size, int(x.size), False, se0)


def format_value(mean: float, error: float) -> str:
    """``-1.17442(12)``-style string: the error in units of the last shown digit."""
    if not np.isfinite(error) or error <= 0:
        return f"{mean:.6f}"
    digits = max(0, int(-np.floor(np.log10(error))) + 1)
    scaled = int(round(error * 10**digits))
    return f"{mean:.{digits}f}({scaled})"
