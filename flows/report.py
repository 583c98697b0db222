"""``cstowatch report``: one self-contained HTML page about a period of coverage.

Three layers, each testable on its own:

- data functions take a DuckDB connection and the period and return plain dicts, with shares as
  fractions (the mean calibrated class probability of the relevant articles, as in the
  ``weekly_stance`` view and the alert detector);
- chart builders turn those rows into Altair charts (same colour per stance everywhere:
  ``flows.charts.STANCE_COLOURS``), rendered to inline SVG with vl-convert;
- ``write_report`` renders ``flows/templates/report.html.jinja`` with autoescape on, so every text
  that came from the web (titles, passages, outlet names, URLs) is HTML-escaped, and a link is
  emitted only for http(s) URLs.

The page loads nothing: CSS, JavaScript and SVG charts are inline, and its Content-Security-Policy
allows no network requests and only its own script (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import altair as alt
import duckdb
import pandas as pd
from jinja2 import Environment, PackageLoader

from estimation.mixture import format_share
from flows.alerting import COUNTRY_NAMES, LANGUAGE_NAMES, group_weekly
from flows.charts import STANCE_COLOURS, STANCE_NAMES, stance_scale, to_svg
from flows.shifts import LABELS, ShiftConfig, Windows
from warehouse.db import connect

DEFAULT_OUT = Path("data/report.html")
PERIOD_WEEKS = 12
RECENT_DAYS = ShiftConfig().window_days  # "last 7 days": the alert detector's window
PREVIOUS_DAYS = ShiftConfig().baseline_days  # "previous 28 days": its baseline
PASSAGE_CHARS = 400
VOLUME_COLOUR = "#4D4D4D"
NEUTRAL_MID = "#F2F2F2"
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


# ---------------------------------------------------------------- period


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def latest_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest article day in the database (the outlet's day of publication, or of the
    fetch when undated)."""
    row = con.execute(
        "select max(outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at)) "
        "from articles a join sources s using (source_id) where a.duplicate_of is null"
    ).fetchone()
    return row[0] if row and row[0] else None


def resolve_period(
    con: duckdb.DuckDBPyConnection, since: date | None = None, until: date | None = None
) -> tuple[date, date]:
    """Defaults: until the latest article day; since so that the period is 12 whole weeks
    (84 days, ``until`` included)."""
    if isinstance(since, datetime):
        since = since.date()
    if isinstance(until, datetime):
        until = until.date()
    if until is None:
        until = latest_day(con) or datetime.now(UTC).date()
    if since is None:
        since = until - timedelta(weeks=PERIOD_WEEKS) + timedelta(days=1)
    if since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    return since, until


def weeks_between(since: date, until: date) -> list[date]:
    """The Mondays of every (possibly partial) week of the period."""
    out, week = [], monday(since)
    while week <= until:
        out.append(week)
        week += timedelta(weeks=1)
    return out


# ---------------------------------------------------------------- data


def _shares(n: int, pr: float | None, ne: float | None, pk: float | None) -> dict[str, Any]:
    return {
        "n": int(n),
        "pro_russian": float(pr or 0.0),
        "neutral": float(ne or 0.0),
        "pro_kazakh": float(pk or 0.0),
    }


def country_name(code: str | None) -> str:
    if not code:
        return "unknown country"
    return COUNTRY_NAMES.get(code, code)


def language_name(code: str | None) -> str:
    if not code or code == "unknown":
        return "unknown language"
    return LANGUAGE_NAMES.get(code, code)


def period_summary(con: duckdb.DuckDBPyConnection, since: date, until: date) -> dict[str, Any]:
    row = con.execute(
        "select count(*), count(distinct source_id) from relevant_articles "
        "where day between ? and ?",
        [since, until],
    ).fetchone()
    collected = con.execute(
        "select count(*) from articles a join sources s using (source_id) "
        "where a.duplicate_of is null and "
        "outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at) between ? and ?",
        [since, until],
    ).fetchone()
    models = con.execute(
        "select model_id, count(*) from relevant_articles where day between ? and ? "
        "group by model_id order by count(*) desc, model_id",
        [since, until],
    ).fetchall()
    return {
        "since": since,
        "until": until,
        "n_relevant": int(row[0]) if row else 0,
        "n_outlets": int(row[1]) if row else 0,
        "n_collected": int(collected[0]) if collected else 0,
        "models": [{"model_id": m, "n": int(n)} for m, n in models],
    }


