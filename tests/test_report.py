"""The HTML report: the numbers behind each chart, escaping, and self-containment.

The fixture warehouse (tests/report_fixtures.py) documents every article; the expected values
below are computed by hand from that table.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fixtures import (
    HOSTILE_OUTLET,
    HOSTILE_PASSAGE,
    HOSTILE_TITLE,
    MODEL,
    SINCE,
    UNTIL,
    article_id,
    build_report_db,
)

from flows import report
from warehouse.db import connect

approx = pytest.approx


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report_db(tmp_path_factory.mktemp("report") / "r.duckdb")


@pytest.fixture()
def con(db: Path):  # type: ignore[no-untyped-def]
    con = connect(db, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def written(db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture report written with every default (period and output path), from a
    temporary working directory: (working directory, returned path)."""
    cwd, workdir = Path.cwd(), tmp_path_factory.mktemp("out")
    os.chdir(workdir)
    try:
        out = report.write_report(db)
    finally:
        os.chdir(cwd)
    return workdir, out


@pytest.fixture(scope="module")
def html(written: tuple[Path, Path]) -> str:
    workdir, out = written
    return (workdir / out).read_text(encoding="utf-8")


# ---------------------------------------------------------------- period


def test_default_period_is_12_weeks_ending_on_the_latest_article_day(con) -> None:  # type: ignore[no-untyped-def]
    # d2 (2026-11-30) is a duplicate, so the latest article day is 2026-11-29
    assert report.resolve_period(con) == (SINCE, UNTIL)
    assert (UNTIL - SINCE).days + 1 == 84
    assert report.resolve_period(con, until=date(2026, 11, 1)) == (
        date(2026, 8, 10),
        date(2026, 11, 1),
    )
    with pytest.raises(ValueError):
        report.resolve_period(con, since=date(2026, 12, 1), until=UNTIL)
    # the CLI's options arrive as datetimes
    assert report.resolve_period(
        con, since=datetime(2026, 11, 1, 5), until=datetime(2026, 11, 29)
    ) == (date(2026, 11, 1), UNTIL)


def test_weeks_are_mondays_covering_the_period() -> None:
    weeks = report.weeks_between(SINCE, UNTIL)
    assert len(weeks) == 12
    assert weeks[0] == date(2026, 9, 7) and weeks[-1] == date(2026, 11, 23)
    assert all(w.weekday() == 0 for w in weeks)
    assert report.weeks_between(date(2026, 11, 25), date(2026, 12, 1)) == [
        date(2026, 11, 23),
        date(2026, 11, 30),
    ]


def test_period_summary(con) -> None:  # type: ignore[no-untyped-def]
    s = report.period_summary(con, SINCE, UNTIL)
    assert s["n_relevant"] == 10  # a1-a4, b1-b4, c1, c2
    assert s["n_collected"] == 12  # + d1 (off-topic) and e1 (unclassified)
    assert s["n_outlets"] == 3
    assert s["models"] == [{"model_id": MODEL, "n": 10}]


# ---------------------------------------------------------------- headline


