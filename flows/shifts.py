"""Stance-shift detection: pure functions over per-article class probabilities.

Method (see README, "How alerts are decided"):
- Counts are probabilistic: the sum of calibrated article probabilities per class, not argmax
  counts, so a 55/45 article counts as both. The test runs on these raw masses: if the
  classifier is stable, an unchanged true mix gives an unchanged expected mass, so the null is
  sound. Shares and the effect size are then corrected with the classifier's dev-set (soft)
  confusion matrix, because a 70%-accurate classifier shows only about half of a real shift;
  testing on corrected counts instead would inflate the noise along with the signal. The
  corrected shares are the constrained maximum-likelihood mix with profile-likelihood intervals
  (``estimation.mixture``), which stay informative at 0% and 100%.
- Test: the G statistic (log-likelihood ratio) of the 2x3 table window x class vs baseline x
  class, scaled by the dispersion of the baseline's daily masses (quasi-likelihood):
  F = G / (2 phi) on (2, df_phi) degrees of freedom, where phi is the Pearson X^2 of the
  baseline's days x classes table over its degrees of freedom. Soft counts vary less than
  multinomial counts (phi < 1: a plain chi-square p would be about 10x too conservative), and
  news comes in stories, so the articles of one day are not independent (phi > 1: a plain p
  would be too liberal); the scaling corrects both, and the F reference accounts for phi being
  estimated. We chose it over a Dirichlet-multinomial posterior (no prior to defend) and over
  permuting days (exact, but a shift seen on fewer than three days of the window could never
  reach p < 0.01, however many articles it has).
- Guards: at least ``min_articles`` relevant articles in the window, a shift of at least
  ``min_effect`` (10 percentage points) in some class, Benjamini-Hochberg FDR across all groups
  tested that day, and optionally the same verdict on consecutive days.
- Coverage guard: when a group's daily volume in the window falls below half its baseline, the
  sample has collapsed (a dead feed, a blocked crawler) and we raise a coverage alert instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from scipy import stats

from estimation import mixture

LABELS = ("pro_russian", "neutral", "pro_kazakh")
GROUP_TYPES = ("outlet", "country", "language", "affiliation", "all")


@dataclass(frozen=True)
class ShiftConfig:
    window_days: int = 7
    baseline_days: int = 28
    min_articles: int = 30
    min_effect: float = 0.10
    fdr: float = 0.05
    coverage_ratio: float = 0.5
    consecutive_days: int = 1
    confusion: tuple[tuple[float, ...], ...] | None = None  # rows: true class, cols: predicted
    confusion_source: str | None = None  # where it was measured: "real" news or "written"


@dataclass(frozen=True)
class ArticleRow:
    """One relevant, classified article: the unit the detector counts."""

    article_id: str
    day: date
    source_id: str
    country: str
    lang: str
    affiliation: str
    probs: tuple[float, float, float]


@dataclass
class Windows:
    window_start: date
    window_end: date
    baseline_start: date
    baseline_end: date

    @classmethod
    def ending(cls, as_of: date, cfg: ShiftConfig) -> Windows:
        window_start = as_of - timedelta(days=cfg.window_days - 1)
        baseline_end = window_start - timedelta(days=1)
        return cls(
            window_start, as_of, baseline_end - timedelta(days=cfg.baseline_days - 1), baseline_end
        )


@dataclass
class GroupDays:
    """One group's daily probability mass over baseline + window days (baseline first)."""

    mass: np.ndarray  # (days, 3)
    count: np.ndarray  # (days,) articles per day
    window_days: int

    @property
    def mass_window(self) -> np.ndarray:
        return self.mass[-self.window_days :].sum(axis=0)

    @property
    def mass_baseline(self) -> np.ndarray:
        return self.mass[: -self.window_days].sum(axis=0)

    @property
    def n_window(self) -> int:
        return int(self.count[-self.window_days :].sum())

    @property
    def n_baseline(self) -> int:
        return int(self.count[: -self.window_days].sum())


@dataclass
class GroupTest:
    group_type: str
    group_value: str
    n_window: int
    n_baseline: int
    mass_window: np.ndarray
    mass_baseline: np.ndarray
    kind: str = "stance"  # stance | coverage | skipped
    reason: str | None = None
    g: float | None = None
    p_value: float | None = None
    method: str | None = None
    dispersion: float | None = None  # the baseline's phi that scaled G
    q_value: float | None = None
    shares_before: dict[str, float] = field(default_factory=dict)
    shares_after: dict[str, float] = field(default_factory=dict)
    ci_before: dict[str, list[float]] = field(default_factory=dict)
    ci_after: dict[str, list[float]] = field(default_factory=dict)
    direction: str | None = None
    effect: float = 0.0
    alert: bool = False
    severity: str | None = None


