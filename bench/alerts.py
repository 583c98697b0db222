"""Alert benchmark: false alarms, detection power and delay of the stance-shift detector.

    .venv/bin/python bench/alerts.py [--small]     # 365 days x 20 outlets (--small: 150 x 8)
    .venv/bin/python bench/alerts.py --intervals-only   # interval coverage table only (~2 min)

Simulation
----------
- 20 outlets with base volumes spread geometrically from 5 to 200 relevant articles/day,
  weekends at 60 %, Poisson noise per outlet-day. Each outlet has a fixed true stance mix.
- Groups: the detector tests outlet, country, language, affiliation and "all" groups built from
  the rows' fields. The outlets get a realistic layout (several outlets per country, language and
  affiliation), not unique attributes, because the aggregate groups are tested in production too
  and their p-values enter the same Benjamini-Hochberg family every day: making them copies of
  the outlet groups (unique country and language per outlet) would triple each outlet's test and
  distort BH. Power is measured on the outlet groups (where shifts are planted); false alarms are
  reported for outlet groups and aggregate groups separately.
- Classifier noise: a calibrated Gaussian-logit model. For an article of true class t, logits
  x = mu * e_t + N(0, I) and probs = softmax(mu * x), which is the exact posterior P(t | x) under
  equal priors, i.e. calibrated by construction; mu is chosen for about 80 % argmax accuracy
  (the bundled model's dev accuracy is 0.83). Its soft confusion matrix (mean probs per true
  class, as ``nlp.metrics.soft_confusion`` computes it on the dev set) is estimated by
  simulation and used for the "confusion correction on" runs.
- Null series: nothing changes. A stance alert is a test with kind "stance" and alert=True.
  Counted per group: distinct alert days (the 24 h cooldown in ``flows.alerting`` compares
  wall-clock ``created_at``, so with one run a day it may or may not suppress the next day's
  alert; distinct days is the upper bound) and alert episodes (runs of consecutive alerting
  days; the lower bound, what a cooldown that holds through a run of days would give).
  Target: <= 1 per group per 90 days. A sensitivity row adds day-to-day overdispersion of the
  true mix (each outlet-day's mix ~ Dirichlet(kappa * mix)), because real news comes in
  stories, not independent draws.
- Shifted series: each outlet gets two planted onsets a year (the second after the first has
  reverted and a clean baseline is back): from day s the true pro_russian share rises by 10, 15
  or 20 points, taken from neutral and pro_kazakh in proportion. Detected = a pro_russian stance
  alert on that outlet's group on a day in [s, s + 14]; delay = first such day - s. Reported by
  outlet volume class: small (< 20/day), medium (20-80), large (>= 80).

The detector
------------
``flows.shifts.detect(rows, as_of, ShiftConfig())`` is called for every day with the rows of
its window and baseline (as ``flows.alerting.load_rows`` would give it). One part is swapped:
``collect_groups``, a Python loop over every row (about 20 us x 5 groups per row, ~2 s per
day at this volume, ~45 min for the whole benchmark), is replaced by an exact vectorised
equivalent over the same simulated articles; the swap is checked against the original on
several days (same groups, counts and masses to 1e-9, same alerts). Everything after it
(coverage guard, min_articles, the dispersion-scaled G-test, confusion correction, BH,
min_effect) is the unmodified code.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402

import flows.shifts as shifts  # noqa: E402
from flows.shifts import ArticleRow, GroupDays, ShiftConfig, Windows  # noqa: E402

START = date(2026, 1, 5)  # a Monday
PR, NE, PK = 0, 1, 2


# --------------------------------------------------------------------------- outlets


@dataclass(frozen=True)
class Outlet:
    id: str
    country: str
    lang: str
    affiliation: str
    volume: float
    mix: tuple[float, float, float]  # true shares: pro_russian, neutral, pro_kazakh


# country, language, affiliation of the 20 outlets: 6 RU, 7 KZ (4 kk, 3 ru), 2 KG, 3 GB/US, 2 FR
LAYOUT = [
    ("RU", "ru", "state"), ("RU", "ru", "state"), ("RU", "ru", "state"),
    ("RU", "ru", "independent"), ("RU", "ru", "independent"), ("RU", "ru", "official"),
    ("KZ", "kk", "state"), ("KZ", "kk", "official"), ("KZ", "kk", "independent"),
    ("KZ", "kk", "independent"), ("KZ", "ru", "state"), ("KZ", "ru", "independent"),
    ("KZ", "ru", "independent"), ("KG", "ru", "independent"), ("KG", "ru", "state"),
    ("GB", "en", "international"), ("GB", "en", "international"), ("US", "en", "international"),
    ("FR", "fr", "international"), ("FR", "fr", "independent"),
]


def make_outlets(n: int, rng: np.random.Generator) -> list[Outlet]:
    layout = LAYOUT[:: max(1, len(LAYOUT) // n)][:n] if n < len(LAYOUT) else LAYOUT
    volumes = np.geomspace(5, 200, n)
    rng.shuffle(volumes)
    outlets = []
    for k, ((country, lang, aff), vol) in enumerate(zip(layout, volumes, strict=True)):
        pr = rng.uniform(0.15, 0.45)
        pk = rng.uniform(0.15, 0.40)
        ne = 1.0 - pr - pk
        outlets.append(Outlet(f"outlet-{k:02d}", country, lang, aff, float(vol),
                              (pr, ne, pk)))
    return outlets


def volume_class(v: float) -> str:
    return "small" if v < 20 else "medium" if v < 80 else "large"


def shifted_mix(mix: np.ndarray, pp: float) -> np.ndarray:
    out = mix.copy()
    rest = mix[NE] + mix[PK]
    out[PR] += pp
    out[NE] -= pp * mix[NE] / rest
    out[PK] -= pp * mix[PK] / rest
    return out


# --------------------------------------------------------------------------- classifier noise


def noisy_probs(true: np.ndarray, mu: float, rng: np.random.Generator) -> np.ndarray:
    """Calibrated probabilities for articles of the given true classes (Gaussian logits)."""
    x = rng.standard_normal((len(true), 3))
    x[np.arange(len(true)), true] += mu
    z = mu * x
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibrate_mu(target: float, rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """mu for the target argmax accuracy; returns (mu, accuracy, soft confusion matrix)."""
    true = np.repeat(np.arange(3), 100_000)
    lo, hi = 0.5, 4.0
    for _ in range(30):
        mid = (lo + hi) / 2
        acc = (noisy_probs(true, mid, rng).argmax(1) == true).mean()
        lo, hi = (mid, hi) if acc < target else (lo, mid)
    mu = (lo + hi) / 2
    p = noisy_probs(true, mu, rng)
    soft = np.stack([p[true == t].mean(axis=0) for t in range(3)])
    return mu, float((p.argmax(1) == true).mean()), soft


# --------------------------------------------------------------------------- simulation


@dataclass
class Series:
    """One simulated year: per-outlet-day masses and counts, plus (lazily) the articles."""

    outlets: list[Outlet]
    days: int
    mass: np.ndarray    # (days, outlets, 3) summed probabilities
    count: np.ndarray   # (days, outlets) articles
    onsets: list[tuple[int, int, float]]  # (outlet index, onset day, pp)
    articles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # day, outlet, probs


def simulate(outlets: list[Outlet], days: int, mu: float, rng: np.random.Generator, *,
             pp: float = 0.0, kappa: float | None = None, keep_articles: bool = False) -> Series:
    n = len(outlets)
    weekday = np.array([(START + timedelta(days=d)).weekday() for d in range(days)])
    season = np.where(weekday >= 5, 0.6, 1.0)
    mixes = np.tile(np.array([o.mix for o in outlets]), (days, 1, 1))  # (days, n, 3)
    onsets: list[tuple[int, int, float]] = []
    if pp:
        burn = 36
        for k in range(n):
            a = int(rng.integers(burn, max(burn + 1, days - 215)))
            b = int(rng.integers(a + 120, max(a + 121, min(days - 20, a + 180))))
            for s, end in ((a, a + 60), (b, days)):
                if s >= days - 15:
                    continue
                mixes[s:end, k] = shifted_mix(np.array(outlets[k].mix), pp)
                onsets.append((k, s, pp))
    if kappa:
        mixes = rng.gamma(kappa * mixes)
        mixes /= mixes.sum(axis=2, keepdims=True)
    lam = season[:, None] * np.array([o.volume for o in outlets])[None, :]
    count = rng.poisson(lam)  # (days, n)
    # true classes per outlet-day, then one probability vector per article
    true_counts = rng.multinomial(count, mixes)  # (days, n, 3)
    flat = true_counts.reshape(-1, 3)
    cell = np.repeat(np.arange(days * n), flat.sum(axis=1))
    true = np.repeat(np.tile(np.arange(3), days * n), flat.ravel())
    probs = noisy_probs(true, mu, rng)
    mass = np.zeros((days * n, 3))
    np.add.at(mass, cell, probs)
    articles = (cell // n, cell % n, probs) if keep_articles else None
    return Series(outlets, days, mass.reshape(days, n, 3), count, onsets, articles)


# --------------------------------------------------------------------------- detector glue


class Block(list):
    """What ``detect`` receives: a list (empty here) carrying the window's per-outlet sums.

    ``fast_collect_groups`` reads the sums; the original ``collect_groups`` would iterate it.
    """

    def __init__(self, series: Series, as_of_day: int, windows: Windows) -> None:
        super().__init__()
        self.series, self.as_of_day, self.windows = series, as_of_day, windows


ORIGINAL_COLLECT = shifts.collect_groups


def fast_collect_groups(rows, windows: Windows):  # type: ignore[no-untyped-def]
    """Vectorised ``collect_groups``: the same dict of GroupDays from per-outlet-day sums."""
    if not isinstance(rows, Block):
        return ORIGINAL_COLLECT(rows, windows)
    s = rows.series
    d = lambda x: (x - START).days  # noqa: E731
    b0, w0, w1 = d(windows.baseline_start), d(windows.window_start), d(windows.window_end)
    mass, count = s.mass[b0 : w1 + 1], s.count[b0 : w1 + 1]  # (days, n, 3), (days, n)
    members: dict[tuple[str, str], list[int]] = {}
    for k, o in enumerate(s.outlets):
        if count[:, k].sum() == 0:
            continue
        for key in (("outlet", o.id), ("country", o.country), ("language", o.lang),
                    ("affiliation", o.affiliation), ("all", "all")):
            members.setdefault(key, []).append(k)
    return {key: GroupDays(mass[:, ks].sum(axis=1), count[:, ks].sum(axis=1), w1 - w0 + 1)
            for key, ks in members.items()}


def rows_for(series: Series, lo: int, hi: int) -> list[ArticleRow]:
    """Real ArticleRow objects for days lo..hi (for the check against the original)."""
    day, outlet, probs = series.articles  # type: ignore[misc]
    keep = np.nonzero((day >= lo) & (day <= hi))[0]
    out = []
    for i in keep:
        o = series.outlets[outlet[i]]
        out.append(ArticleRow(f"a{i}", START + timedelta(days=int(day[i])), o.id, o.country,
                              o.lang, o.affiliation, tuple(float(v) for v in probs[i])))
    return out


def run_detector(series: Series, cfg: ShiftConfig) -> tuple[dict, dict, float, dict]:
    """detect() for every day with a full baseline. Returns stance alerts
    {(gtype, gvalue): [(day, direction), ...]}, coverage alerts, seconds, and the p-value
    tallies {group kind: [tested, p < 0.05, p < 0.01]} (for the null calibration check)."""
    first = cfg.window_days + cfg.baseline_days - 1
    stance: dict[tuple[str, str], list[tuple[int, str]]] = {}
    coverage: dict[tuple[str, str], list[int]] = {}
    tally = {"outlet": [0, 0, 0], "aggregate": [0, 0, 0]}
    started = time.perf_counter()
    for day in range(first, series.days):
        as_of = START + timedelta(days=day)
        block = Block(series, day, Windows.ending(as_of, cfg))
        for t in shifts.detect(block, as_of, cfg):
            if t.p_value is not None:
                slot = tally["outlet" if t.group_type == "outlet" else "aggregate"]
                slot[0] += 1
                slot[1] += t.p_value < 0.05
                slot[2] += t.p_value < 0.01
            if not t.alert:
                continue
            if t.kind == "stance":
                stance.setdefault((t.group_type, t.group_value), []).append((day, t.direction))
            elif t.kind == "coverage":
                coverage.setdefault((t.group_type, t.group_value), []).append(day)
    return stance, coverage, time.perf_counter() - started, tally


def verify(series: Series, cfg: ShiftConfig, days: list[int]) -> tuple[int, float, float]:
    """Compare the swapped collect_groups with the original on real ArticleRow lists.
    Returns (days checked, original detect s/day, swapped detect s/day)."""
    t_orig = t_fast = 0.0
    for day in days:
        as_of = START + timedelta(days=day)
        windows = Windows.ending(as_of, cfg)
        rows = rows_for(series, (windows.baseline_start - START).days, day)
        started = time.perf_counter()
        shifts.collect_groups = ORIGINAL_COLLECT
        try:
            slow = shifts.detect(rows, as_of, cfg)
        finally:
            shifts.collect_groups = fast_collect_groups
        t_orig += time.perf_counter() - started
        started = time.perf_counter()
        fast = shifts.detect(Block(series, day, windows), as_of, cfg)
        t_fast += time.perf_counter() - started
        assert [(t.group_type, t.group_value) for t in slow] == \
               [(t.group_type, t.group_value) for t in fast], "groups differ"
        for a, b in zip(slow, fast, strict=True):
            assert (a.n_window, a.n_baseline, a.kind) == (b.n_window, b.n_baseline, b.kind), a
            assert np.allclose(a.mass_window, b.mass_window, atol=1e-9), a
            assert np.allclose(a.mass_baseline, b.mass_baseline, atol=1e-9), a
            assert a.alert == b.alert and a.direction == b.direction, (a, b)
            if a.p_value is not None:
                assert abs(a.p_value - b.p_value) < 1e-6, (a.p_value, b.p_value)  # type: ignore[operator]
    return len(days), t_orig / len(days), t_fast / len(days)


# --------------------------------------------------------------------------- scoring


def episodes(days: list[int]) -> int:
    days = sorted(set(days))
    return sum(1 for i, d in enumerate(days) if i == 0 or d != days[i - 1] + 1)


def null_rates(series_alerts: list[dict], outlets: list[Outlet], n_days: int,
               all_groups: list[tuple[str, str]]) -> dict:
    """Alert days and episodes per group per 90 days, outlet groups vs aggregate groups."""
    out = {}
    for label, members in (("outlet", [g for g in all_groups if g[0] == "outlet"]),
                           ("aggregate", [g for g in all_groups if g[0] != "outlet"])):
        alert_days = ep = 0
        worst = 0.0
        for alerts in series_alerts:
            for g in members:
                days = [d for d, _ in alerts.get(g, [])]
                alert_days += len(set(days))
                ep += episodes(days)
                worst = max(worst, len(set(days)))
        units = len(members) * len(series_alerts) * n_days / 90
        out[label] = {"days": alert_days, "episodes": ep, "days_per_90": alert_days / units,
                      "episodes_per_90": ep / units, "worst_group_days": worst,
                      "groups": len(members), "group_days": len(members) * len(series_alerts) *
                      n_days}
    return out


def power(series_list: list[Series], alerts_list: list[dict], horizon: int = 14) -> dict:
    """Per volume class: [detected, total, delays, alert days per detected shift (first 45
    days), episodes per detected shift (first 45 days)]."""
    res: dict[str, list] = {}
    for series, alerts in zip(series_list, alerts_list, strict=True):
        for k, s, _pp in series.onsets:
            o = series.outlets[k]
            hits = [d - s for d, direction in alerts.get(("outlet", o.id), [])
                    if direction == "pro_russian" and s <= d <= s + horizon]
            slot = res.setdefault(volume_class(o.volume), [0, 0, [], [], []])
            slot[1] += 1
            if hits:
                slot[0] += 1
                slot[2].append(min(hits))
                later = [d for d, direction in alerts.get(("outlet", o.id), [])
                         if direction == "pro_russian" and s <= d < s + 45]
                slot[3].append(len(set(later)))
                slot[4].append(episodes(later))
    return res


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --------------------------------------------------------------------------- main


def interval_coverage(rng: np.random.Generator, reps: int) -> None:
    """Coverage of the alerts' 95% intervals (estimation.mixture) by simulation: the true share
    of one class drawn at the low edge (0-5%), the middle (20-60%) or the high edge (95-100%),
    the rest split at random; hard predictions from a classifier of the given accuracy (errors
    spread evenly); corrected with its confusion matrix. "raw" is the uncorrected interval
    of the same masses, as a share of the true mix: what the table would say without the
    correction."""
    from estimation import mixture

    print("\n### Interval coverage (95% profile-likelihood intervals of the true share; "
          f"{reps} windows per cell)\n")
    print("| true share | classifier accuracy | articles | coverage (corrected) | mean width | "
          "coverage (raw, uncorrected) |")
    print("| --- | --- | --- | --- | --- | --- |")
    ranges = {"0-5%": (0.0, 0.05), "20-60%": (0.2, 0.6), "95-100%": (0.95, 1.0)}
    for label, (lo, hi) in ranges.items():
        for accuracy in (0.6, 0.75, 0.9):
            c = np.full((3, 3), (1 - accuracy) / 2)
            np.fill_diagonal(c, accuracy)
            for n in (30, 100, 300):
                hits = raw_hits = 0
                width = 0.0
                for _ in range(reps):
                    share = rng.uniform(lo, hi)
                    split = rng.uniform(0.2, 0.8)
                    mix = np.array([share, (1 - share) * split, (1 - share) * (1 - split)])
                    truth = rng.choice(3, size=n, p=mix)
                    pred = (rng.random(n)[:, None] < np.cumsum(c[truth], axis=1)).argmax(axis=1)
                    mass = np.bincount(pred, minlength=3).astype(float)
                    t_hat = mixture.mle(mass, c)
                    low, high = mixture.interval(mass, 0, c, 1.0, t_hat)
                    raw_low, raw_high = mixture.interval(mass, 0)
                    hits += low <= share <= high
                    raw_hits += raw_low <= share <= raw_high
                    width += high - low
                print(f"| {label} | {accuracy:.0%} | {n} | {hits / reps:.1%} | "
                      f"{width / reps:.3f} | {raw_hits / reps:.1%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="150 days x 8 outlets, 1 year each")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--outlets", type=int, default=None)
    parser.add_argument("--null-years", type=int, default=None, help="null series replicates")
    parser.add_argument("--shift-years", type=int, default=None, help="replicates per shift size")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--intervals-only", action="store_true",
                        help="print the interval coverage table only")
    parser.add_argument("--interval-reps", type=int, default=400)
    args = parser.parse_args()
    if args.intervals_only:
        interval_coverage(np.random.default_rng(args.seed), args.interval_reps)
        return
    days = args.days or (150 if args.small else 365)
    n_out = args.outlets or (8 if args.small else 20)
    null_years = args.null_years or (1 if args.small else 2)
    shift_years = args.shift_years or (1 if args.small else 2)
    rng = np.random.default_rng(args.seed)
    t_total = time.perf_counter()
    print(f"load average at start: {load()}", flush=True)

    shifts.collect_groups = fast_collect_groups
    mu, acc, soft = calibrate_mu(0.80, rng)
    outlets = make_outlets(n_out, rng)
    cfg_raw = ShiftConfig()
    cfg_cor = replace(cfg_raw, confusion=tuple(tuple(round(float(v), 4) for v in r)
                                               for r in soft))
    print(f"classifier model: mu={mu:.3f}, argmax accuracy {acc:.3f}, soft confusion "
          f"{np.round(soft, 3).tolist()}", flush=True)
    for o in outlets:
        print(f"  {o.id} {o.country} {o.lang} {o.affiliation:13s} {o.volume:6.1f}/day "
              f"mix {np.round(o.mix, 2).tolist()} ({volume_class(o.volume)})")
    groups = sorted({k for o in outlets for k in (
        ("outlet", o.id), ("country", o.country), ("language", o.lang),
        ("affiliation", o.affiliation), ("all", "all"))})
    first = cfg_raw.window_days + cfg_raw.baseline_days - 1
    n_eval = days - first
    print(f"{len(groups)} groups, {n_eval} evaluated days per series", flush=True)

    # the swap of collect_groups is checked against the original on real ArticleRow lists
    started = time.perf_counter()
    check = simulate(outlets, min(days, first + 40), mu, rng, pp=0.0, keep_articles=True)
    check_days = [first, first + 13, first + 27, min(days, first + 40) - 1]
    checked, per_day_orig, per_day_fast = verify(check, cfg_cor, check_days)
    n_rows = int(check.count[: first + 1].sum())
    print(f"checked swapped collect_groups on {checked} days ({n_rows:,} rows in a 35-day "
          f"span): identical; original detect {per_day_orig:.2f} s/day, "
          f"swapped {per_day_fast:.3f} s/day ({time.perf_counter() - started:.1f} s)", flush=True)

    timings: dict[str, float] = {}
    sim_s = 0.0
    results: dict[str, dict] = {}
    plans = [("null", 0.0, None, null_years), ("null, daily mix jitter kappa=100", 0.0, 100.0, 1),
             ("null, stories: daily mix jitter kappa=10", 0.0, 10.0, 1)]
    plans += [(f"shift {int(pp * 100)} pp", pp, None, shift_years) for pp in (0.10, 0.15, 0.20)]
    for name, pp, kappa, years in plans:
        for cfg_name in ("raw", "corrected"):
            results[f"{name}|{cfg_name}"] = {"series": [], "stance": [], "coverage": [],
                                             "tally": []}
        for _ in range(years):
            started = time.perf_counter()
            series = simulate(outlets, days, mu, rng, pp=pp, kappa=kappa)
            sim_s += time.perf_counter() - started
            for cfg_name, cfg in (("raw", cfg_raw), ("corrected", cfg_cor)):
                stance, coverage, secs, tally = run_detector(series, cfg)
                timings[cfg_name] = timings.get(cfg_name, 0.0) + secs
                r = results[f"{name}|{cfg_name}"]
                r["series"].append(series)
                r["stance"].append(stance)
                r["coverage"].append(coverage)
                r["tally"].append(tally)
        print(f"  {name}: {years} series done ({time.perf_counter() - t_total:.0f} s, "
              f"load {load()})", flush=True)
    total_s = time.perf_counter() - t_total
    calls = sum(len(r["series"]) for r in results.values()) * n_eval

    # ------------------------------------------------------------------ tables
    print(f"\nload average at end: {load()}")
    volumes = sorted(o.volume for o in outlets)
    print(f"\n### False alarms (null series; {n_out} outlets, {len(groups)} groups; "
          f"{n_eval} evaluated days per series; stance alerts only)\n")
    print("| series | correction | group type | alert days / group / 90 d | "
          "episodes / group / 90 d | alert days (total) | worst group (days) | target |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, _pp, _k, years in plans:
        if not name.startswith("null"):
            continue
        for cfg_name in ("raw", "corrected"):
            r = results[f"{name}|{cfg_name}"]
            rates = null_rates(r["stance"], outlets, n_eval, groups)
            for gt in ("outlet", "aggregate"):
                x = rates[gt]
                print(f"| {name} ({years} yr) | {cfg_name} | {gt} ({x['groups']}) | "
                      f"**{x['days_per_90']:.3f}** | {x['episodes_per_90']:.3f} | {x['days']} | "
                      f"{x['worst_group_days']:.0f} | <= 1 |")
    print("\nCalibration of the scaled G-test under the null (all tested group-days, raw "
          "series):\n")
    print("| series | group type | tests | p < 0.05 | p < 0.01 |")
    print("| --- | --- | --- | --- | --- |")
    for name, _pp, _k, _y in plans:
        if not name.startswith("null"):
            continue
        for gt in ("outlet", "aggregate"):
            tested = sum(t[gt][0] for t in results[f"{name}|raw"]["tally"])
            p05 = sum(t[gt][1] for t in results[f"{name}|raw"]["tally"])
            p01 = sum(t[gt][2] for t in results[f"{name}|raw"]["tally"])
            print(f"| {name} | {gt} | {tested:,} | {p05 / max(tested, 1):.2%} (nominal 5 %) | "
                  f"{p01 / max(tested, 1):.2%} (nominal 1 %) |")
    cov = sum(len(v) for c in results["null|raw"]["coverage"] for v in c.values())
    print(f"\ncoverage alerts (volume_drop) in the null series, raw: {cov} (Poisson noise on "
          "the smallest outlets; not counted above)")

    print("\n### Detection power (planted shifts in the true pro_russian share; detected = a "
          "pro_russian stance alert on the outlet's group within 14 days)\n")
    print("| shift | correction | volume class (articles/day) | shifts | detected ≤ 14 d | "
          "median delay (days) | delay range | alert days / episodes per detected shift "
          "(first 45 d, median) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    bounds = {"small": "< 20", "medium": "20-80", "large": ">= 80"}
    for name, pp, _k, _y in plans:
        if not pp:
            continue
        for cfg_name in ("raw", "corrected"):
            r = results[f"{name}|{cfg_name}"]
            res = power(r["series"], r["stance"])
            for cls in ("small", "medium", "large"):
                if cls not in res:
                    continue
                hit, tot, delays, n_days, n_eps = res[cls]
                med = f"{np.median(delays):.1f}" if delays else "–"
                rng_s = f"{min(delays)}-{max(delays)}" if delays else "–"
                print(f"| {name} | {cfg_name} | {cls} ({bounds[cls]}) | {tot} | "
                      f"**{hit / tot:.0%}** ({hit}) | {med} | {rng_s} | "
                      + (f"{np.median(n_days):.0f} / {np.median(n_eps):.0f} |" if n_days
                         else "– |"))

    print("\n### Run\n")
    print("| measure | result |")
    print("| --- | --- |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| outlets' base volumes | {volumes[0]:.0f}-{volumes[-1]:.0f}/day, geometric; "
          f"{sum(volumes):.0f}/day in total before weekends |")
    print(f"| classifier noise | accuracy {acc:.3f}, soft confusion diagonal "
          f"{np.round(np.diag(soft), 3).tolist()} |")
    print(f"| detect() calls | {calls:,} ({len(groups)} groups each) |")
    print(f"| detector time, raw / corrected | {timings['raw']:.0f} s / "
          f"{timings['corrected']:.0f} s = {1000 * sum(timings.values()) / calls:.0f} ms/call |")
    print(f"| original detect (per-row collect_groups) per day, on ~{n_rows:,} rows | "
          f"{per_day_orig:.2f} s (swapped: {per_day_fast:.3f} s) |")
    print(f"| simulation time | {sim_s:.0f} s |")
    print(f"| total run time | {total_s:.0f} s |")
    print(f"| peak RSS | {peak:,.0f} MB |")
    interval_coverage(rng, args.interval_reps)


if __name__ == "__main__":
    main()
