"""One date policy (crawlers/dates.py) through every path a date takes: feeds of each kind, the
page's markup, htmldate's guesses, the batch, the warehouse and the outlet-local day.

The same article, published at 10:00 in Almaty (UTC+5) on 5 March 2026, is written in every form
we have seen outlets use; each must come out as the one instant 05:00 UTC. The same article dated
only by its day must come out as that day, never as a midnight.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from crawlers.dates import day_of, normalise_published, zone
from crawlers.extract import extract_article
from crawlers.feeds import parse_feed
from warehouse.db import connect
from warehouse.load import load_batch, upsert_sources

ALMATY = zone("Asia/Almaty")
FETCHED = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
INSTANT = datetime(2026, 3, 5, 5, 0, tzinfo=UTC)
DAY = date(2026, 3, 5)
BASE = "https://dala.example/"
DOMAINS = ["dala.example"]

# Every spelling of 10:00 Almaty time on 5 March 2026 (the ones without an offset are read in
# the outlet's zone).
INSTANT_FORMS = [
    "Thu, 05 Mar 2026 10:00:00 +0500",  # RSS 2.0 pubDate, local offset
    "Thu, 05 Mar 2026 05:00:00 GMT",  # RSS 2.0 pubDate, GMT
    "Thu, 05 Mar 2026 05:00:00 Z",  # a military zone letter
    "2026-03-05T10:00:00+05:00",  # Atom, JSON Feed, JSON-LD, <time datetime>
    "2026-03-05T05:00:00Z",
    "2026-03-05T05:00:00.000Z",
    "2026-03-05 10:00",  # no offset: the outlet's zone
    "2026-03-05T10:00:00",
]
DAY_FORMS = ["2026-03-05", "05 Mar 2026", "Thu, 05 Mar 2026", "20260305"]


@pytest.mark.parametrize("form", INSTANT_FORMS)
def test_every_spelling_of_an_instant_is_one_instant(form: str) -> None:
    found = normalise_published(form, fetched_at=FETCHED, tz=ALMATY)
    assert found == INSTANT and isinstance(found, datetime) and found.tzinfo is not None
    assert day_of(found, ALMATY) == DAY


@pytest.mark.parametrize("form", DAY_FORMS)
def test_a_day_stays_a_day(form: str) -> None:
    found = normalise_published(form, fetched_at=FETCHED, tz=ALMATY)
    assert found == DAY and not isinstance(found, datetime)


def test_rejections() -> None:
    def norm(value: object, **kw: object) -> object:
        return normalise_published(value, fetched_at=FETCHED, tz=ALMATY, **kw)  # type: ignore[arg-type]

    assert norm("2026-03-09T10:00:00+05:00") is None  # days after the fetch
    assert norm("2026-03-07T05:00:00Z") is not None  # within a day: a mislabelled zone
    assert norm("2026-03-09") is None
    assert norm("1970-01-01T00:00:00Z") is None  # epoch zero: a parsing accident
    assert norm("2026-01-01", guess=True) is None  # htmldate's reading of "(c) 2026"
    assert norm("2026-01-01") == date(2026, 1, 1)  # a real 1 January in markup is kept
    assert norm("yesterday") is None and norm("") is None and norm(None) is None
    assert norm("2026-13-45") is None


def _rss(pub: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Dala</title>'
        f"<item><title>Summit</title><link>{BASE}a/1</link><pubDate>{pub}</pubDate></item>"
        "</channel></rss>"
    ).encode()


def _atom(updated: str) -> bytes:
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Dala</title>'
        f'<entry><title>Summit</title><link href="{BASE}a/1"/><id>a1</id>'
        f"<updated>{updated}</updated></entry></feed>"
    ).encode()


def _json_feed(published: str) -> bytes:
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Dala",
            "items": [{"id": "a1", "url": f"{BASE}a/1", "date_published": published}],
        }
    ).encode()


def _page(head: str, body: str = "") -> str:
    para = (
        "The ministers of the member states met in the capital to discuss the security of the "
        "region, the situation on the southern border and the budget of the organisation. "
    )
    return (
        f"<html lang='en'><head><title>Summit</title>{head}</head><body><article>"
        f"<h1>Summit</h1>{body}<p>{para * 4}</p></article>"
        "<footer><p>&copy; 2026 Dala Habar. All rights reserved.</p></footer></body></html>"
    )


FEEDS = {
    "rss": (_rss, "Thu, 05 Mar 2026 10:00:00 +0500", "Thu, 05 Mar 2026"),
    "atom": (_atom, "2026-03-05T05:00:00Z", "2026-03-05"),
    "json": (_json_feed, "2026-03-05T10:00:00+05:00", "2026-03-05"),
}
PAGES = {
    "meta": (
        '<meta property="article:published_time" content="2026-03-05T10:00:00+05:00">',
        '<meta name="date" content="2026-03-05">',
    ),
    "json-ld": (
        '<script type="application/ld+json">{"@type": "NewsArticle", '
        '"datePublished": "2026-03-05T10:00:00+05:00"}</script>',
        '<script type="application/ld+json">{"@type": "NewsArticle", '
        '"datePublished": "2026-03-05"}</script>',
    ),
}


@pytest.mark.parametrize("kind", sorted(FEEDS))
def test_feeds_of_every_kind_agree(kind: str) -> None:
    build, instant, day = FEEDS[kind]
    got = []
    for form in (instant, day):
        parsed = parse_feed(build(form), BASE, DOMAINS, now=FETCHED, tz=ALMATY)
        got.append(parsed.items[0].published)
    assert got == [INSTANT, DAY]


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_pages_agree_with_the_feeds(kind: str) -> None:
    instant, day = PAGES[kind]
    for head, expected in ((instant, INSTANT), (day, DAY)):
        page = extract_article(_page(head), f"{BASE}a/1", 200, fetched_at=FETCHED, tz=ALMATY)
        assert page.published == expected, head


def test_time_element_in_the_body() -> None:
    body = '<p class="date"><time datetime="2026-03-05T10:00:00+05:00">5 March</time></p>'
    page = extract_article(_page("", body), f"{BASE}a/1", 200, fetched_at=FETCHED, tz=ALMATY)
    assert page.published == INSTANT


def test_a_copyright_footer_is_no_publication_date() -> None:
    """The page's only year is the footer's "(c) 2026": htmldate's extensive search turns it
    into 2026-01-01, which the policy drops as a year, not a day."""
    page = extract_article(_page(""), f"{BASE}a/1", 200, fetched_at=FETCHED, tz=ALMATY)
    assert page.published is None


def test_a_guess_later_than_the_fetch_is_dropped() -> None:
    head = '<meta name="date" content="2026-03-20">'
    page = extract_article(_page(head), f"{BASE}a/1", 200, fetched_at=FETCHED, tz=ALMATY)
    assert page.published is None


def _article(n: int, source_id: str, published: str | None) -> dict[str, object]:
    url = f"https://{source_id}.example/a/{n}"
    return {
        "kind": "article", "status": "ok", "article_id": f"{n:032x}", "source_id": source_id,
        "url": url, "canonical_url": url, "title": f"Report {n}",
        "text": f"Article {n} reports on event {n} with details unique to story {n}.",
        "lang": "en", "published": published, "fetched_at": "2026-03-06T01:30:00+00:00",
        "extractor": "test", "via": "feed", "_line": n,
    }


def test_warehouse_keeps_days_as_days_and_counts_outlet_local_days(tmp_path: Path) -> None:
    """An article at 20:00 UTC on 5 March is on 6 March in Almaty and on 5 March in Paris; a
    day-only article keeps its day (published_at NULL); an undated one takes its fetch's day in
    the outlet's zone (01:30 UTC on 6 March)."""
    con = connect(tmp_path / "w.duckdb")
    sources = [
        {"id": sid, "name": sid, "country": c, "languages": ["en"], "affiliation": "state",
         "domains": [f"{sid}.example"], "timezone": tz}
        for sid, c, tz in (("kz", "KZ", "Asia/Almaty"), ("fr", "FR", "Europe/Paris"),
                           ("utc", "GB", None))
    ]
    upsert_sources(con, sources)
    rows = [
        _article(1, "kz", "2026-03-05T20:00:00+00:00"),
        _article(2, "fr", "2026-03-05T20:00:00+00:00"),
        _article(3, "kz", "2026-03-05"),
        _article(4, "fr", None),
        _article(5, "utc", "2026-03-05T23:30:00-02:00"),
    ]
    report = load_batch(con, rows, "run-1")
    assert report.added == 5, report.rejected
    got = con.execute(
        "select a.article_id, a.published_at, a.published_date, "
        "outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at) "
        "from articles a join sources s using (source_id) order by 1"
    ).fetchall()
    evening = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
    assert [(r[1], r[2], r[3]) for r in got] == [
        (evening, None, date(2026, 3, 6)),
        (evening, None, date(2026, 3, 5)),
        (None, date(2026, 3, 5), date(2026, 3, 5)),
        (None, None, date(2026, 3, 6)),  # fetched 02:30 in Paris
        (datetime(2026, 3, 6, 1, 30, tzinfo=UTC), None, date(2026, 3, 6)),
    ]
    con.close()
