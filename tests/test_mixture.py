"""The corrected stance mix at the edges (issue 18): coverage of the 95% intervals by
simulation where a share's true value is 0-5% or 95-100%, for classifiers 60-90% accurate and
windows of 30-300 articles, and intervals that stay informative there."""

from __future__ import annotations

import numpy as np
import pytest

from estimation import mixture

ACCURACIES = (0.6, 0.75, 0.9)
SIZES = (30, 100, 300)
REPS = 120


def confusion(accuracy: float) -> np.ndarray:
    c = np.full((3, 3), (1 - accuracy) / 2)
    np.fill_diagonal(c, accuracy)
    return c


def simulate(edge: str, accuracy: float, n: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """(true share of class 0, predicted masses) for one window."""
    share = rng.uniform(0.0, 0.05) if edge == "low" else rng.uniform(0.95, 1.0)
    split = rng.uniform(0.2, 0.8)
    mix = np.array([share, (1 - share) * split, (1 - share) * (1 - split)])
    truth = rng.choice(3, size=n, p=mix)
    c = confusion(accuracy)
    predicted = (rng.random(n)[:, None] < np.cumsum(c[truth], axis=1)).argmax(axis=1)
    return share, np.bincount(predicted, minlength=3).astype(float)


@pytest.mark.parametrize("edge", ["low", "high"])
def test_intervals_cover_the_true_share_at_the_edges(edge: str) -> None:
    rng = np.random.default_rng(18)
    coverage = {}
    for accuracy in ACCURACIES:
        c = confusion(accuracy)
        amplification = float(np.abs(np.linalg.inv(c.T)).sum(axis=1).max())
        for n in SIZES:
            hits = 0
            for _ in range(REPS):
                share, mass = simulate(edge, accuracy, n, rng)
                t_hat = mixture.mle(mass, c)
                low, high = mixture.interval(mass, 0, c, 1.0, t_hat)
                hits += low <= share <= high
                assert 0.0 <= low <= t_hat[0] <= high <= 1.0
                # informative: never wider than the raw share's interval amplified by the
                # correction, and far from the whole scale once there are 100 articles
                raw_low, raw_high = mixture.interval(mass, 0)
                assert high - low <= amplification * (raw_high - raw_low) + 1e-6
                assert n < 100 or high - low < 0.5
            coverage[(accuracy, n)] = hits / REPS
    pooled = float(np.mean(list(coverage.values())))
    assert 0.93 <= pooled <= 0.97, coverage
    # each cell within Monte Carlo noise of 95% (SE about 2 points at 120 windows)
    assert min(coverage.values()) >= 0.88, coverage


def test_a_share_at_zero_is_reported_with_an_upper_bound_not_as_nothing() -> None:
    """The demo's case: a corrected share clipped to 0 used to get the interval [0, 98%]."""
    c = confusion(0.7)
    mass = c.T @ np.array([0.0, 0.45, 0.55]) * 80  # no pro-Russian articles at all, 80 in all
    est = mixture.estimate(mass, c, 1.0)
    assert est.shares[0] == pytest.approx(0.0, abs=1e-3)
    low, high = est.intervals[0]
    assert low == 0.0 and 0.01 < high < 0.2
    # a larger window narrows it
    assert mixture.estimate(mass * 4, c, 1.0).intervals[0][1] < high


def test_dispersion_widens_the_interval() -> None:
    mass = np.array([30.0, 50.0, 20.0])
    narrow = mixture.estimate(mass, confusion(0.8), 0.5).intervals[2]
    wide = mixture.estimate(mass, confusion(0.8), 2.0).intervals[2]
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
