"""Stance-shift detection: pure functions over per-article class probabilities.

Method (see README, "How alerts are decided"):
- Counts are probabilistic: the sum of calibrated article probabilities per class, not argmax
  counts, so a 55/45 article counts as both. The test runs on these raw masses: if the
  classifier is stable, an unchanged true mix gives an unchanged expected mass, so the null is
  sound. Shares and the effect size are then corrected with the classifier's dev-set (soft)
  confusion matrix, because a 70%-accurate classifier shows only about half of a real shift;
  testing on corrected counts instead would inflate the noise along with the signal.
- Test: a G-test (log-likelihood ratio) of homogeneity on the 2x3 table window x class vs
  baseline x class. We chose it over a Dirichlet-multinomial posterior because it needs no prior,
  its null distribution is well understood, and a Monte Carlo p-value (multinomial draws from the
  pooled shares) makes it exact for small cells, where any expected cell is below 5.
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
    mc_samples: int = 4000
    consecutive_days: int = 1
    confusion: tuple[tuple[float, ...], ...] | None = None  # rows: true class, cols: predicted
    seed: int = 20260101


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


def correct_for_confusion(mass: np.ndarray, confusion: np.ndarray | None) -> np.ndarray:
    """Estimate true-class mass from predicted mass: solve C^T t = m, clip, keep the total."""
    if confusion is None:
        return mass
    c = np.asarray(confusion, dtype=float)
    c = c / c.sum(axis=1, keepdims=True)
    try:
        true = np.linalg.solve(c.T, mass)
    except np.linalg.LinAlgError:
        return mass
    true = np.clip(true, 0.0, None)
    total = true.sum()
    return true * (mass.sum() / total) if total > 0 else mass


def g_statistic(table: np.ndarray) -> float:
    rows = table.sum(axis=1, keepdims=True)
    cols = table.sum(axis=0, keepdims=True)
    expected = rows * cols / table.sum()
    observed = table[table > 0]
    return float(2.0 * (observed * np.log(observed / expected[table > 0])).sum())


def g_test(
    table: np.ndarray, mc_samples: int, rng: np.random.Generator
) -> tuple[float, float, str]:
    """G-test of homogeneity on a 2xK table; Monte Carlo p-value when an expected cell < 5."""
    table = np.asarray(table, dtype=float)
    keep = table.sum(axis=0) > 0
    table = table[:, keep]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, "degenerate"
    g = g_statistic(table)
    rows = table.sum(axis=1)
    pooled = table.sum(axis=0) / table.sum()
    expected = np.outer(rows, pooled)
    if (expected >= 5).all():
        return g, float(stats.chi2.sf(g, df=table.shape[1] - 1)), "chi2"
    sizes = np.maximum(np.rint(rows).astype(int), 1)
    exceed = 0
    for _ in range(mc_samples):
        sim = np.stack([rng.multinomial(n, pooled) for n in sizes]).astype(float)
        if (sim.sum(axis=0) > 0).sum() < 2:
            continue
        exceed += g_statistic(sim) >= g - 1e-9
    return g, (exceed + 1) / (mc_samples + 1), "monte-carlo"


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


def share_interval(mass: float, n: float) -> list[float]:
    """95% Jeffreys interval for a share estimated from probabilistic counts."""
    if n <= 0:
        return [0.0, 1.0]
    low, high = stats.beta.ppf([0.025, 0.975], mass + 0.5, max(n - mass, 0.0) + 0.5)
    return [round(float(low), 4), round(float(high), 4)]


def severity(effect: float, q: float) -> str:
    if effect >= 0.20 and q < 0.001:
        return "high"
    if effect >= 0.15 or q < 0.01:
        return "medium"
    return "low"


def collect_groups(
    rows: Iterable[ArticleRow], windows: Windows
) -> dict[tuple[str, str], list[np.ndarray]]:
    """Per group: [window mass, baseline mass, window n, baseline n]."""
    groups: dict[tuple[str, str], list[np.ndarray]] = {}
    for row in rows:
        if windows.window_start <= row.day <= windows.window_end:
            slot = 0
        elif windows.baseline_start <= row.day <= windows.baseline_end:
            slot = 1
        else:
            continue
        p = np.asarray(row.probs, dtype=float)
        for key in group_keys(row):
            acc = groups.setdefault(key, [np.zeros(3), np.zeros(3), np.zeros(1), np.zeros(1)])
            acc[slot] += p
            acc[2 + slot] += 1
    return groups


def evaluate_groups(rows: list[ArticleRow], as_of: date, cfg: ShiftConfig) -> list[GroupTest]:
    """Every group's verdict for the windows ending on ``as_of``."""
    windows = Windows.ending(as_of, cfg)
    rng = np.random.default_rng(cfg.seed)
    confusion = np.asarray(cfg.confusion) if cfg.confusion is not None else None
    results: list[GroupTest] = []
    for (gtype, gvalue), (mw, mb, nw, nb) in sorted(collect_groups(rows, windows).items()):
        test = GroupTest(gtype, gvalue, int(nw[0]), int(nb[0]), mw, mb)
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
        test.g, test.p_value, test.method = g_test(np.stack([mw, mb]), cfg.mc_samples, rng)
        window = correct_for_confusion(mw, confusion)
        baseline = correct_for_confusion(mb, confusion)
        after, before = window / window.sum(), baseline / baseline.sum()
        diffs = after - before
        k = int(np.argmax(diffs))
        test.direction, test.effect = LABELS[k], float(diffs[k])
        test.shares_after = {lab: round(float(v), 4) for lab, v in zip(LABELS, after, strict=True)}
        test.shares_before = {
            lab: round(float(v), 4) for lab, v in zip(LABELS, before, strict=True)
        }
        test.ci_after = {
            lab: share_interval(float(window[i]), float(window.sum()))
            for i, lab in enumerate(LABELS)
        }
        test.ci_before = {
            lab: share_interval(float(baseline[i]), float(baseline.sum()))
            for i, lab in enumerate(LABELS)
        }
    tested = [t for t in results if t.kind == "stance" and t.p_value is not None]
    for test, q in zip(tested, benjamini_hochberg([t.p_value for t in tested]), strict=True):  # type: ignore[misc]
        test.q_value = q
        test.alert = q <= cfg.fdr and test.effect >= cfg.min_effect
        if test.alert:
            test.severity = severity(test.effect, q)
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
    for (gtype, gvalue), (mw, mb, nw, nb) in sorted(collect_groups(rows, windows).items()):
        out.append(
            {
                "group_type": gtype,
                "group_value": gvalue,
                "n_window": int(nw[0]),
                "n_baseline": int(nb[0]),
                "shares_after": {
                    lab: float(v) for lab, v in zip(LABELS, mw / max(mw.sum(), 1e-9), strict=True)
                },
                "shares_before": {
                    lab: float(v) for lab, v in zip(LABELS, mb / max(mb.sum(), 1e-9), strict=True)
                },
            }
        )
    return out
