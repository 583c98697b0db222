"""The detector's statistics, tested on planted and null series."""

from datetime import date, timedelta

import numpy as np
import pytest

from estimation import mixture
from flows.shifts import (
    ArticleRow,
    ShiftConfig,
    Windows,
    benjamini_hochberg,
    collect_groups,
    detect,
    dispersion,
    evaluate_groups,
    g_statistics,
    quasi_g_test,
)

AS_OF = date(2026, 11, 29)


def series(
    before: tuple[float, float, float],
    after: tuple[float, float, float],
    per_day_before: int,
    per_day_after: int,
    seed: int = 0,
    source: str = "a",
    country: str = "KZ",
) -> list[ArticleRow]:
    """Articles whose probability vectors are drawn around a class mix, per day."""
    rng = np.random.default_rng(seed)
    rows = []
    for back in range(35):
        day = AS_OF - timedelta(days=back)
        mix, n = (after, per_day_after) if back < 7 else (before, per_day_before)
        for i in range(n):
            k = rng.choice(3, p=mix)
            probs = np.full(3, 0.1)
            probs[k] = 0.8
            rows.append(
                ArticleRow(
                    f"{source}-{back}-{i}", day, source, country, "ru", "state", tuple(probs)
                )
            )
    return rows


def by_group(tests, group_type="outlet", value="a"):  # type: ignore[no-untyped-def]
    return next(t for t in tests if t.group_type == group_type and t.group_value == value)


def test_planted_shift_is_detected() -> None:
    rows = series((0.2, 0.5, 0.3), (0.6, 0.3, 0.1), per_day_before=8, per_day_after=8)
    test = by_group(evaluate_groups(rows, AS_OF, ShiftConfig()))
    assert test.alert and test.kind == "stance"
    assert test.direction == "pro_russian"
    assert test.effect > 0.2
    assert test.q_value is not None and test.q_value < 0.001
    assert (
        test.ci_after["pro_russian"][0]
        < test.shares_after["pro_russian"]
        < test.ci_after["pro_russian"][1]
    )


def test_null_series_stays_quiet() -> None:
    rows = series((0.3, 0.4, 0.3), (0.3, 0.4, 0.3), per_day_before=8, per_day_after=8, seed=3)
    assert not any(t.alert for t in evaluate_groups(rows, AS_OF, ShiftConfig()))


def test_no_alert_below_minimum_n() -> None:
    rows = series((0.1, 0.8, 0.1), (0.9, 0.05, 0.05), per_day_before=4, per_day_after=4)
    test = by_group(evaluate_groups(rows, AS_OF, ShiftConfig(min_articles=30)))
    assert test.n_window == 28
    assert test.kind == "skipped" and not test.alert


def test_small_effect_is_not_an_alert_even_if_significant() -> None:
    rows = series((0.30, 0.40, 0.30), (0.37, 0.36, 0.27), per_day_before=150, per_day_after=150)
    test = by_group(evaluate_groups(rows, AS_OF, ShiftConfig()))
    assert test.effect < 0.10
    assert not test.alert


def test_coverage_collapse_raises_a_coverage_alert_not_a_stance_alert() -> None:
    rows = series((0.3, 0.4, 0.3), (0.9, 0.05, 0.05), per_day_before=10, per_day_after=2)
    test = by_group(evaluate_groups(rows, AS_OF, ShiftConfig()))
    assert test.kind == "coverage" and test.alert
    assert test.direction == "volume_drop"


def test_benjamini_hochberg_orders_and_adjusts() -> None:
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.20])
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert benjamini_hochberg([]) == []
    q2 = benjamini_hochberg([0.001, 0.5])
    assert q2[0] == pytest.approx(0.002) and q2[1] == pytest.approx(0.5)


