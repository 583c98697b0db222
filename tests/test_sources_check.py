"""``sources check`` over real HTTP against a fixture site, plus the real sources.yaml."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import parsel
import pytest

from crawlers.check import CheckResult, check_sources, sniff, summarise, verdict
from crawlers.fetch import FetchResult
from crawlers.sources import Selectors, Source, load_sources
from crawlers.urls import in_domains
from flows.static_site import StaticSite

REPO = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "fixtures" / "check_site"
UA = "cstowatch-test/1.0 (+https://example.invalid/bot)"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """The fixture site, served from a tmp copy whose sidecar headers hold the real base URL.

    StaticSite replaces ``__BASE__`` in bodies only; a redirect's Location is a header, so it is
    filled in here once the server has bound its port (it reads sidecars on every request).
    """
    root = tmp_path_factory.mktemp("check_site") / "site"
    shutil.copytree(SITE, root)
    server = StaticSite(root)
    for meta in root.rglob("*.meta.json"):
        meta.write_text(meta.read_text(encoding="utf-8").replace("__BASE__", server.base),
                        encoding="utf-8")
    with server:
        yield server


def _source(sid: str, *, feeds: tuple[str, ...] = (), sitemaps: tuple[str, ...] = (),
            start_urls: tuple[str, ...] = (), selectors: Selectors | None = None) -> Source:
    return Source(id=sid, name=sid, country="KZ", languages=["ru"], domains=["127.0.0.1"],
                  feeds=list(feeds), sitemaps=list(sitemaps), start_urls=list(start_urls),
                  selectors=selectors, affiliation="independent", verified=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def results(site: StaticSite) -> dict[str, CheckResult]:
    base = site.base
    sources = [
        _source("feeds", feeds=(
            f"{base}/feeds/good.xml", f"{base}/news/", f"{base}/feeds/missing.xml",
            f"{base}/feeds/gone.xml", f"{base}/feeds/old.xml", f"{base}/feeds/offsite.xml",
            f"{base}/feeds/forbidden.xml", f"{base}/feeds/limited.xml",
            f"{base}/feeds/broken.xml", f"http://127.0.0.1:{_closed_port()}/rss.xml",
            f"{base}/feeds/good.xml",  # listed twice: checked once
        )),
        _source("maps", sitemaps=(f"{base}/sitemap.xml", f"{base}/robots.txt",
                                  f"{base}/news/", f"{base}/no-sitemap.xml")),
        _source("listing", start_urls=(f"{base}/news/",),
                selectors=Selectors(article_links="a.news-link::attr(href)",
                                    next_page="a.next::attr(href)")),
        _source("bad-selector", start_urls=(f"{base}/news/",),
                selectors=Selectors(article_links="div.nothing a::attr(href)")),
        _source("fenced", feeds=("https://elsewhere.invalid/rss.xml",)),
    ]
    found = check_sources(sources, user_agent=UA, timeout=5.0)
    return {f"{r.source_id} {r.kind} {r.url.replace(base, '')}": r for r in found}


def test_every_url_checked_once_in_file_order(results: dict[str, CheckResult],
                                               site: StaticSite) -> None:
    keys = list(results)
    assert len(keys) == 10 + 4 + 1 + 1 + 1
    assert keys[0] == "feeds feed /feeds/good.xml"
    assert [k.split()[0] for k in keys] == (
        ["feeds"] * 10 + ["maps"] * 4 + ["listing", "bad-selector", "fenced"])
    # the duplicate feed URL was fetched once; the second hit is old.xml's redirect target
    assert sum(1 for hit in site.hits if hit == "/feeds/good.xml") == 2


def test_good_feed_is_reachable(results: dict[str, CheckResult]) -> None:
    r = results["feeds feed /feeds/good.xml"]
    assert (r.verdict, r.status, r.final_url) == ("reachable", 200, None)
    assert "rss20, 2 items" in r.detail


def test_html_where_a_feed_should_be_is_not_a_feed(results: dict[str, CheckResult],
                                                  site: StaticSite) -> None:
    r = results["feeds feed /news/"]
    assert (r.verdict, r.status) == ("not_a_feed", 200)
    assert "html" in r.detail
    assert f"page advertises feeds: {site.base}/feeds/good.xml" in r.detail


@pytest.mark.parametrize("path,status", [("/feeds/missing.xml", 404), ("/feeds/gone.xml", 410)])
def test_missing_and_gone_are_dead(results: dict[str, CheckResult], path: str,
                                   status: int) -> None:
    r = results[f"feeds feed {path}"]
    assert (r.verdict, r.status) == ("dead", status)


def test_connection_refused_is_dead(results: dict[str, CheckResult]) -> None:
    (r,) = [r for k, r in results.items() if k.endswith("/rss.xml") and k.startswith("feeds")]
    assert r.verdict == "dead" and r.status is None
    assert "connection failed" in r.detail


def test_redirect_reports_the_final_url(results: dict[str, CheckResult],
                                        site: StaticSite) -> None:
    r = results["feeds feed /feeds/old.xml"]
    assert (r.verdict, r.status) == ("redirected", 200)
    assert r.final_url == f"{site.base}/feeds/good.xml"
    assert r.final_url in r.detail and "rss20" in r.detail


def test_redirect_off_the_domains_is_an_error_and_not_followed(
        results: dict[str, CheckResult], site: StaticSite) -> None:
    r = results["feeds feed /feeds/offsite.xml"]
    assert (r.verdict, r.status) == ("error", 302)
    assert r.final_url == "https://elsewhere.invalid/rss.xml"
    assert "add that host to domains" in r.detail


def test_url_outside_the_domains_is_an_error(results: dict[str, CheckResult]) -> None:
    r = results["fenced feed https://elsewhere.invalid/rss.xml"]
    assert (r.verdict, r.status) == ("error", None)
    assert "not inside the source's domains" in r.detail


@pytest.mark.parametrize("path,status", [("/feeds/forbidden.xml", 403),
                                         ("/feeds/limited.xml", 429)])
def test_refusals_are_blocked(results: dict[str, CheckResult], path: str, status: int) -> None:
    r = results[f"feeds feed {path}"]
    assert (r.verdict, r.status) == ("blocked", status)
    if status == 429:
        assert "Retry-After 120s" in r.detail


def test_server_error_is_an_error(results: dict[str, CheckResult]) -> None:
    r = results["feeds feed /feeds/broken.xml"]
    assert (r.verdict, r.status) == ("error", 503)


def test_sitemaps(results: dict[str, CheckResult]) -> None:
    sitemap = results["maps sitemap /sitemap.xml"]
    assert (sitemap.verdict, sitemap.status) == ("reachable", 200)
    assert "sitemap with 2 URLs" in sitemap.detail
    robots = results["maps sitemap /robots.txt"]
    assert robots.verdict == "reachable" and "robots.txt lists 1 sitemaps" in robots.detail
    html = results["maps sitemap /news/"]
    assert html.verdict == "error" and "not a sitemap" in html.detail
    assert results["maps sitemap /no-sitemap.xml"].verdict == "dead"


def test_start_urls_count_selector_matches(results: dict[str, CheckResult]) -> None:
    good = results["listing start_url /news/"]
    assert good.verdict == "reachable"
    assert "2 article links match" in good.detail
    bad = results["bad-selector start_url /news/"]
    assert bad.verdict == "reachable"
    assert "0 article links match" in bad.detail and "check the selector" in bad.detail


def test_summarise_counts_every_verdict(results: dict[str, CheckResult]) -> None:
    counts = summarise(list(results.values()))
    assert counts == {"reachable": 5, "redirected": 1, "dead": 4, "not_a_feed": 1,
                      "blocked": 2, "error": 4}


# --------------------------------------------------------------------------- pure verdicts


def _result(status: int | None, failure: str | None = None,
            final_url: str = "https://a.kz/rss", **kw: object) -> FetchResult:
    return FetchResult(url="https://a.kz/rss", final_url=final_url, status=status,
                       failure=failure, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind,result,body_kind,expected", [
    ("feed", _result(200), "feed", "reachable"),
    ("feed", _result(200, redirected=True, final_url="https://a.kz/feed"), "feed", "redirected"),
    ("feed", _result(200, redirected=True, final_url="https://a.kz/"), "html", "not_a_feed"),
    ("feed", _result(200), "xml", "not_a_feed"),
    ("sitemap", _result(200), "robots", "reachable"),
    ("sitemap", _result(200), "robots_no_sitemaps", "error"),
    ("sitemap", _result(200), "sitemapindex", "reachable"),
    ("start_url", _result(200), "html", "reachable"),
    ("start_url", _result(200), "json", "error"),
    ("feed", _result(404, "hard", error="HTTP 404"), None, "dead"),
    ("feed", _result(401, "hard", error="HTTP 401"), None, "blocked"),
    ("feed", _result(451, "hard", error="HTTP 451"), None, "blocked"),
    ("feed", _result(429, "transient", error="HTTP 429", retry_after=60.0), None, "blocked"),
    ("feed", _result(500, "transient", error="HTTP 500"), None, "error"),
    ("feed", _result(400, "soft", error="HTTP 400"), None, "error"),
    ("feed", _result(204), None, "error"),
    ("feed", _result(200, "soft", error="response too large: 9 bytes > 1"), None, "error"),
    ("feed", _result(None, "transient", error="connection failed: [Errno -2] Name or service "
                     "not known"), None, "dead"),
    ("feed", _result(None, "transient", error="timeout: ReadTimeout"), None, "error"),
    ("feed", _result(None, "soft", error="too many redirects"), None, "error"),
    ("feed", _result(None, error="InvalidURL: bad"), None, "error"),
])
def test_verdict_is_pure(kind: str, result: FetchResult, body_kind: str | None,
                         expected: str) -> None:
    got, detail = verdict(kind, result, body_kind)
    assert got == expected
    assert detail


def test_sniff_reads_gzipped_sitemaps_and_json_feeds() -> None:
    import gzip

    xml = b'<?xml version="1.0"?><sitemapindex><sitemap><loc>https://a.kz/s1.xml</loc>' \
          b"</sitemap></sitemapindex>"
    gz = FetchResult(url="https://a.kz/s.xml.gz", final_url="https://a.kz/s.xml.gz", status=200,
                     body=gzip.compress(xml), headers={"content-type": "application/x-gzip"})
    assert sniff("sitemap", gz)[0] == "sitemapindex"
    feed = FetchResult(url="https://a.kz/f.json", final_url="https://a.kz/f.json", status=200,
                       body=b'{"version": "https://jsonfeed.org/version/1.1", "items": '
                            b'[{"id": "1", "url": "https://a.kz/1"}]}')
    assert sniff("feed", feed) == ("feed", "json, 1 items")
    empty = FetchResult(url="https://a.kz/f", final_url="https://a.kz/f", status=200)
    assert sniff("feed", empty)[0] == "empty"
    assert verdict("feed", empty, "empty")[0] == "not_a_feed"


# --------------------------------------------------------------------------- concurrency


def test_at_most_two_requests_per_host_and_eight_overall() -> None:
    lock = threading.Lock()
    active: Counter[str] = Counter()
    peak_host: Counter[str] = Counter()
    peak_total = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal peak_total
        host = request.url.host
        with lock:
            active[host] += 1
            peak_host[host] = max(peak_host[host], active[host])
            peak_total = max(peak_total, sum(active.values()))
        time.sleep(0.05)
        with lock:
            active[host] -= 1
        return httpx.Response(200, text="<rss version='2.0'><channel><title>t</title>"
                                         "</channel></rss>",
                              headers={"content-type": "application/rss+xml"})

    hosts = [f"h{i}.test" for i in range(6)]
    sources = [
        Source(id=f"s{i}", name=host, country="KZ", languages=["ru"], domains=[host],
               feeds=[f"https://{host}/rss/{n}.xml" for n in range(5)],
               affiliation="state", verified=False)
        for i, host in enumerate(hosts)
    ]
    with httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False) as client:
        found = check_sources(sources, user_agent=UA, client=client)
    assert len(found) == 30 and {r.verdict for r in found} == {"reachable"}
    assert [r.url for r in found] == [u for s in sources for u in s.feeds]
    assert max(peak_host.values()) <= 2
    assert 2 < peak_total <= 8  # it is concurrent, within the pool


# --------------------------------------------------------------------------- sources.yaml


def test_real_sources_file_is_valid_unverified_and_fenced() -> None:
    sources = load_sources(REPO / "sources.yaml")
    assert len(sources) >= 25
    ids = {s.id for s in sources}
    for expected in ("tass-ru", "tass-en", "kazinform-ru", "tengrinews-ru", "azattyq-kk",
                     "ria-novosti", "rt-fr", "csto-ru", "csto-en", "kz-mfa", "akorda",
                     "eurasianet", "novastan-fr", "novastan-en", "rfi-fr", "lemonde-fr"):
        assert expected in ids, expected
    assert {s.affiliation for s in sources} == {"state", "independent", "international",
                                                "official"}
    for source in sources:
        assert source.verified is False, source.id
        assert source.notes and "unverified" in source.notes.lower(), source.id
        urls = [*source.feeds, *source.sitemaps, *source.start_urls]
        assert urls, f"{source.id}: nothing to crawl"
        for url in urls:
            assert urlsplit(url).scheme == "https", url
            assert in_domains(url, source.domains), f"{source.id}: {url} not in {source.domains}"
        if source.start_urls:
            assert source.selectors is not None, f"{source.id}: start_urls without selectors"
            page = parsel.Selector(text="<html><body></body></html>")
            page.css(source.selectors.article_links)  # raises if the CSS is malformed
            if source.selectors.next_page:
                page.css(source.selectors.next_page)