def test_headline_last_7_days_vs_previous_28_per_country(con) -> None:  # type: ignore[no-untyped-def]
    head = report.headline(con, UNTIL)
    assert (head["recent_start"], head["recent_end"]) == (date(2026, 11, 23), UNTIL)
    assert (head["previous_start"], head["previous_end"]) == (
        date(2026, 10, 26),
        date(2026, 11, 22),
    )
    rows = {r["country"]: r for r in head["rows"]}
    assert [r["country"] for r in head["rows"]][0] == "*"
    assert set(rows) == {"*", "KZ", "RU", "GB"}
    # all outlets, last 7 days: a1 a2 b1 b2 c1
    total = rows["*"]
    assert total["recent"] == approx(
        {"n": 5, "pro_russian": 0.38, "neutral": 0.38, "pro_kazakh": 0.24}
    )
    # previous 28 days: a3 a4 b3 b4 c2
    assert total["previous"] == approx(
        {"n": 5, "pro_russian": 0.22, "neutral": 0.46, "pro_kazakh": 0.32}
    )
    assert total["delta_pp"] == approx({"pro_russian": 16.0, "neutral": -8.0, "pro_kazakh": -8.0})
    kz = rows["KZ"]  # a1 (.1 .2 .7, the newer model's) and a2 / a3 and a4
    assert kz["name"] == "Kazakhstan outlets"
    assert kz["recent"] == approx({"n": 2, "pro_russian": 0.2, "neutral": 0.35, "pro_kazakh": 0.45})
    assert kz["previous"] == approx({"n": 2, "pro_russian": 0.1, "neutral": 0.4, "pro_kazakh": 0.5})
    assert kz["delta_pp"] == approx({"pro_russian": 10.0, "neutral": -5.0, "pro_kazakh": -5.0})
    ru = rows["RU"]
    assert ru["recent"] == approx({"n": 2, "pro_russian": 0.7, "neutral": 0.2, "pro_kazakh": 0.1})
    assert ru["previous"] == approx(
        {"n": 2, "pro_russian": 0.35, "neutral": 0.5, "pro_kazakh": 0.15}
    )
    gb = rows["GB"]
    assert gb["recent"] == approx({"n": 1, "pro_russian": 0.1, "neutral": 0.8, "pro_kazakh": 0.1})
    assert gb["previous"]["n"] == 1


def test_headline_without_recent_articles_has_no_delta(con) -> None:  # type: ignore[no-untyped-def]
    head = report.headline(con, date(2026, 11, 22))  # last 7 days: 11-16..11-22, only c2
    rows = {r["country"]: r for r in head["rows"]}
    assert rows["GB"]["recent"]["n"] == 1
    assert rows["KZ"]["recent"] is None and rows["KZ"]["delta_pp"] is None
    assert rows["KZ"]["previous"]["n"] == 2  # 10-19..11-15: a3, a4


# ---------------------------------------------------------------- weekly charts


def _by(rows: list[dict], group: str) -> dict[date, dict]:
    return {r["week"]: r for r in rows if r["group"] == group}


def test_weekly_by_outlet(con) -> None:  # type: ignore[no-untyped-def]
    rows = report.weekly_by_group(con, SINCE, UNTIL, "outlet")
    kz = _by(rows, "kz-one")
    assert sorted(kz) == [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 23)]
    assert kz[date(2026, 11, 23)]["n_articles"] == 2
    assert kz[date(2026, 11, 23)]["pro_kazakh"] == approx(0.45)
    assert kz[date(2026, 11, 2)]["pro_kazakh"] == approx(0.8)
    assert kz[date(2026, 11, 2)]["label"] == "Kaz One (KZ)"
    ru = _by(rows, "ru-one")  # b5 (August) is outside the period
    assert {w: r["n_articles"] for w, r in ru.items()} == {
        date(2026, 10, 26): 1,
        date(2026, 11, 9): 1,
        date(2026, 11, 23): 2,
    }
    assert ru[date(2026, 11, 23)]["pro_russian"] == approx(0.7)
    assert sum(r["n_articles"] for r in rows) == 10


def test_weekly_by_language(con) -> None:  # type: ignore[no-untyped-def]
    rows = report.weekly_by_group(con, SINCE, UNTIL, "language")
    assert {r["group"] for r in rows} == {"kk", "ru", "en"}
    ru = _by(rows, "ru")[date(2026, 11, 23)]  # a2 and b1
    assert ru["label"] == "Russian"
    assert (ru["n_articles"], ru["pro_russian"], ru["neutral"], ru["pro_kazakh"]) == approx(
        (2, 0.55, 0.3, 0.15)
    )
    en = _by(rows, "en")
    assert {w: r["n_articles"] for w, r in en.items()} == {
        date(2026, 11, 16): 1,
        date(2026, 11, 23): 2,
    }
    assert en[date(2026, 11, 23)]["neutral"] == approx(0.55)  # b2 and c1
    kk = _by(rows, "kk")
    assert {w: r["n_articles"] for w, r in kk.items()} == {
        date(2026, 11, 2): 1,
        date(2026, 11, 23): 1,
    }
    with pytest.raises(ValueError):
        report.weekly_by_group(con, SINCE, UNTIL, "source_id; drop table articles")