def soft_days(rng, mixes, per_day, sharpness=2.5):  # type: ignore[no-untyped-def]
    """Daily probability mass of ``per_day`` articles a day, each a calibrated soft vector:
    logits = sharpness * onehot(true class) + N(0, I), probs = softmax(sharpness * logits)."""
    days = []
    for mix in mixes:
        n = rng.poisson(per_day)
        true = rng.choice(3, size=n, p=mix)
        logits = sharpness * np.eye(3)[true] + rng.normal(size=(n, 3))
        e = np.exp(sharpness * logits)
        days.append((e / e.sum(axis=1, keepdims=True)).sum(axis=0) if n else np.zeros(3))
    return np.array(days)


@pytest.mark.parametrize(
    ("mix", "per_day", "clustered"),
    [
        ((0.3, 0.4, 0.3), 12, False),
        ((0.3, 0.4, 0.3), 12, True),
        ((0.75, 0.2, 0.05), 5, False),  # small cells: about 2 pro-Kazakh articles a week
    ],
)
def test_quasi_g_p_values_hold_their_level_under_the_null(mix, per_day, clustered) -> None:  # type: ignore[no-untyped-def]
    """Soft counts vary less than multinomial counts and clustered days (stories) vary more;
    the dispersion-scaled p-value keeps about its nominal level in each case, where the plain
    chi-square p of the same G is far off (too few alarms, then too many)."""
    from scipy import stats

    rng = np.random.default_rng(7)
    quasi, chi2 = [], []
    for _ in range(400):
        mixes = [rng.dirichlet(np.array(mix) * 2) if clustered else mix for _ in range(35)]
        g, p, phi = quasi_g_test(soft_days(rng, mixes, per_day), 7)
        quasi.append(p)
        chi2.append(stats.chi2.sf(g, df=2))
    rate = np.mean(np.array(quasi) < 0.05)
    assert 0.02 <= rate <= 0.08, rate
    chi2_rate = np.mean(np.array(chi2) < 0.05)
    assert chi2_rate < 0.03 if not clustered else chi2_rate > 0.2


def test_dispersion_is_below_one_for_soft_counts_and_above_for_stories() -> None:
    rng = np.random.default_rng(3)
    soft, _ = dispersion(soft_days(rng, [(0.3, 0.4, 0.3)] * 28, 20))
    stories, df = dispersion(
        soft_days(rng, [rng.dirichlet(np.array([0.6, 0.8, 0.6])) for _ in range(28)], 20)
    )
    assert 0.3 < soft < 0.9 and stories > 2.0 and df == 27 * 2
    assert np.isnan(dispersion(np.array([[1.0, 2.0, 3.0]]))[0])


def test_quasi_g_finds_a_shift_and_stays_quiet_without_one() -> None:
    rng = np.random.default_rng(1)
    before = soft_days(rng, [(0.3, 0.4, 0.3)] * 28, per_day=15)
    after = soft_days(rng, [(0.55, 0.3, 0.15)] * 7, per_day=15)
    g, p, phi = quasi_g_test(np.vstack([before, after]), 7)
    assert g > 0 and p < 0.01 and 0 < phi < 2
    same = soft_days(rng, [(0.3, 0.4, 0.3)] * 35, per_day=15)
    assert quasi_g_test(same, 7)[1] > 0.01


def test_g_statistic_is_zero_for_identical_rows_and_handles_empty_cells() -> None:
    g = g_statistics(
        np.array([[5.0, 5.0, 5.0], [5.0, 0.0, 5.0], [0.0, 0.0, 0.0]]),
        np.array([[10.0, 10.0, 10.0], [1.0, 0.0, 9.0], [1.0, 2.0, 3.0]]),
    )
    assert g[0] == pytest.approx(0.0)
    assert g[1] > 0
    assert g[2] == 0.0


