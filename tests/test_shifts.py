"""The detector's statistics, tested on planted and null series."""

from datetime import date, timedelta

import numpy as np
import pytest

from flows.shifts import (
    ArticleRow,
    ShiftConfig,
    benjamini_hochberg,
    correct_for_confusion,
    detect,
    evaluate_groups,
    g_test,
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


def test_g_test_uses_monte_carlo_for_small_cells() -> None:
    rng = np.random.default_rng(0)
    g, p, method = g_test(np.array([[1.0, 2.0, 0.5], [6.0, 1.0, 1.0]]), 2000, rng)
    assert method == "monte-carlo" and 0 < p <= 1 and g > 0
    g, p, method = g_test(np.array([[50.0, 50.0, 50.0], [50.0, 50.0, 50.0]]), 2000, rng)
    assert method == "chi2" and p == pytest.approx(1.0)


def test_confusion_correction_recovers_a_diluted_shift() -> None:
    confusion = np.array([[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.1, 0.2, 0.7]])
    true = np.array([60.0, 30.0, 10.0])
    observed = confusion.T @ true
    assert correct_for_confusion(observed, confusion) == pytest.approx(true)


def test_consecutive_days_requirement_holds_back_a_fresh_shift() -> None:
    rng_rows = series((0.2, 0.5, 0.3), (0.2, 0.5, 0.3), per_day_before=8, per_day_after=8)
    # the shift starts only today: yesterday's window was still calm
    today = [
        ArticleRow(f"x{i}", AS_OF, "a", "KZ", "ru", "state", (0.8, 0.1, 0.1)) for i in range(60)
    ]
    rows = rng_rows + today
    assert by_group(detect(rows, AS_OF, ShiftConfig())).alert
    assert not by_group(detect(rows, AS_OF, ShiftConfig(consecutive_days=2))).alert