def headline(con: duckdb.DuckDBPyConnection, until: date) -> dict[str, Any]:
    """Stance mix in the last 7 days vs the 28 days before, overall and per country of outlet.

    Rows: ``{"country", "name", "recent": shares|None, "previous": shares|None,
    "delta_pp": {label: percentage points}|None}``, the "all outlets" row first.
    """
    windows = Windows.ending(
        until, ShiftConfig(window_days=RECENT_DAYS, baseline_days=PREVIOUS_DAYS)
    )
    cells: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, start, end in (
        ("recent", windows.window_start, windows.window_end),
        ("previous", windows.baseline_start, windows.baseline_end),
    ):
        total = con.execute(
            "select count(*), avg(p_pro_russian), avg(p_neutral), avg(p_pro_kazakh) "
            "from relevant_articles where day between ? and ?",
            [start, end],
        ).fetchone() or (0, None, None, None)
        cells["*"][key] = _shares(*total) if total[0] else None
        for country, *values in con.execute(
            "select coalesce(country, ''), count(*), avg(p_pro_russian), avg(p_neutral), "
            "avg(p_pro_kazakh) from relevant_articles where day between ? and ? group by 1",
            [start, end],
        ).fetchall():
            cells[country][key] = _shares(*values)
    rows: list[dict[str, Any]] = []
    for country, c in cells.items():
        recent, previous = c.get("recent"), c.get("previous")
        delta = None
        if recent and previous:
            delta = {lab: 100 * (recent[lab] - previous[lab]) for lab in LABELS}
        rows.append(
            {
                "country": country,
                "name": "All outlets" if country == "*" else f"{country_name(country)} outlets",
                "recent": recent,
                "previous": previous,
                "delta_pp": delta,
            }
        )
    rows.sort(
        key=lambda r: (
            r["country"] != "*",
            -(r["recent"] or {}).get("n", 0),
            -(r["previous"] or {}).get("n", 0),
            r["name"],
        )
    )
    return {
        "recent_start": windows.window_start,
        "recent_end": windows.window_end,
        "previous_start": windows.baseline_start,
        "previous_end": windows.baseline_end,
        "rows": rows,
    }


def weekly_by_group(
    con: duckdb.DuckDBPyConnection, since: date, until: date, by: str
) -> list[dict[str, Any]]:
    """Weekly article counts and stance shares per outlet (``by="outlet"``) or language.

    Only weeks with articles appear; weeks are Mondays, counted within the period only.
    """
    if by not in ("outlet", "language"):
        raise ValueError(f"by must be outlet or language, not {by!r}")
    result = con.execute(
        """
        select
            case when $by = 'outlet' then source_id else coalesce(lang, 'unknown') end as grp,
            any_value(source_name) as source_name,
            any_value(country) as country,
            cast(date_trunc('week', day) as date) as week,
            count(*) as n_articles,
            avg(p_pro_russian), avg(p_neutral), avg(p_pro_kazakh)
        from relevant_articles
        where day between $since and $until
        group by grp, week
        order by grp, week
        """,
        {"by": by, "since": since, "until": until},
    ).fetchall()
    out = []
    for grp, source_name, country, week, n, pr, ne, pk in result:
        label = f"{source_name} ({country})" if by == "outlet" else language_name(grp)
        out.append(
            {
                "group": grp,
                "label": label,
                "country": country if by == "outlet" else None,
                "week": week,
                "n_articles": int(n),
                "pro_russian": float(pr or 0.0),
                "neutral": float(ne or 0.0),
                "pro_kazakh": float(pk or 0.0),
            }
        )
    return out


