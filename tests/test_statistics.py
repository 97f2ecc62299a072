"""Reblocking error bars and value formatting."""

import math

import numpy as np
import pytest

from qmczoo.engine.statistics import Estimate, format_value, reblock, reblocking_levels


def ar1_series(n, rho, sigma, seed):
    """Stationary AR(1): x_t = rho x_{t-1} + sqrt(1 - rho^2) sigma e_t, variance sigma^2."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=sigma * math.sqrt(1 - rho**2), size=n)
    x = np.empty(n)
    x[0] = rng.normal(scale=sigma)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + noise[t]
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reblock_iid_error_is_sigma_over_sqrt_n(seed):
    n, sigma = 2**14, 2.0
    x = np.random.default_rng(seed).normal(loc=-1.0, scale=sigma, size=n)
    est = reblock(x)
    assert isinstance(est, Estimate)
    assert est.n_samples == n and est.converged
    expected = sigma / math.sqrt(n)
    assert abs(est.error - expected) < 0.2 * expected, (est.error, expected)
    assert abs(est.naive_error - expected) < 0.05 * expected
    assert est.mean == pytest.approx(np.mean(x), abs=1e-12)
    assert abs(est.mean + 1.0) < 4 * expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reblock_ar1_error_matches_asymptotic_value(seed):
    n, rho, sigma = 2**17, 0.9, 1.5
    x = ar1_series(n, rho, sigma, seed)
    est = reblock(x)
    exact = math.sqrt(sigma**2 / n * (1 + rho) / (1 - rho))  # ~ 4.4 x the naive error
    assert est.converged
    assert est.error >= 3 * est.naive_error, (est.error, est.naive_error)
    assert abs(est.error - exact) < 0.3 * exact, (est.error, exact)
    assert est.block_size >= 16  # longer than the correlation time (1 + rho) / (1 - rho) = 19
    assert abs(est.mean) < 4 * exact


def test_reblocking_levels_halve_the_series():
    x = np.random.default_rng(3).normal(size=100)
    levels = reblocking_levels(x)
    sizes = [lv[0] for lv in levels]
    counts = [lv[2] for lv in levels]
    assert sizes == [1, 2, 4, 8, 16, 32]
    assert counts == [100, 50, 25, 12, 6, 3]
    assert levels[0][1] == pytest.approx(np.std(x, ddof=1) / 10, rel=1e-12)
    pairs = 0.5 * (x[0::2] + x[1::2])
    assert levels[1][1] == pytest.approx(np.std(pairs, ddof=1) / math.sqrt(50), rel=1e-12)


def test_reblock_edge_cases():
    empty = reblock([])
    assert empty.n_samples == 0 and math.isnan(empty.mean) and math.isnan(empty.error)
    one = reblock([2.5])
    assert one.mean == 2.5 and math.isnan(one.error) and not one.converged
    constant = reblock(np.full(64, 3.0))
    assert constant.mean == 3.0 and constant.error == 0.0
    with_nan = reblock([1.0, np.nan, 3.0, np.inf, 2.0])
    assert with_nan.n_samples == 3 and with_nan.mean == 2.0


@pytest.mark.parametrize(
    "mean, error, text",
    [
        (-1.17442, 0.00012, "-1.17442(12)"),
        (1.5, 0.25, "1.50(25)"),
        (-8.0705, 0.0031, "-8.0705(31)"),
        (123.456, 2.3, "123.5(23)"),
        (0.5, float("nan"), "0.500000"),
        (0.5, 0.0, "0.500000"),
    ],
)
def test_format_value(mean, error, text):
    assert format_value(mean, error) == text


def test_estimate_str_uses_format_value():
    est = Estimate(mean=-1.17442, error=0.00012, block_size=8, n_samples=1000, converged=True,
                   naive_error=0.00005)
    assert str(est) == "-1.17442(12)"
