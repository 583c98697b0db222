"""``collect_source`` end to end over the fixture site tests/fixtures/site_small/, twice.

Two invented outlets share the site (see its sources.yaml): Steppe Wire has an RSS feed, News
Desk a sitemap (announced in robots.txt) and a two-page listing. Among their links are a page
that always answers 500, a soft 404, a consent wall, a page robots.txt forbids and links to a
second loopback server (127.0.0.2) that is not among the domains, so any request that leaves
the source shows up in that server's log.

Run 1 starts from an empty warehouse. Run 2 gets what the pipeline would read back from the
warehouse after loading run 1 (flows.stages.prepare_run): the feed rows, and as ``known`` the
url and canonical_url of every stored article (only status "ok" articles are stored).
"""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawlers.collect import collect_source
from crawlers.sources import Source, parse_sources
from flows.static_site import StaticSite

pytestmark = pytest.mark.slow

SITE = Path(__file__).resolve().parent / "fixtures" / "site_small"
UA = "cstowatch-tests/1.0 (+http://127.0.0.1/)"
START_DELAY = 0.05
ARTICLES = {  # path -> source id, for every good article on the site
    "/steppe-wire/2026/11/a1.html": "steppe-wire",
    "/steppe-wire/2026/11/a2.html": "steppe-wire",
    "/news-desk/2026/11/s1.html": "news-desk",
    "/news-desk/2026/11/s2.html": "news-desk",
    "/news-desk/2026/11/l1.html": "news-desk",
    "/news-desk/2026/11/l2.html": "news-desk",
}
ERROR_500 = "/news-desk/2026/11/error500.html"
SOFT_404 = "/news-desk/2026/11/soft404.html"
CONSENT = "/news-desk/2026/11/consent.html"