def test_weekly_chart_stacks_one_block_per_week_and_leaves_gaps_blank() -> None:
    weeks = report.weeks_between(SINCE, UNTIL)
    rows = [
        {
            "week": date(2026, 11, 2),
            "n_articles": 1,
            "pro_russian": 0.0,
            "neutral": 0.2,
            "pro_kazakh": 0.8,
        },
        {
            "week": date(2026, 11, 9),
            "n_articles": 1,
            "pro_russian": 0.2,
            "neutral": 0.6,
            "pro_kazakh": 0.2,
        },
        {
            "week": date(2026, 11, 23),
            "n_articles": 2,
            "pro_russian": 0.2,
            "neutral": 0.35,
            "pro_kazakh": 0.45,
        },
    ]
    spec = report.weekly_chart(rows, weeks, "Kaz One").to_dict()
    datasets = list(spec["datasets"].values())
    shares = next(d for d in datasets if d and "stance" in d[0])
    volume = next(d for d in datasets if d and "stance" not in d[0])
    # three blocks per week with articles, none for 11-16; each block spans its whole week
    assert sorted({d["start"][:10] for d in shares}) == ["2026-11-02", "2026-11-09", "2026-11-23"]
    assert len(shares) == 9
    last = {d["stance"]: d for d in shares if d["start"].startswith("2026-11-23")}
    assert last["pro-Russian"]["end"].startswith("2026-11-30")
    # stacked to 100%: pro-Russian at the bottom, then neutral, then pro-Kazakh
    assert (last["pro-Russian"]["y0"], last["pro-Russian"]["y1"]) == approx((0.0, 0.2))
    assert (last["neutral"]["y0"], last["neutral"]["y1"]) == approx((0.2, 0.55))
    assert (last["pro-Kazakh"]["y0"], last["pro-Kazakh"]["y1"]) == approx((0.55, 1.0))
    # volume: a bar for every week of the period, zero where there were no articles
    assert [d["articles"] for d in volume] == [0] * 8 + [1, 1, 0, 2]
    svg = report.svg(report.weekly_chart(rows, weeks, "Kaz One"), "t")
    assert svg.startswith("<svg") and "Kaz One" in svg and "Articles / week" in svg


def test_shares_not_summing_to_one_are_normalised() -> None:
    rows = [
        {
            "week": date(2026, 11, 23),
            "n_articles": 1,
            "pro_russian": 0.2,
            "neutral": 0.2,
            "pro_kazakh": 0.4,
        }
    ]
    spec = report.weekly_chart(rows, [date(2026, 11, 23)]).to_dict()
    shares = next(d for d in spec["datasets"].values() if d and "stance" in d[0])
    assert max(d["y1"] for d in shares) == approx(1.0)
    assert [d["share"] for d in shares] == approx([0.25, 0.25, 0.5])


# ---------------------------------------------------------------- heatmap


def test_heatmap_cells_are_pro_russian_minus_pro_kazakh(con) -> None:  # type: ignore[no-untyped-def]
    cells = {(c["group"], c["week"]): c for c in report.heatmap_cells(con, SINCE, UNTIL)}
    expected = {
        ("kz-one", date(2026, 11, 23)): -25.0,  # (.1 + .3)/2 - (.7 + .2)/2
        ("kz-one", date(2026, 11, 9)): 0.0,
        ("kz-one", date(2026, 11, 2)): -80.0,
        ("ru-one", date(2026, 11, 23)): 60.0,  # (.8 + .6)/2 - (.1 + .1)/2
        ("ru-one", date(2026, 11, 9)): 30.0,
        ("ru-one", date(2026, 10, 26)): 10.0,
        ("gb-one", date(2026, 11, 23)): 0.0,
        ("gb-one", date(2026, 11, 16)): -10.0,
    }
    assert set(cells) == set(expected)
    for key, value in expected.items():
        assert cells[key]["balance_pp"] == approx(value, abs=1e-9), key
    spec = report.heatmap_chart(list(cells.values()), report.weeks_between(SINCE, UNTIL))
    d = spec.to_dict()
    colour = d["layer"][0]["encoding"]["color"]
    # symmetric diverging scale, pro-Kazakh blue at the negative end, vermillion at the positive
    assert colour["scale"]["domain"] == [-100.0, 0, 100.0]
    assert colour["scale"]["range"][0] == "#0072B2" and colour["scale"]["range"][-1] == "#D55E00"
    assert "pro-Russian minus pro-Kazakh" in " ".join(colour["title"])