def group_keys(row: ArticleRow) -> list[tuple[str, str]]:
    return [
        ("outlet", row.source_id),
        ("country", row.country),
        ("language", row.lang),
        ("affiliation", row.affiliation),
        ("all", "all"),
    ]


def g_statistics(window: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """G of each 2xK table [window[i], baseline[i]] (rows of two (n, K) arrays), 0 log 0 = 0.

    A table with an empty row or a single non-empty class has G = 0."""
    table = np.stack([window, baseline], axis=1).astype(float)  # (n, 2, K)
    rows = table.sum(axis=2, keepdims=True)
    cols = table.sum(axis=1, keepdims=True)
    total = rows.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = rows * cols / total
        terms = np.where(table > 0, table * np.log(table / expected), 0.0)
    g = 2.0 * terms.sum(axis=(1, 2))
    return np.nan_to_num(np.maximum(g, 0.0))


def dispersion(mass: np.ndarray) -> tuple[float, int]:
    """Pearson dispersion of daily masses (days x classes) around their pooled shares.

    X^2 over the days that have articles, divided by its multinomial degrees of freedom
    (days - 1)(classes - 1): about 1 for independent multinomial counts, below 1 for soft
    counts (probabilities vary less than 0/1 labels), above 1 when articles of a day cluster
    (stories). Returns (phi, degrees of freedom); phi is nan when there are too few days."""
    mass = np.asarray(mass, dtype=float)
    mass = mass[mass.sum(axis=1) > 0]
    pooled = mass.sum(axis=0)
    keep = pooled > 0
    mass, pooled = mass[:, keep], pooled[keep]
    df = (len(mass) - 1) * (mass.shape[1] - 1)
    if df < 1:
        return float("nan"), 0
    expected = np.outer(mass.sum(axis=1), pooled / pooled.sum())
    x2 = float(((mass - expected) ** 2 / expected).sum())
    return x2 / df, df


def quasi_g_test(
    mass: np.ndarray, window_days: int, min_dispersion: float = 0.1
) -> tuple[float, float, float]:
    """G of the last ``window_days`` rows of ``mass`` (days x classes) against the earlier
    rows, scaled by the baseline's day-to-day dispersion (quasi-likelihood):
    F = G / (df * phi) on (df, df_phi) degrees of freedom. Returns (G, p, phi)."""
    mass = np.asarray(mass, dtype=float)
    window, baseline = mass[-window_days:].sum(axis=0), mass[:-window_days].sum(axis=0)
    keep = (window + baseline) > 0
    df = int(keep.sum()) - 1
    g = float(g_statistics(window[None, keep], baseline[None, keep])[0])
    phi, df_phi = dispersion(mass[:-window_days])
    if df < 1 or df_phi < 1 or not np.isfinite(phi):
        return g, 1.0, float("nan")
    phi = max(phi, min_dispersion)
    return g, float(stats.f.sf(g / (df * phi), df, df_phi)), phi


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """BH-adjusted q-values in the input order."""
    if not pvalues:
        return []
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty_like(p)
    q[order] = np.clip(q_sorted, 0.0, 1.0)
    return q.tolist()


def _intervals(
    mass: np.ndarray, confusion: np.ndarray | None, phi: float | None
) -> dict[str, list[float]]:
    """Each class's 95% interval of the estimated true mix, rounded for storage."""
    intervals = mixture.estimate(mass, confusion, phi).intervals
    return {
        lab: [round(float(lo), 4), round(float(hi), 4)]
        for lab, (lo, hi) in zip(LABELS, intervals, strict=True)
    }


def severity(effect: float, q: float) -> str:
    if effect >= 0.20 and q < 0.001:
        return "high"
    if effect >= 0.15 or q < 0.01:
        return "medium"
    return "low"


def collect_groups(
    rows: Iterable[ArticleRow], windows: Windows
) -> dict[tuple[str, str], GroupDays]:
    """Every group's daily mass and counts over the baseline and window days."""
    first = windows.baseline_start
    n_days = (windows.window_end - first).days + 1
    window_days = (windows.window_end - windows.window_start).days + 1
    keys: list[list[tuple[str, str]]] = []
    days: list[int] = []
    probs: list[tuple[float, float, float]] = []
    for row in rows:
        offset = (row.day - first).days
        if 0 <= offset < n_days:
            keys.append(group_keys(row))
            days.append(offset)
            probs.append(row.probs)
    if not keys:
        return {}
    day = np.asarray(days)
    prob = np.asarray(probs, dtype=float)
    groups: dict[tuple[str, str], GroupDays] = {}
    for column in zip(*keys, strict=True):  # one group type at a time
        values, member = np.unique(
            np.asarray([v for _, v in column], dtype=object), return_inverse=True
        )
        mass = np.zeros((len(values), n_days, 3))
        count = np.zeros((len(values), n_days))
        np.add.at(mass, (member, day), prob)
        np.add.at(count, (member, day), 1)
        gtype = column[0][0]
        for i, value in enumerate(values):
            groups[(gtype, str(value))] = GroupDays(mass[i], count[i], window_days)
    return groups


def evaluate_groups(rows: list[ArticleRow], as_of: date, cfg: ShiftConfig) -> list[GroupTest]:
    """Every group's verdict for the windows ending on ``as_of``."""
    return evaluate(collect_groups(rows, Windows.ending(as_of, cfg)), cfg)


def evaluate(groups: dict[tuple[str, str], GroupDays], cfg: ShiftConfig) -> list[GroupTest]:
    """Every group's verdict from its daily masses (see the module docstring)."""
    confusion = np.asarray(cfg.confusion) if cfg.confusion is not None else None
    results: list[GroupTest] = []
    for (gtype, gvalue), days in sorted(groups.items()):
        mw, mb = days.mass_window, days.mass_baseline
        test = GroupTest(gtype, gvalue, days.n_window, days.n_baseline, mw, mb)
        results.append(test)
        per_day_window = test.n_window / cfg.window_days
        per_day_baseline = test.n_baseline / cfg.baseline_days
        if (
            test.n_baseline >= cfg.min_articles
            and per_day_window < cfg.coverage_ratio * per_day_baseline
        ):
            test.kind, test.direction = "coverage", "volume_drop"
            test.effect = 1.0 - per_day_window / per_day_baseline
            test.reason = (
                f"{per_day_window:.1f} articles/day in the window vs "
                f"{per_day_baseline:.1f} in the baseline"
            )
            continue
        if test.n_window < cfg.min_articles or test.n_baseline < cfg.min_articles:
            test.kind = "skipped"
            test.reason = f"too few articles (window {test.n_window}, baseline {test.n_baseline})"
            continue
        test.g, test.p_value, test.dispersion = quasi_g_test(days.mass, days.window_days)
        test.method = "quasi-G"
        after, before = mixture.mle(mw, confusion), mixture.mle(mb, confusion)
        diffs = after - before
        k = int(np.argmax(diffs))
        test.direction, test.effect = LABELS[k], float(diffs[k])
        test.shares_after = {lab: round(float(v), 4) for lab, v in zip(LABELS, after, strict=True)}
        test.shares_before = {
            lab: round(float(v), 4) for lab, v in zip(LABELS, before, strict=True)
        }
    tested = [t for t in results if t.kind == "stance" and t.p_value is not None]
    for test, q in zip(tested, benjamini_hochberg([t.p_value for t in tested]), strict=True):  # type: ignore[misc]
        test.q_value = q
        test.alert = q <= cfg.fdr and test.effect >= cfg.min_effect
        if test.alert:
            test.severity = severity(test.effect, q)
            # intervals cost a few profile-likelihood searches: only alerts show them
            test.ci_after = _intervals(test.mass_window, confusion, test.dispersion)
            test.ci_before = _intervals(test.mass_baseline, confusion, test.dispersion)
    for test in results:
        if test.kind == "coverage":
            test.alert, test.severity = True, "medium"
    return results


def detect(rows: list[ArticleRow], as_of: date, cfg: ShiftConfig) -> list[GroupTest]:
    """Alerts for ``as_of``; with ``consecutive_days`` > 1 the verdict must hold on each of the
    previous days too (same group, same direction)."""
    today = evaluate_groups(rows, as_of, cfg)
    for back in range(1, cfg.consecutive_days):
        earlier = {
            (t.group_type, t.group_value, t.direction)
            for t in evaluate_groups(rows, as_of - timedelta(days=back), cfg)
            if t.alert
        }
        for test in today:
            if test.alert and (test.group_type, test.group_value, test.direction) not in earlier:
                test.alert, test.reason = False, f"not yet significant {back} day(s) earlier"
    return today


def digest_rows(rows: list[ArticleRow], as_of: date, cfg: ShiftConfig) -> list[dict]:
    """The stance mix of every group, window vs baseline, alert or not (for the daily digest)."""
    windows = Windows.ending(as_of, cfg)
    out = []
    for (gtype, gvalue), days in sorted(collect_groups(rows, windows).items()):
        mw, mb = days.mass_window, days.mass_baseline
        out.append(
            {
                "group_type": gtype,
                "group_value": gvalue,
                "n_window": days.n_window,
                "n_baseline": days.n_baseline,
                "shares_after": {
                    lab: float(v) for lab, v in zip(LABELS, mw / max(mw.sum(), 1e-9), strict=True)
                },
                "shares_before": {
                    lab: float(v) for lab, v in zip(LABELS, mb / max(mb.sum(), 1e-9), strict=True)
                },
            }
        )
    return out