def read_batch(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def pipeline_state(batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """What flows.stages.prepare_run reads back once these batches are loaded."""
    known: set[str] = set()
    feeds: dict[str, dict[str, Any]] = {}
    for rows in batches:
        for row in rows:
            if row["kind"] == "article" and row.get("status") == "ok":
                known.update(u for u in (row["url"], row.get("canonical_url")) if u)
            elif row["kind"] == "feed":
                state = dict(row)
                # The feeds table stores timestamptz: DuckDB hands back aware datetimes.
                for key in ("last_attempt_at", "last_success_at", "next_due_at"):
                    if state.get(key):
                        state[key] = datetime.fromisoformat(state[key])
                feeds[row["feed_url"]] = state
    return {"known": known, "feeds": feeds}


def paths(hits: list[str]) -> list[str]:
    return [hit.split("?")[0] for hit in hits]


class Crawl:
    """The fixture site, both outlets and the results of the two runs."""

    def __init__(self, root: Path, site: StaticSite, other: StaticSite) -> None:
        self.root, self.site, self.other = root, site, other
        text = (root / "sources.yaml").read_text(encoding="utf-8")
        self.sources = {s.id: s for s in parse_sources(text.replace("{base}", site.base))}
        self.now = datetime.now(UTC)
        self.run1: dict[str, list[dict[str, Any]]] = {}
        self.run2: dict[str, list[dict[str, Any]]] = {}
        self.counts1: dict[str, dict[str, Any]] = {}
        self.counts2: dict[str, dict[str, Any]] = {}
        self.hits1: list[str] = []
        self.hits2: list[str] = []
        self.state: dict[str, Any] = {}
        self.tmp = root.parent

    def collect(self, source: Source, out: Path, state: dict[str, Any], now: datetime,
                **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        feed_states = {u: state["feeds"][u] for u in source.feeds if u in state["feeds"]}
        counts = collect_source(source, out, feed_states=feed_states, known=state["known"],
                                user_agent=UA, now=now, start_delay=START_DELAY, **kwargs)
        return counts, read_batch(out)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("collect")
    root = tmp / "site"
    shutil.copytree(SITE, root)
    other_root = tmp / "other"
    (other_root / "partner" / "2026" / "11").mkdir(parents=True)
    for name in ("offsite.html", "listing-offsite.html"):
        (other_root / "partner" / "2026" / "11" / name).write_text("<html>elsewhere</html>")
    with StaticSite(root) as site, StaticSite(other_root, host="127.0.0.2") as other:
        for path in root.rglob("*"):
            if path.suffix in (".html", ".xml", ".txt"):
                text = path.read_text(encoding="utf-8")
                if "__OTHER__" in text:
                    path.write_text(text.replace("__OTHER__", other.base), encoding="utf-8")
        c = Crawl(root, site, other)
        empty: dict[str, Any] = {"known": set(), "feeds": {}}
        for sid, source in c.sources.items():
            c.counts1[sid], c.run1[sid] = c.collect(source, tmp / "run1" / f"{sid}.jsonl",
                                                    empty, c.now)
        c.hits1 = list(site.hits)
        c.state = pipeline_state(list(c.run1.values()))
        later = c.now + timedelta(hours=2)  # every feed is due again
        for sid, source in c.sources.items():
            c.counts2[sid], c.run2[sid] = c.collect(source, tmp / "run2" / f"{sid}.jsonl",
                                                    c.state, later)
        c.hits2 = list(site.hits[len(c.hits1):])
        yield c


def kinds(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["kind"] == kind]


def by_path(rows: list[dict[str, Any]], base: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["kind"] in ("article", "failure"):
            out.setdefault(row["url"].removeprefix(base), []).append(row)
    return out


# ---------------------------------------------------------------------------- run 1


def test_run1_stores_every_good_article_once(crawl: Crawl) -> None:
    for sid, rows in crawl.run1.items():
        ok = [r for r in kinds(rows, "article") if r["status"] == "ok"]
        expected = sorted(p for p, s in ARTICLES.items() if s == sid)
        assert sorted(r["url"].removeprefix(crawl.site.base) for r in ok) == expected, sid
        for row in ok:
            assert row["title"] and len(row["text"]) >= 200
            assert row["published"] and row["published"].startswith("2026-11-1")
            assert row["lang"] in ("en", "ru", "kk", "fr")
            assert len(row["article_id"]) == 32 and row["raw_html_z"]
            assert row["http_status"] == 200
    hits = paths(crawl.hits1)
    for path in ARTICLES:
        assert hits.count(path) == 1, (path, hits.count(path))


def test_run1_feed_rows_and_items(crawl: Crawl) -> None:
    rows = crawl.run1["steppe-wire"]
    (feed,) = kinds(rows, "feed")
    assert feed["http_status"] == 200 and feed["feed_kind"] == "rss20"
    assert feed["total_items"] == 3 and feed["new_items"] == 2
    assert feed["etag"] and feed["last_modified"] and feed["failures"] == 0.0
    items = kinds(rows, "feed_item")
    assert [i["guid"] for i in items] == ["sw-1", "sw-2", "sw-3"]
    assert [i["offsite"] for i in items] == [False, False, True]
    assert items[2]["url"].startswith(crawl.other.base)
    # The feed's tracking parameters are gone from the item and the article record alike.
    assert items[1]["url"] == f"{crawl.site.base}/steppe-wire/2026/11/a2.html"
    assert crawl.counts1["steppe-wire"]["feeds_polled"] == 1
    assert crawl.counts1["steppe-wire"]["errors"] == []
    vias = {r["url"]: r["via"] for r in kinds(rows, "article")}
    assert set(vias.values()) == {"feed"}


def test_run1_offsite_links_are_recorded_never_requested(crawl: Crawl) -> None:
    assert crawl.other.hits == []
    (stats,) = kinds(crawl.run1["news-desk"], "stats")
    assert stats["stats"]["cstowatch/offsite_skipped"] == 1  # the listing's off-domain link
    for rows in crawl.run1.values():
        for row in kinds(rows, "article") + kinds(rows, "failure"):
            assert row["url"].startswith(crawl.site.base)


def test_run1_500_page_is_a_failure_after_retries(crawl: Crawl) -> None:
    records = by_path(crawl.run1["news-desk"], crawl.site.base)[ERROR_500]
    assert [r["kind"] for r in records] == ["failure"]
    assert records[0]["http_status"] == 500 and records[0]["via"] == "listing"
    assert "HttpError" in records[0]["error"]
    assert paths(crawl.hits1).count(ERROR_500) == 3  # one request and two retries
    (stats,) = kinds(crawl.run1["news-desk"], "stats")
    assert stats["stats"]["retry/count"] == 2


def test_run1_non_articles_get_their_status(crawl: Crawl) -> None:
    pages = by_path(crawl.run1["news-desk"], crawl.site.base)
    assert [(r["kind"], r["status"]) for r in pages[SOFT_404]] == [("article", "soft_404")]
    assert [(r["kind"], r["status"]) for r in pages[CONSENT]] == [("article", "consent")]
    for path in (SOFT_404, CONSENT):
        assert pages[path][0]["reason"] and pages[path][0]["http_status"] == 200


def test_robots_txt_is_obeyed(crawl: Crawl) -> None:
    everything = paths(crawl.hits1 + crawl.hits2)
    assert not [p for p in everything if p.startswith("/private/")]
    assert "/robots.txt" in everything
    (stats,) = kinds(crawl.run1["news-desk"], "stats")
    assert stats["stats"]["robotstxt/forbidden"] == 1
    # recorded as the site's decision, not as a failure that would mark the source partial
    (event,) = kinds(crawl.run1["news-desk"], "event")
    assert event["status"] == "robots_disallowed" and "/private/" in event["url"]
    assert not [r for r in kinds(crawl.run1["news-desk"], "failure") if "/private/" in r["url"]]


def test_listing_follows_only_its_selectors(crawl: Crawl) -> None:
    hits = paths(crawl.hits1)
    assert "/news-desk/page2.html" in hits  # a.next
    assert "/news-desk/about.html" not in hits  # a link without the story class


def test_run1_touches_only_expected_paths(crawl: Crawl) -> None:
    expected = {
        "/robots.txt", "/steppe-wire/rss.xml", "/news-desk/", "/news-desk/page2.html",
        "/news-desk/sitemap.xml", ERROR_500, SOFT_404, CONSENT, *ARTICLES,
    }
    assert set(paths(crawl.hits1)) == expected


# ---------------------------------------------------------------------------- run 2


def test_run2_fetches_no_stored_article_again(crawl: Crawl) -> None:
    assert not [p for p in paths(crawl.hits2) if p in ARTICLES]
    for rows in crawl.run2.values():
        assert not [r for r in kinds(rows, "article") if r["status"] == "ok"]


def test_run2_known_urls_are_skipped_and_counted(crawl: Crawl) -> None:
    (stats,) = kinds(crawl.run2["news-desk"], "stats")
    # l1, l2 and s1 on the listing (l1 twice), s1 and s2 in the sitemap.
    assert stats["stats"]["cstowatch/known_skipped"] >= 6
    (stats1,) = kinds(crawl.run1["news-desk"], "stats")
    assert "cstowatch/known_skipped" not in stats1["stats"]


def test_run2_feed_is_a_conditional_get(crawl: Crawl) -> None:
    rows = crawl.run2["steppe-wire"]
    (feed,) = kinds(rows, "feed")
    assert feed["http_status"] == 304
    assert crawl.counts2["steppe-wire"]["feeds_not_modified"] == 1
    assert kinds(rows, "feed_item") == [] and kinds(rows, "article") == []
    assert kinds(rows, "stats") == []  # nothing to fetch: no spider process at all
    # The validators carry over to the next run.
    (first,) = kinds(crawl.run1["steppe-wire"], "feed")
    assert feed["etag"] == first["etag"] and feed["body_sha256"] == first["body_sha256"]


def test_run2_retries_only_what_was_not_stored(crawl: Crawl) -> None:
    """Pages that did not become articles (a failure, a soft 404, a consent wall) are not
    known, so the next run asks for them again; listing pages and sitemaps are always read."""
    fetched = paths(crawl.hits2)
    assert set(fetched) == {
        "/robots.txt", "/steppe-wire/rss.xml", "/news-desk/", "/news-desk/page2.html",
        "/news-desk/sitemap.xml", ERROR_500, SOFT_404, CONSENT,
    }
    assert fetched.count(ERROR_500) == 3
    assert crawl.other.hits == []


def test_feed_not_due_is_not_polled(crawl: Crawl) -> None:
    source = crawl.sources["steppe-wire"]
    before = len(crawl.site.hits)
    counts, rows = crawl.collect(source, crawl.tmp / "not-due.jsonl", crawl.state, crawl.now)
    assert counts["feeds_not_due"] == 1 and counts["feeds_polled"] == 0
    # nothing polled, nothing handed to the spiders, and the batch says it is complete
    assert [r["kind"] for r in rows] == ["job", "batch_end"]
    assert rows[0]["urls"] == [] and rows[1]["complete"] is True
    assert crawl.site.hits[before:] == []


def test_pending_urls_are_fetched_though_the_feed_is_not_due(crawl: Crawl) -> None:
    """A URL an earlier run discovered and never settled (warehouse pending_items) is fetched
    whatever its feed's state; the batch names it in its job and ends complete."""
    source = crawl.sources["steppe-wire"]
    url = crawl.site.base + "/steppe-wire/2026/11/a2.html"
    state = dict(crawl.state, known=crawl.state["known"] - {url})
    before = len(crawl.site.hits)
    pending = [{"url": url, "title": "A2", "published": None}]
    counts, rows = crawl.collect(source, crawl.tmp / "pending.jsonl", state, crawl.now,
                                 pending=pending)
    assert counts["feeds_not_due"] == 1 and counts["pending_retried"] == 1
    (job,) = kinds(rows, "job")
    assert job["urls"] == [url]
    (page,) = kinds(rows, "article")
    assert page["url"] == url and page["requested_url"] == url and page["status"] == "ok"
    assert rows[-1]["kind"] == "batch_end" and rows[-1]["complete"] is True
    assert "/steppe-wire/2026/11/a2.html" in paths(crawl.site.hits[before:])
    assert "/steppe-wire/rss.xml" not in paths(crawl.site.hits[before:])


def test_lost_feed_state_still_skips_known_items(crawl: Crawl) -> None:
    """Without the feed's validators the feed is parsed again, but its items are known."""
    source = crawl.sources["steppe-wire"]
    before = len(crawl.site.hits)
    state = {"known": crawl.state["known"], "feeds": {}}
    counts, rows = crawl.collect(source, crawl.tmp / "lost.jsonl", state, crawl.now)
    (feed,) = kinds(rows, "feed")
    assert feed["http_status"] == 200 and feed["new_items"] == 0 and feed["total_items"] == 3
    assert counts["known_skipped"] == 2  # a1 and a2; the off-domain item is not counted
    assert len(kinds(rows, "feed_item")) == 3
    assert kinds(rows, "article") == [] and kinds(rows, "stats") == []
    assert paths(crawl.site.hits[before:]) == ["/steppe-wire/rss.xml"]


# ---------------------------------------------------------------------------- a dead site


def test_dead_site_gives_transient_failures_not_an_exception(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    source = Source(id="dead-outlet", name="Dead Outlet", country="KZ", languages=["ru"],
                    domains=["127.0.0.1"], feeds=[f"{base}/rss.xml"],
                    sitemaps=[f"{base}/robots.txt"], start_urls=[f"{base}/news/"],
                    affiliation="state")
    out = tmp_path / "dead.jsonl"
    counts = collect_source(source, out, feed_states={}, known=set(), user_agent=UA,
                            start_delay=START_DELAY)
    assert counts["feeds_polled"] == 1 and counts["feeds_failed"] == 1
    assert len(counts["errors"]) == 1 and counts["errors"][0].endswith("[transient]")
    rows = read_batch(out)
    (feed,) = kinds(rows, "feed")
    assert feed["failures"] == 0.25 and feed["last_error"].endswith("[transient]")
    assert feed["http_status"] is None and feed["next_due_at"]
    failures = {r["via"]: r for r in kinds(rows, "failure")}
    assert set(failures) == {"listing", "sitemap"}
    for row in failures.values():
        assert row["http_status"] is None
        assert "ConnectionRefused" in row["error"]
    assert kinds(rows, "article") == []
    assert len(kinds(rows, "stats")) == 1


def test_a_stuck_source_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    """A listing server that accepts and never answers would hold Scrapy for its download
    timeout and retries; the per-source limit stops the spiders, and the run records the
    source as timed out with a batch that says it is incomplete (issue 17)."""
    from flows import stages
    from flows.settings import Settings

    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        base = f"http://127.0.0.1:{hang.getsockname()[1]}"
        source = Source(id="stuck-outlet", name="Stuck Outlet", country="KZ", languages=["ru"],
                        domains=["127.0.0.1"], feeds=[], sitemaps=[],
                        start_urls=[f"{base}/news/"], affiliation="state")
        settings = Settings(source_timeout=4.0)
        result = stages.collect_one(source, tmp_path, {"known": set(), "feeds": {}}, settings,
                                    start_delay=START_DELAY)
    assert result["status"] == "timed_out"
    assert "time limit of 4 s" in result["errors"][0]
    end = read_batch(tmp_path / "stuck-outlet.jsonl")[-1]
    assert end["kind"] == "batch_end" and end["complete"] is False
    assert "SourceTimedOut" in end["error"]