# ---------------------------------------------------------------- alerts


def test_period_alerts_decoded_and_ordered(con) -> None:  # type: ignore[no-untyped-def]
    alerts = report.period_alerts(con, SINCE, UNTIL)
    assert [a["alert_id"] for a in alerts] == ["alert-stance-ru", "alert-coverage-gb"]
    stance, coverage = alerts
    assert stance["shares_after"]["pro_russian"] == 0.7
    assert stance["window_days"] == 7 and stance["baseline_days"] == 28
    assert stance["headline"] == "Stance shift: Russia outlets, pro-Russian +35 pp (7 d vs 28 d)"
    assert [e["href"] for e in stance["evidence"]] == ["https://ru-one.example/news/b1", None]
    assert coverage["per_day_window"] == approx(1 / 7)
    assert coverage["per_day_baseline"] == approx(8 / 28)
    assert coverage["evidence"] == []


def test_alert_weekly_is_the_groups_last_12_weeks(con) -> None:  # type: ignore[no-untyped-def]
    alert = report.period_alerts(con, SINCE, UNTIL)[0]
    weekly = {w["week"]: w for w in report.alert_weekly(con, alert)}
    assert {w: r["n_articles"] for w, r in weekly.items()} == {
        date(2026, 10, 26): 1,
        date(2026, 11, 9): 1,
        date(2026, 11, 23): 2,
    }
    assert weekly[date(2026, 11, 23)]["pro_russian"] == approx(0.7)
    assert weekly[date(2026, 11, 9)]["pro_russian"] == approx(0.5)


# ---------------------------------------------------------------- articles table