def heatmap_cells(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[dict[str, Any]]:
    """Outlet x week cells: ``balance_pp`` = pro-Russian share minus pro-Kazakh share, in pp."""
    return [
        {
            "group": r["group"],
            "label": r["label"],
            "country": r["country"],
            "week": r["week"],
            "n_articles": r["n_articles"],
            "pro_russian": r["pro_russian"],
            "pro_kazakh": r["pro_kazakh"],
            "balance_pp": 100 * (r["pro_russian"] - r["pro_kazakh"]),
        }
        for r in weekly_by_group(con, since, until, "outlet")
    ]


def safe_url(url: Any) -> str | None:
    """The URL if it is an absolute http(s) URL (fit for an href), else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _json(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return default
    return value


def strongest_passage(evidence: Any, label: str | None) -> dict[str, Any] | None:
    """The passage with the highest probability of the article's label (``{"text", "p"}``)."""
    best, best_p = None, -1.0
    for passage in _json(evidence, []) or []:
        if not isinstance(passage, dict) or not passage.get("text"):
            continue
        probs = passage.get("probs") or {}
        try:
            p = float(probs[label]) if label in probs else max(float(v) for v in probs.values())
        except (TypeError, ValueError):
            p = 0.0
        if p > best_p:
            best, best_p = passage, p
    if best is None:
        return None
    return {"text": str(best["text"]), "p": best_p, "kind": best.get("kind")}


def article_rows(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[dict[str, Any]]:
    """The period's relevant articles, newest first, with confidence = max class probability."""
    result = con.execute(
        """
        select r.article_id, r.source_name, r.country, r.day, r.lang, r.label,
               r.p_pro_russian, r.p_neutral, r.p_pro_kazakh, r.url, r.title, st.evidence
        from relevant_articles r
        join article_stance st using (article_id)
        where r.day between ? and ?
        order by r.day desc, r.source_name, r.article_id
        """,
        [since, until],
    ).fetchall()
    out = []
    for aid, outlet, country, day, lang, label, pr, ne, pk, url, title, evidence in result:
        probs = {
            "pro_russian": float(pr or 0.0),
            "neutral": float(ne or 0.0),
            "pro_kazakh": float(pk or 0.0),
        }
        passage = strongest_passage(evidence, label)
        out.append(
            {
                "article_id": aid,
                "outlet": outlet,
                "country": country,
                "date": day,
                "lang": lang or "unknown",
                "language": language_name(lang),
                "label": label,
                "label_name": STANCE_NAMES.get(label or "", label or "none"),
                "confidence": max(probs.values()),
                "probs": probs,
                "passage": passage["text"] if passage else "",
                "title": title or "",
                "url": url,
                "href": safe_url(url),
            }
        )
    return out


def _alert_row(row: dict[str, Any]) -> dict[str, Any]:
    alert = dict(row)
    for key in ("shares_before", "shares_after", "ci_before", "ci_after"):
        alert[key] = _json(row.get(key), {}) or {}
    evidence = []
    for item in _json(row.get("evidence"), []) or []:
        if isinstance(item, dict):
            evidence.append(
                dict(
                    item,
                    href=safe_url(item.get("url")),
                    label_name=STANCE_NAMES.get(item.get("label") or "", item.get("label") or ""),
                )
            )
    alert["evidence"] = evidence
    alert["window_days"] = (row["window_end"] - row["window_start"]).days + 1
    alert["baseline_days"] = (row["baseline_end"] - row["baseline_start"]).days + 1
    alert["direction_name"] = STANCE_NAMES.get(row["direction"], row["direction"])
    effect = float(row["effect_pp"])
    if row["kind"] == "coverage":
        alert["headline"] = (
            f"Coverage collapse: {row['group_label']}, volume -{effect:.0f}% "
            f"({alert['window_days']} d vs {alert['baseline_days']} d)"
        )
        alert["per_day_window"] = float(row["n_window"]) / alert["window_days"]
        alert["per_day_baseline"] = float(row["n_baseline"]) / alert["baseline_days"]
    else:
        alert["headline"] = (
            f"Stance shift: {row['group_label']}, {alert['direction_name']} "
            f"{effect:+.0f} pp ({alert['window_days']} d vs "
            f"{alert['baseline_days']} d)"
        )
    return alert


def period_alerts(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[dict[str, Any]]:
    """Alerts whose window ends in the period, JSON decoded; stance alerts first, then by
    severity and size of the effect."""
    cursor = con.execute(
        "select * from alerts where window_end between ? and ? order by window_end desc",
        [since, until],
    )
    columns = [d[0] for d in cursor.description or []]
    alerts = [_alert_row(dict(zip(columns, r, strict=True))) for r in cursor.fetchall()]
    alerts.sort(
        key=lambda a: (
            a["kind"] != "stance",
            -a["window_end"].toordinal(),
            _SEVERITY_ORDER.get(a["severity"], 3),
            -abs(a["effect_pp"]),
            a["group_label"],
        )
    )
    return alerts


def alert_weekly(con: duckdb.DuckDBPyConnection, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert group's weekly counts and shares over the 12 weeks ending with its window."""
    return group_weekly(con, alert, PERIOD_WEEKS)


# ---------------------------------------------------------------- charts

_STANCE_ORDER = list(STANCE_NAMES.values())


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _dt(day: date) -> alt.DateTime:
    return alt.DateTime(year=day.year, month=day.month, date=day.day)


def _week_axis(weeks: list[date], labels: bool = True) -> alt.Axis:
    step = 1 if len(weeks) <= 14 else (len(weeks) + 12) // 13
    return alt.Axis(
        values=[_dt(w) for w in weeks[::step]],
        format="%d %b",
        labels=labels,
        labelAngle=0 if len(weeks) <= 8 else -40,
        grid=False,
    )


def _count_ticks(peak: int) -> list[int]:
    if peak <= 3:
        return list(range(peak + 1))
    return sorted({0, peak // 2, peak})


def weekly_chart(
    rows: list[dict[str, Any]],
    weeks: list[date],
    title: str = "",
    width: int = 430,
    window: tuple[date, date] | None = None,
) -> alt.VConcatChart:
    """Weekly stance shares stacked to 100% (one block per week, so a week without articles
    stays blank rather than being interpolated) over weekly volume bars.

    ``rows``: ``{"week", "n_articles", "pro_russian", "neutral", "pro_kazakh"}`` for the weeks
    with articles; ``weeks`` fixes the x range; ``window`` is outlined (an alert's window).
    Stacking is done here, pro-Russian at the bottom, as in ``flows.charts``.
    """
    by_week = {r["week"]: r for r in rows if r["n_articles"] > 0}
    blocks = []
    for week in weeks:
        if week not in by_week:
            continue
        r = by_week[week]
        total = sum(float(r[label] or 0.0) for label in LABELS) or 1.0
        bottom = 0.0
        for label, name in STANCE_NAMES.items():
            share = float(r[label] or 0.0) / total
            blocks.append(
                {
                    "start": _ts(week),
                    "end": _ts(week + timedelta(weeks=1)),
                    "stance": name,
                    "share": share,
                    "y0": bottom,
                    "y1": bottom + share,
                    "articles": r["n_articles"],
                }
            )
            bottom += share
    shares = pd.DataFrame(
        blocks, columns=["start", "end", "stance", "share", "y0", "y1", "articles"]
    )
    domain = [_dt(weeks[0]), _dt(weeks[-1] + timedelta(weeks=1))] if weeks else None
    x_scale = alt.Scale(domain=domain) if domain else alt.Undefined
    area = (
        alt.Chart(shares)
        .mark_rect()
        .encode(
            x=alt.X("start:T", title=None, scale=x_scale, axis=_week_axis(weeks, labels=False)),
            x2="end:T",
            y=alt.Y(
                "y0:Q",
                title="Share (%)",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", values=[0, 0.5, 1]),
            ),
            y2="y1:Q",
            color=alt.Color(
                "stance:N", scale=stance_scale(), sort=_STANCE_ORDER, title="Stance", legend=None
            ),
        )
        .properties(width=width, height=110)
    )
    top: Any = area
    if window is not None:
        band = (
            alt.Chart(
                pd.DataFrame(
                    {"start": [_ts(window[0])], "end": [_ts(window[1] + timedelta(days=1))]}
                )
            )
            .mark_rect(fill="none", stroke="black", strokeWidth=2.5, strokeDash=[5, 3])
            .encode(x=alt.X("start:T", scale=x_scale), x2="end:T")
        )
        top = alt.layer(area, band)
    volume = pd.DataFrame(
        [
            {
                "start": _ts(w + timedelta(hours=12)),
                "end": _ts(w + timedelta(days=6, hours=12)),
                "articles": by_week[w]["n_articles"] if w in by_week else 0,
            }
            for w in weeks
        ],
        columns=["start", "end", "articles"],
    )
    peak = int(volume["articles"].max()) if len(volume) else 0
    bars = (
        alt.Chart(volume)
        .mark_rect(color=VOLUME_COLOUR)
        .encode(
            x=alt.X(
                "start:T", title="Week starting (Monday)", scale=x_scale, axis=_week_axis(weeks)
            ),
            x2="end:T",
            y=alt.Y(
                "articles:Q",
                title="Articles / week",
                scale=alt.Scale(domain=[0, max(peak, 1)], nice=False),
                axis=alt.Axis(values=_count_ticks(max(peak, 1)), format="d"),
            ),
            y2=alt.datum(0),
        )
        .properties(width=width, height=48)
    )
    chart = alt.vconcat(top, bars, spacing=6)
    if title:
        chart = chart.properties(title=alt.TitleParams(title, anchor="start", fontSize=13))
    return chart


def headline_chart(head: dict[str, Any], width: int = 340) -> alt.FacetChart:
    """Per country: two 100% bars, the last 7 days above the previous 28 days."""
    periods = [("recent", f"Last {RECENT_DAYS} days"), ("previous", f"Previous {PREVIOUS_DAYS} d")]
    rows = []
    for row in head["rows"]:
        for key, period in periods:
            shares = row[key]
            if not shares or not shares["n"]:
                continue
            for label, name in STANCE_NAMES.items():
                rows.append(
                    {
                        "group": row["name"],
                        "period": period,
                        "stance": name,
                        "share": shares[label],
                        "n": shares["n"],
                    }
                )
    data = pd.DataFrame(rows, columns=["group", "period", "stance", "share", "n"])
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                "share:Q",
                stack="normalize",
                title="Share of relevant coverage (%)",
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1]),
            ),
            y=alt.Y("period:N", title=None, sort=[p for _, p in periods]),
            color=alt.Color(
                "stance:N",
                scale=stance_scale(),
                sort=_STANCE_ORDER,
                title="Stance",
                legend=alt.Legend(orient="bottom"),
            ),
            order=alt.Order("stance_order:Q"),
        )
        .transform_calculate(
            stance_order="indexof(['pro-Russian','neutral','pro-Kazakh'], datum.stance)"
        )
        .properties(width=width, height=alt.Step(15))
    )
    return bars.facet(
        row=alt.Row(
            "group:N",
            sort=[r["name"] for r in head["rows"]],
            title=None,
            header=alt.Header(
                labelAngle=0,
                labelAlign="left",
                labelAnchor="start",
                labelFontWeight="bold",
                labelOrient="top",
                labelPadding=2,
            ),
        ),
        spacing=6,
    )


def _signed(value: float) -> str:
    rounded = round(value)
    return f"{rounded:+d}" if rounded else "0"


def heatmap_chart(cells: list[dict[str, Any]], weeks: list[date]) -> Any:
    """Outlets x weeks, coloured by pro-Russian minus pro-Kazakh share (diverging, symmetric)."""
    many_years = len({w.year for w in weeks}) > 1
    fmt = "%d %b %Y" if many_years else "%d %b"
    week_labels = [w.strftime(fmt) for w in weeks]
    peak = max([abs(c["balance_pp"]) for c in cells] + [1.0])
    limit = min(100.0, 25.0 * -(-peak // 25))  # round up to 25 pp steps, at most 100
    data = pd.DataFrame(
        [
            {
                "outlet": c["label"],
                "week": c["week"].strftime(fmt),
                "balance": c["balance_pp"],
                "n": c["n_articles"],
                "text": _signed(c["balance_pp"]),
                "dark": abs(c["balance_pp"]) > 0.6 * limit,
            }
            for c in cells
        ],
        columns=["outlet", "week", "balance", "n", "text", "dark"],
    )
    outlets = sorted({(c["country"] or "", c["label"]) for c in cells})
    y = alt.Y("outlet:N", title="Outlet (country)", sort=[o for _, o in outlets])
    x = alt.X(
        "week:O",
        title="Week starting (Monday)",
        sort=week_labels,
        scale=alt.Scale(domain=week_labels),
        axis=alt.Axis(labelAngle=-40),
    )
    rect = (
        alt.Chart(data)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "balance:Q",
                scale=alt.Scale(
                    domain=[-limit, 0, limit],
                    range=[
                        STANCE_COLOURS["pro_kazakh"],
                        NEUTRAL_MID,
                        STANCE_COLOURS["pro_russian"],
                    ],
                    interpolate="lab",
                ),
                title=["pro-Russian minus pro-Kazakh", "share (percentage points)"],
                legend=alt.Legend(
                    orient="right",
                    gradientLength=160,
                    direction="vertical",
                    values=[-limit, -limit / 2, 0, limit / 2, limit],
                    format="+.0f",
                ),
            ),
        )
    )
    text = (
        alt.Chart(data)
        .mark_text(fontSize=10)
        .encode(
            x=x,
            y=y,
            text="text:N",
            color=alt.condition("datum.dark", alt.value("white"), alt.value("#222222")),
        )
    )
    return alt.layer(rect, text).properties(width=max(300, 58 * len(weeks)), height=alt.Step(26))


_SVG_ID = re.compile(r'\bid="([^"]+)"')


def svg(chart: alt.TopLevelMixin, key: str) -> str:
    """Inline SVG of a chart; element ids get a per-chart prefix so that several charts can
    share one page without clashing clip paths or gradients."""
    out = to_svg(chart)
    ids = set(_SVG_ID.findall(out))
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key)
    for ident in sorted(ids, key=len, reverse=True):
        new = f"{prefix}-{ident}"
        out = out.replace(f'id="{ident}"', f'id="{new}"')
        out = out.replace(f"url(#{ident})", f"url(#{new})")
        out = out.replace(f'href="#{ident}"', f'href="#{new}"')
    return out.replace("<svg ", '<svg class="chart-svg" role="img" ', 1)


