"""The true stance mix behind a window's classifier output, with intervals that hold at 0 and 1.

A classifier that is right 70% of the time dilutes every mix towards the middle: what it shows
is ``q = C^T t``, where ``t`` is the true mix and ``C`` the confusion matrix (rows: true class,
columns: predicted share). Undoing that by solving ``C^T t = m`` and clipping the negative
shares to zero (what we did first) gives a point estimate, but its delta-method interval breaks
at the edges: a corrected share near 0 with a large variance has an effective sample size near
zero, and its Jeffreys interval becomes [0, 1].

Here ``t`` is the constrained maximum-likelihood estimate (shares >= 0, sum 1) under the
quasi-multinomial model of the shift test: the window's predicted masses ``m`` (n articles)
have log-likelihood ``sum_j m_j log q_j(t)``, scaled by the dispersion ``phi`` the test
estimates from the baseline's days. A 95% interval for one class's share is the set of values
whose profile likelihood ratio stays within the chi-square(1) 95% point; an interval that reaches
0 or 1 on one side is one-sided, with its other end at the 90% point. It lies in [0, 1] by
construction, it stays informative at the edges, and without a confusion
matrix (``C = I``) it is the profile interval of the raw shares. ``tests/test_mixture.py``
checks its coverage by simulation at true shares of 0-5% and 95-100%.

The correction's own uncertainty (``C`` is estimated from a few hundred dev passages) is not in
these intervals; the alert says which dev split the matrix comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

CHI2_95 = float(stats.chi2.ppf(0.95, 1))
# an interval that reaches 0 (or 1) on one side is one-sided: its other end is where the signed
# root of the likelihood ratio reaches the normal 95% point, the chi-square(1) 90% point (at a
# boundary estimate the ratio is a 50:50 mixture of chi-square(0) and (1): Self and Liang, 1987)
CHI2_90 = float(stats.chi2.ppf(0.90, 1))
_EPS = 1e-12


@dataclass(frozen=True)
class MixEstimate:
    shares: np.ndarray  # the estimated true mix (sums to 1)
    intervals: np.ndarray  # (k, 2): 95% profile-likelihood interval of each share


def _confusion(confusion: np.ndarray | None, k: int) -> np.ndarray:
    if confusion is None:
        return np.eye(k)
    c = np.asarray(confusion, dtype=float)
    return c / c.sum(axis=1, keepdims=True)


def _loglik(t: np.ndarray, mass: np.ndarray, c: np.ndarray) -> float:
    q = np.clip(c.T @ t, _EPS, None)
    return float(mass @ np.log(q))


def mle(mass: np.ndarray, confusion: np.ndarray | None = None, iters: int = 2000) -> np.ndarray:
    """The true mix that maximises the likelihood of the predicted masses, on the simplex.

    EM for mixture weights (each predicted unit is a mixture over true classes with the known
    components ``C``): t <- t * C (m / q) / n. It increases the likelihood at every step and
    keeps t on the simplex; the likelihood is concave, so its fixed point is the maximum."""
    mass = np.asarray(mass, dtype=float)
    k, n = len(mass), float(mass.sum())
    if n <= 0:
        return np.full(k, 1.0 / k)
    c = _confusion(confusion, k)
    try:  # inside the simplex, the mix that reproduces the masses exactly is the maximum
        t = np.linalg.solve(c.T, mass / n)
    except np.linalg.LinAlgError:
        t = np.full(k, 1.0 / k)
    if (t >= 0).all():
        return t / t.sum()
    t = np.clip(t, 1e-3, None)
    t = t / t.sum()
    for _ in range(iters):
        q = np.clip(c.T @ t, _EPS, None)
        new = t * (c @ (mass / q)) / n
        new = new / new.sum()
        if np.abs(new - t).max() < 1e-10:
            t = new
            break
        t = new
    return t


def _profile(value: float, j: int, mass: np.ndarray, c: np.ndarray) -> float:
    """The largest log-likelihood over three-class mixes whose share j equals ``value``: the
    rest, 1 - value, split between the other two classes at the best ratio."""
    if len(mass) != 3:
        raise ValueError("profile intervals are implemented for three classes")
    others = [i for i in range(3) if i != j]

    def mix(s: float) -> np.ndarray:
        t = np.empty(3)
        t[j] = value
        t[others] = (1.0 - value) * np.array([s, 1.0 - s])
        return t

    res = optimize.minimize_scalar(
        lambda s: -_loglik(mix(s), mass, c),
        bounds=(0.0, 1.0),
        method="bounded",
        options={"xatol": 1e-7},
    )
    ends = [-_loglik(mix(s), mass, c) for s in (0.0, 1.0)]
    return -min(float(res.fun), *ends)


def interval(
    mass: np.ndarray,
    j: int,
    confusion: np.ndarray | None = None,
    phi: float = 1.0,
    t_hat: np.ndarray | None = None,
) -> tuple[float, float]:
    """95% profile-likelihood interval for the true share of class j."""
    mass = np.asarray(mass, dtype=float)
    c = _confusion(confusion, len(mass))
    t_hat = mle(mass, confusion) if t_hat is None else t_hat
    best = _loglik(t_hat, mass, c)

    centre = float(t_hat[j])

    def excess(value: float, cut: float) -> float:
        return 2.0 * (best - _profile(value, j, mass, c)) / phi - cut

    reaches_0, reaches_1 = excess(0.0, CHI2_95) <= 0, excess(1.0, CHI2_95) <= 0
    if reaches_0 != reaches_1:
        # one side ends at the boundary, so the interval is one-sided: all 5% on the other side
        if reaches_0:
            return 0.0, float(optimize.brentq(excess, centre, 1.0, args=(CHI2_90,), xtol=1e-6))
        return float(optimize.brentq(excess, 0.0, centre, args=(CHI2_90,), xtol=1e-6)), 1.0
    low = 0.0 if reaches_0 else optimize.brentq(excess, 0.0, centre, args=(CHI2_95,), xtol=1e-6)
    high = 1.0 if reaches_1 else optimize.brentq(excess, centre, 1.0, args=(CHI2_95,), xtol=1e-6)
    return float(low), float(high)


def estimate(
    mass: np.ndarray, confusion: np.ndarray | None = None, phi: float | None = None
) -> MixEstimate:
    """The estimated true mix of a window and a 95% interval for each share.

    ``mass``: predicted masses per class (sums of calibrated probabilities); ``confusion``: the
    classifier's (soft) confusion matrix, rows true class, or None for raw shares; ``phi``: the
    dispersion of the masses relative to a multinomial (1 when unknown)."""
    mass = np.asarray(mass, dtype=float)
    k = len(mass)
    if mass.sum() <= 0:
        return MixEstimate(np.full(k, 1.0 / k), np.tile([0.0, 1.0], (k, 1)))
    phi = float(phi) if phi is not None and np.isfinite(phi) and phi > 0 else 1.0
    t_hat = mle(mass, confusion)
    bounds = np.array([interval(mass, j, confusion, phi, t_hat) for j in range(k)])
    return MixEstimate(t_hat, bounds)


def format_share(value: float | None) -> str:
    """A share for readers: one decimal, but never "0.0%" or "100.0%" for an estimate, which
    would read as "none at all" (or "all") where the interval and the listed articles say
    otherwise: below 1% it is "< 1%", above 99% "> 99%"."""
    if value is None:
        return "–"
    pct = 100 * value
    if pct < 1:
        return "< 1%"
    if pct > 99:
        return "> 99%"
    return f"{pct:.1f}%"