def test_collect_groups_sums_each_group_per_day() -> None:
    rows = series((0.3, 0.4, 0.3), (0.3, 0.4, 0.3), 3, 5, source="a") + series(
        (0.3, 0.4, 0.3), (0.3, 0.4, 0.3), 2, 2, seed=1, source="b", country="RU"
    )
    groups = collect_groups(rows, Windows.ending(AS_OF, ShiftConfig()))
    assert set(groups) == {("outlet", "a"), ("outlet", "b"), ("country", "KZ"),
                           ("country", "RU"), ("language", "ru"), ("affiliation", "state"),
                           ("all", "all")}
    a, everything = groups[("outlet", "a")], groups[("all", "all")]
    assert a.mass.shape == (35, 3) and (a.n_window, a.n_baseline) == (35, 84)
    assert everything.n_window == 35 + 14
    expected = np.sum([r.probs for r in rows if r.day == AS_OF and r.source_id == "a"], axis=0)
    assert a.mass[-1] == pytest.approx(expected)
    assert everything.mass_window.sum() == pytest.approx(49.0)


def test_raw_share_interval_is_the_binomial_profile_likelihood_interval() -> None:
    """Without a confusion matrix the mix is the raw shares, and a share's interval is the
    binomial likelihood-ratio interval of its count."""
    from scipy import optimize, stats

    mass = np.array([12.0, 20.0, 8.0])
    est = mixture.estimate(mass, None, 1.0)
    assert est.shares == pytest.approx(mass / 40.0, abs=1e-6)
    p_hat = 12.0 / 40.0

    def lr(p: float) -> float:
        return 2 * (stats.binom.logpmf(12, 40, p_hat) - stats.binom.logpmf(12, 40, p)) - 3.8415

    low, high = optimize.brentq(lr, 1e-9, p_hat), optimize.brentq(lr, p_hat, 1 - 1e-9)
    assert est.intervals[0] == pytest.approx([low, high], abs=1e-4)
    assert mixture.estimate(np.zeros(3)).intervals.tolist() == [[0.0, 1.0]] * 3


def soft_articles(rng, true, sharpness):  # type: ignore[no-untyped-def]
    logits = sharpness * np.eye(3)[true] + rng.normal(size=(len(true), 3))
    e = np.exp(sharpness * logits)
    return e / e.sum(axis=1, keepdims=True)


def test_corrected_share_intervals_cover_the_true_share() -> None:
    """A 70%-accurate classifier, its soft confusion matrix, windows of 60 articles: the
    corrected shares' 95% intervals cover the true mix about 95% of the time (a Jeffreys
    interval on the corrected masses, ignoring the correction's noise, covers 82-88%; the
    boundaries are tested in tests/test_mixture.py)."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 60000)
    probs = soft_articles(rng, true, 1.6)
    confusion = np.array([probs[true == k].mean(axis=0) for k in range(3)])
    assert 0.65 < np.diag(confusion).mean() < 0.75
    mix = np.array([0.5, 0.3, 0.2])
    hits, reps = np.zeros(3), 400
    for _ in range(reps):
        phi, _ = dispersion(soft_days(rng, [mix] * 28, 9, sharpness=1.6))
        mass = soft_articles(rng, rng.choice(3, size=60, p=mix), 1.6).sum(axis=0)
        for k, (low, high) in enumerate(mixture.estimate(mass, confusion, phi).intervals):
            hits[k] += low <= mix[k] <= high
    coverage = hits / reps
    assert (coverage >= 0.91).all() and (coverage <= 0.99).all(), coverage


def test_confusion_correction_recovers_a_diluted_shift() -> None:
    confusion = np.array([[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.1, 0.2, 0.7]])
    true = np.array([60.0, 30.0, 10.0])
    observed = confusion.T @ true
    assert mixture.mle(observed, confusion) == pytest.approx(true / true.sum(), abs=1e-6)


def test_consecutive_days_requirement_holds_back_a_fresh_shift() -> None:
    rng_rows = series((0.2, 0.5, 0.3), (0.2, 0.5, 0.3), per_day_before=8, per_day_after=8)
    # the shift starts only today: yesterday's window was still calm
    today = [
        ArticleRow(f"x{i}", AS_OF, "a", "KZ", "ru", "state", (0.8, 0.1, 0.1)) for i in range(60)
    ]
    rows = rng_rows + today
    assert by_group(detect(rows, AS_OF, ShiftConfig())).alert
    assert not by_group(detect(rows, AS_OF, ShiftConfig(consecutive_days=2))).alert
