"""Chart specs shared by alert emails and the HTML report.

Colours come from the Okabe-Ito palette, which people with the common colour-vision deficiencies
can tell apart; each stance keeps its colour everywhere.
"""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import vl_convert as vlc

STANCE_COLOURS = {"pro_russian": "#D55E00", "neutral": "#999999", "pro_kazakh": "#0072B2"}
STANCE_NAMES = {"pro_russian": "pro-Russian", "neutral": "neutral", "pro_kazakh": "pro-Kazakh"}


def stance_scale() -> alt.Scale:
    return alt.Scale(domain=list(STANCE_NAMES.values()), range=list(STANCE_COLOURS.values()))


def weekly_shares_chart(
    weekly: list[dict],
    window_start: date | None = None,
    window_end: date | None = None,
    title: str = "",
    width: int = 520,
    height: int = 220,
) -> alt.Chart:
    """Stacked weekly stance shares (probability mass) as bars, one per week (weeks start on
    Monday). Weeks that overlap the alert window are drawn solid, earlier weeks faded."""
    rows = []
    for week in weekly:
        start = pd.Timestamp(week["week"])
        in_window = bool(
            window_start is not None
            and window_end is not None
            and start <= pd.Timestamp(window_end)
            and start + pd.Timedelta(days=6) >= pd.Timestamp(window_start)
        )
        for label, name in STANCE_NAMES.items():
            rows.append(
                {
                    "week": start.strftime("%d %b"),
                    "start": start,
                    "stance": name,
                    "share": float(week[label] or 0.0),
                    "articles": int(week["n_articles"]),
                    "period": "alert window" if in_window else "before",
                }
            )
    data = pd.DataFrame(rows, columns=["week", "start", "stance", "share", "articles", "period"])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("week:O", title="Week starting", sort=alt.SortField("start")),
            y=alt.Y(
                "share:Q",
                stack="normalize",
                title="Share of coverage (%)",
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color(
                "stance:N", scale=stance_scale(), title="Stance", sort=list(STANCE_NAMES.values())
            ),
            order=alt.Order("stance_order:Q"),
            opacity=alt.Opacity(
                "period:N",
                scale=alt.Scale(domain=["before", "alert window"], range=[0.55, 1.0]),
                title="Period",
            ),
            tooltip=[
                "week:N",
                "stance:N",
                alt.Tooltip("share:Q", format=".0%"),
                alt.Tooltip("articles:Q", title="articles that week"),
            ],
        )
        .transform_calculate(
            stance_order="indexof(['pro-Russian','neutral','pro-Kazakh'], datum.stance)"
        )
        .properties(width=width, height=height, title=title)
    )


def to_png(chart: alt.TopLevelMixin, scale: float = 1.5) -> bytes:
    return vlc.vegalite_to_png(chart.to_json(), scale=scale)


def to_svg(chart: alt.TopLevelMixin) -> str:
    return vlc.vegalite_to_svg(chart.to_json())