def test_article_rows(con) -> None:  # type: ignore[no-untyped-def]
    rows = report.article_rows(con, SINCE, UNTIL)
    assert len(rows) == 10
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
    by_id = {r["article_id"]: r for r in rows}
    a1 = by_id[article_id("a1")]  # the newer model's prediction, not the older .9
    assert a1["label"] == "pro_kazakh" and a1["confidence"] == approx(0.7)
    assert a1["passage"] == "Strongest passage of article a1."
    assert a1["language"] == "Kazakh" and a1["outlet"] == "Kaz One"
    assert a1["href"] == "https://kz-one.example/news/a1"
    c1 = by_id[article_id("c1")]
    assert c1["title"] == HOSTILE_TITLE and c1["href"] is None
    assert c1["passage"] == HOSTILE_PASSAGE
    assert by_id[article_id("b3")]["confidence"] == approx(0.5)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/a?b=1&c=<2>", True),
        ("http://example.org", True),
        ("HTTPS://EXAMPLE.ORG/x", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//example.org/x", False),
        ("/relative", False),
        ("https:///nohost", False),
        ("https://exa mple.org", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_url(url: str | None, ok: bool) -> None:
    assert (report.safe_url(url) is not None) is ok


def test_number_formats() -> None:
    assert report._pct(0.384) == "38%" and report._pct(None) == "–"
    assert report._pp(16.0) == "+16 pp" and report._pp(-8.2) == "−8 pp"
    assert report._pp(-0.3) == "0 pp" and report._signed(-0.4) == "0"


def test_strongest_passage_prefers_the_label() -> None:
    evidence = [
        {"text": "a", "probs": {"pro_russian": 0.9, "neutral": 0.05, "pro_kazakh": 0.05}},
        {"text": "b", "probs": {"pro_russian": 0.2, "neutral": 0.1, "pro_kazakh": 0.7}},
    ]
    assert (report.strongest_passage(evidence, "pro_kazakh") or {}).get("text") == "b"
    assert (report.strongest_passage(evidence, None) or {}).get("text") == "a"
    assert report.strongest_passage("not json", "neutral") is None
    assert report.strongest_passage(None, "neutral") is None


# ---------------------------------------------------------------- the written page


def test_hostile_text_is_escaped_and_not_linked(tmp_path: Path) -> None:
    db = build_report_db(tmp_path / "hostile.duckdb", hostile_outlet=True)
    page = report.write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    assert HOSTILE_TITLE not in page and "<script>alert(3)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert HOSTILE_OUTLET not in page and "<b onmouseover" not in page
    assert "<i>Ru One</i>" not in page
    assert "Steppe &amp;" in page  # the outlet name, escaped in the HTML and in the SVG charts
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", page, re.IGNORECASE)
    assert "link withheld" in page
    # exactly one script element: ours
    assert len(re.findall(r"<script\b", page, re.IGNORECASE)) == 1


class _Resources(HTMLParser):
    """Collects every attribute that would make a browser fetch something."""

    FETCHING = {
        "src",
        "href",
        "data",
        "action",
        "poster",
        "srcset",
        "xlink:href",
        "formaction",
        "background",
        "manifest",
        "ping",
    }

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.FETCHING and value is not None:
                self.refs.append((tag, name, value))
            if name == "style" and value:
                self.styles.append(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_report_loads_nothing_from_the_network(html: str) -> None:
    parser = _Resources()
    parser.feed(html)
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"<link\b", html, re.IGNORECASE)
    external = [
        (tag, name, value)
        for tag, name, value in parser.refs
        if re.match(r"\s*(https?:)?//", value, re.IGNORECASE) and tag != "a"
    ]
    assert external == []
    # the only things that may point outside are links to the articles themselves
    anchors = [v for tag, name, v in parser.refs if tag == "a" and v.startswith("http")]
    assert anchors and all(".example/news/" in v for v in anchors)
    css = "\n".join(parser.styles)
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?\s*(https?:)?//", css)
    assert "<iframe" not in html and "<img" not in html


def test_report_content_security_policy_allows_only_its_own_script(html: str) -> None:
    script = re.search(r"<script>(.*?)</script>", html, re.DOTALL)
    assert script
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy and "default-src 'none'" in policy.group(1)
    assert f"script-src 'sha256-{digest}'" in policy.group(1)


def test_report_has_every_section_and_chart(html: str) -> None:
    charts = re.findall(r'data-chart="([^"]+)"', html)
    # headline, 3 outlets, 3 languages, 2 alerts, heatmap
    assert charts[0] == "headline" and "heatmap" in charts
    assert sum(c.startswith("outlet-") for c in charts) == 3
    assert sum(c.startswith("language-") for c in charts) == 3
    assert sum(c.startswith("alert-") for c in charts) == 2
    assert html.count("<svg") == len(charts) == 10
    assert html.count('<tr data-label="') == 10
    assert "Stance shift: Russia outlets, pro-Russian +35 pp" in html
    assert "Coverage collapse: Steppe Watch" in html
    assert html.count("dispersion &phi; = 0.62") == 1  # the stance alert's, with what it means
    assert html.count("compared with independent articles") == 1
    assert "alert-june" not in html
    assert "@media print" in html


def test_write_report_defaults(written: tuple[Path, Path], html: str) -> None:
    workdir, out = written
    assert out == Path("data/report.html") and (workdir / out).stat().st_size > 10_000
    assert not list(workdir.glob("data/*.tmp"))
    assert "Period 2026-09-07 to 2026-11-29" in html


def test_write_report_on_an_empty_warehouse(tmp_path: Path) -> None:
    connect(tmp_path / "empty.duckdb").close()
    out = report.write_report(
        tmp_path / "empty.duckdb", out=tmp_path / "e.html", until=date(2026, 11, 29)
    )
    page = out.read_text(encoding="utf-8")
    assert "No alerts in this period." in page and "<svg" not in page
    assert "No relevant articles in the period." in page