# ---------------------------------------------------------------- the page


def _group_charts(rows: list[dict[str, Any]], weeks: list[date], kind: str) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)
    out = [
        {
            "key": f"{kind}-{group}",
            "label": items[0]["label"],
            "rows": items,
            "n": sum(r["n_articles"] for r in items),
        }
        for group, items in groups.items()
    ]
    out.sort(key=lambda g: (-g["n"], g["label"]))
    for i, g in enumerate(out):
        g["svg"] = svg(
            weekly_chart(g["rows"], weeks, f"{g['label']}: {g['n']} articles"), f"{kind}-{i}"
        )
        g["alt"] = f"Weekly stance shares and article counts of {g['label']}"
    return out


def build_context(con: duckdb.DuckDBPyConnection, since: date, until: date) -> dict[str, Any]:
    """Everything the template shows, with the charts already rendered to SVG."""
    weeks = weeks_between(since, until)
    head = headline(con, until)
    outlets = weekly_by_group(con, since, until, "outlet")
    languages = weekly_by_group(con, since, until, "language")
    cells = heatmap_cells(con, since, until)
    alerts = period_alerts(con, since, until)
    for i, alert in enumerate(alerts):
        weekly = alert_weekly(con, alert)
        alert["weekly"] = weekly
        alert["svg"] = None
        if weekly:
            alert_weeks = weeks_between(
                alert["window_end"] - timedelta(weeks=PERIOD_WEEKS) + timedelta(days=1),
                alert["window_end"],
            )
            alert["svg"] = svg(
                weekly_chart(
                    weekly,
                    alert_weeks,
                    f"{alert['group_label']}: weekly stance shares",
                    window=(alert["window_start"], alert["window_end"]),
                ),
                f"alert-{i}",
            )
    has_head = any(r["recent"] or r["previous"] for r in head["rows"])
    return {
        "summary": period_summary(con, since, until),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "headline": head,
        "headline_svg": svg(headline_chart(head), "headline") if has_head else None,
        "outlet_charts": _group_charts(outlets, weeks, "outlet"),
        "language_charts": _group_charts(languages, weeks, "language"),
        "alerts": alerts,
        "heatmap_svg": svg(heatmap_chart(cells, weeks), "heatmap") if cells else None,
        "articles": article_rows(con, since, until),
        "labels": LABELS,
        "names": STANCE_NAMES,
        "colours": STANCE_COLOURS,
        "passage_chars": PASSAGE_CHARS,
    }


def _csp_hash(text: Any) -> str:
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{_signed(value)} pp".replace("-", "−")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flows", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(csp_hash=_csp_hash, pct=_pct, pp=_pp, share=format_share)
    return env


def render_report(context: dict[str, Any]) -> str:
    return environment().get_template("report.html.jinja").render(**context)


def write_report(
    db: Path, out: Path | None = None, since: date | None = None, until: date | None = None
) -> Path:
    """Write the HTML report of ``since``..``until`` (both included) and return its path."""
    out = Path(out) if out is not None else DEFAULT_OUT
    con = connect(db, read_only=True)
    try:
        since, until = resolve_period(con, since, until)
        context = build_context(con, since, until)
    finally:
        con.close()
    html = render_report(context)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
