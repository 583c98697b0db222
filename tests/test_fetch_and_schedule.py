"""The HTTP seam (crawlers/fetch.py) against a real StaticSite on 127.0.0.1, the feed poller on
top of it, and the pure feed scheduling rules (crawlers/schedule.py).

Every request goes to 127.0.0.1 or 127.0.0.2 (loopback too); nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from crawlers import schedule
from crawlers.collect import FeedState, poll_feed
from crawlers.fetch import MAX_BYTES, classify_status, fetch, parse_retry_after
from crawlers.sources import Source
from flows.static_site import StaticSite

FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
UA = "cstowatch-tests/1.0 (+http://127.0.0.1/)"
DOMAINS = ["127.0.0.1"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _meta(root: Path, name: str, **meta: object) -> None:
    (root / f"{name}.meta.json").write_text(json.dumps(meta))


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    # Relative item links: resolved against the site, so the items are on-site.
    (root / "feed.xml").write_bytes((FEEDS / "relative_links.xml").read_bytes())
    (root / "page.html").write_text("<html><body><p>Hello</p></body></html>")
    (root / "busy.xml").write_text("<rss/>")
    _meta(root, "busy.xml", status=503, headers={"Retry-After": "120"})
    (root / "busy-date.xml").write_text("<rss/>")
    later = formatdate(time.time() + 600, usegmt=True)
    _meta(root, "busy-date.xml", status=429, headers={"Retry-After": later})
    (root / "gone.html").write_text("gone")
    _meta(root, "gone.html", status=410)
    (root / "teapot.html").write_text("no")
    _meta(root, "teapot.html", status=418)
    (root / "huge.xml").write_text("<rss version='2.0'><channel>")
    _meta(root, "huge.xml", pad_bytes=6_000_000)
    (root / "slow.xml").write_text("<rss/>")
    _meta(root, "slow.xml", delay=1.5)
    (root / "inside.xml").write_text("")
    _meta(root, "inside.xml", status=301, headers={"Location": "/feed.xml"})
    (root / "loop.xml").write_text("")
    _meta(root, "loop.xml", status=302, headers={"Location": "/loop.xml"})
    (root / "page.txt").write_text("I am not a feed")
    return root


@pytest.fixture(scope="module")
def _running_site(site_root: Path):  # type: ignore[no-untyped-def]
    with StaticSite(site_root) as running:
        yield running


@pytest.fixture()
def site(_running_site: StaticSite) -> StaticSite:
    """One server for the module (shutting one down takes half a second); fresh logs per test."""
    _running_site.hits.clear()
    _running_site.server.statuses.clear()
    return _running_site


# ---------------------------------------------------------------- fetch over a real server


def test_conditional_get_gives_304_on_second_fetch(site: StaticSite) -> None:
    first = fetch(f"{site.base}/feed.xml", DOMAINS, user_agent=UA)
    assert first.ok and first.status == 200 and first.failure is None
    assert first.body.startswith(b"<?xml")
    etag, modified = first.headers.get("etag"), first.headers.get("last-modified")
    assert etag and modified

    by_etag = fetch(f"{site.base}/feed.xml", DOMAINS, user_agent=UA, etag=etag)
    assert by_etag.not_modified and by_etag.failure is None and by_etag.body == b""
    by_date = fetch(f"{site.base}/feed.xml", DOMAINS, user_agent=UA, last_modified=modified)
    assert by_date.not_modified
    stale = fetch(f"{site.base}/feed.xml", DOMAINS, user_agent=UA, etag='"not-the-etag"')
    assert stale.status == 200 and stale.body == first.body
    assert [s for _, s in site.server.statuses] == [200, 304, 304, 200]


def test_user_agent_is_sent(site: StaticSite) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.headers["user-agent"])

    with httpx.Client(event_hooks={"request": [hook]}) as client:
        assert fetch(f"{site.base}/page.html", DOMAINS, user_agent=UA, client=client).ok
    assert seen == [UA]


def test_503_with_retry_after_is_transient(site: StaticSite) -> None:
    result = fetch(f"{site.base}/busy.xml", DOMAINS, user_agent=UA)
    assert result.status == 503
    assert result.failure == "transient"
    assert result.retry_after == 120.0
    assert not result.ok


def test_429_with_an_http_date_retry_after(site: StaticSite) -> None:
    result = fetch(f"{site.base}/busy-date.xml", DOMAINS, user_agent=UA)
    assert result.failure == "transient"
    assert result.retry_after is not None and 590 <= result.retry_after <= 600


@pytest.mark.parametrize(("path", "status", "failure"), [
    ("/missing.xml", 404, "hard"),
    ("/gone.html", 410, "hard"),
    ("/teapot.html", 418, "soft"),
])
def test_client_errors(site: StaticSite, path: str, status: int, failure: str) -> None:
    result = fetch(f"{site.base}{path}", DOMAINS, user_agent=UA)
    assert result.status == status
    assert result.failure == failure
    assert result.error == f"HTTP {status}"
    assert result.retry_after is None


def test_oversized_response_fails_soft_without_reading_it(site: StaticSite) -> None:
    started = time.monotonic()
    result = fetch(f"{site.base}/huge.xml", DOMAINS, user_agent=UA)
    assert result.failure == "soft"
    assert "too large" in (result.error or "")
    assert result.body == b""
    assert result.status == 200
    assert time.monotonic() - started < 5


def test_oversized_stream_without_length_stops_at_the_cap() -> None:
    """No Content-Length: the body is read chunk by chunk and dropped once past the cap."""
    chunk = b"x" * 65536
    sent = {"chunks": 0}

    def endless():  # type: ignore[no-untyped-def]
        while sent["chunks"] < 1000:  # 64 MiB if nobody stops reading
            sent["chunks"] += 1
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "text/html"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = fetch("http://127.0.0.1/stream", DOMAINS, user_agent=UA, client=client,
                       max_bytes=1_000_000)
    assert result.failure == "soft" and result.body == b""
    assert sent["chunks"] <= 1_000_000 // len(chunk) + 2
    assert MAX_BYTES == 5 * 1024 * 1024


def test_redirect_inside_the_domains_is_followed(site: StaticSite) -> None:
    result = fetch(f"{site.base}/inside.xml", DOMAINS, user_agent=UA)
    assert result.ok and result.redirected
    assert result.final_url == f"{site.base}/feed.xml"


def test_redirect_to_another_host_is_refused(tmp_path: Path, site: StaticSite,
                                              site_root: Path) -> None:
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "feed.xml").write_text("<rss/>")
    with StaticSite(other_root, host="127.0.0.2") as other:
        (site_root / "away.xml").write_text("")
        _meta(site_root, "away.xml", status=302, headers={"Location": f"{other.base}/feed.xml"})
        result = fetch(f"{site.base}/away.xml", DOMAINS, user_agent=UA)
        assert result.failure == "hard"
        assert "leaves the source's domains" in (result.error or "")
        assert result.body == b""
        assert other.hits == []


def test_redirect_loop_gives_up(site: StaticSite) -> None:
    result = fetch(f"{site.base}/loop.xml", DOMAINS, user_agent=UA)
    assert result.failure == "soft" and result.error == "too many redirects"
    assert len(site.hits) == 6  # the first request and MAX_REDIRECTS more


def test_url_outside_domains_is_never_requested(tmp_path: Path, site: StaticSite) -> None:
    outside = fetch(f"{site.base}/feed.xml", ["csto-news.example.kz"], user_agent=UA)
    assert outside.failure == "hard" and "outside" in (outside.error or "")
    assert site.hits == []
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "feed.xml").write_text("<rss/>")
    with StaticSite(other_root, host="127.0.0.2") as other:
        result = fetch(f"{other.base}/feed.xml", DOMAINS, user_agent=UA)
        assert result.failure == "hard"
        assert other.hits == []
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "javascript:alert(1)"):
        assert fetch(url, DOMAINS, user_agent=UA).failure == "hard"


def test_nothing_listening_is_transient() -> None:
    result = fetch(f"http://127.0.0.1:{_free_port()}/feed.xml", DOMAINS, user_agent=UA,
                   timeout=5)
    assert result.failure == "transient"
    assert (result.error or "").startswith("connection failed")
    assert result.status is None


def test_timeout_is_transient(site: StaticSite) -> None:
    result = fetch(f"{site.base}/slow.xml", DOMAINS, user_agent=UA, timeout=0.3)
    assert result.failure == "transient"
    assert (result.error or "").startswith("timeout")


# ---------------------------------------------------------------- pure helpers of fetch.py


@pytest.mark.parametrize(("status", "failure"), [
    (200, None), (204, None), (301, None), (304, None),
    (401, "hard"), (403, "hard"), (404, "hard"), (410, "hard"), (451, "hard"),
    (400, "soft"), (405, "soft"), (418, "soft"),
    (408, "transient"), (425, "transient"), (429, "transient"), (500, "transient"),
    (502, "transient"), (503, "transient"), (504, "transient"), (599, "transient"),
])
def test_classify_status(status: int, failure: str | None) -> None:
    assert classify_status(status) == failure


def test_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk) is None


# ---------------------------------------------------------------- the feed poller on a server


def _source(base: str, feeds: list[str]) -> Source:
    return Source(id="fixture-outlet", name="Fixture Outlet", country="KZ", languages=["kk"],
                  domains=DOMAINS, feeds=feeds, affiliation="independent")


def test_poll_feed_then_not_modified_then_unchanged(site: StaticSite) -> None:
    url = f"{site.base}/feed.xml"
    source = _source(site.base, [url])
    row, items, outcome = poll_feed(url, source, FeedState(), set(), user_agent=UA, now=NOW)
    assert outcome == "parsed"
    assert row["feed_kind"] == "rss20" and row["total_items"] == 3 and row["new_items"] == 3
    assert all(i["url"].startswith(site.base) and not i["offsite"] for i in items)
    assert row["etag"] and row["last_modified"] and row["body_sha256"]
    assert len(items) == 3 and all(i["kind"] == "feed_item" for i in items)
    assert row["failures"] == 0.0 and row["last_error"] is None
    # More than half the items new: poll twice as often as the default hour.
    assert row["interval_seconds"] == 1800

    state = FeedState.from_row(row)
    row2, items2, outcome2 = poll_feed(url, source, state, set(), user_agent=UA,
                                       now=NOW + timedelta(hours=1))
    assert outcome2 == "not_modified" and items2 == []
    assert row2["interval_seconds"] == 2700  # nothing new: 1.5 times slower

    no_validators = FeedState(body_sha256=row["body_sha256"])  # a server that ignores ETags
    _, items3, outcome3 = poll_feed(url, source, no_validators, set(), user_agent=UA, now=NOW)
    assert outcome3 == "unchanged" and items3 == []


def test_poll_feed_known_items_are_not_new(site: StaticSite) -> None:
    url = f"{site.base}/feed.xml"
    first, items, _ = poll_feed(url, _source(site.base, [url]), FeedState(), set(),
                                user_agent=UA, now=NOW)
    known = {i["url"] for i in items}
    row, _, outcome = poll_feed(url, _source(site.base, [url]), FeedState(), known,
                                user_agent=UA, now=NOW)
    assert outcome == "parsed" and row["new_items"] == 0 and row["total_items"] == 3
    assert row["interval_seconds"] == 5400  # no new items: 1.5 x the default hour


def test_poll_feed_failure_backs_off_and_honours_retry_after(site: StaticSite) -> None:
    url = f"{site.base}/busy.xml"
    state = FeedState(failures=2.0, interval_seconds=600)
    row, items, outcome = poll_feed(url, _source(site.base, [url]), state, set(),
                                    user_agent=UA, now=NOW)
    assert outcome == "failed" and items == []
    assert row["failures"] == 2.25
    assert row["last_error"] == "HTTP 503 [transient]"
    assert row["http_status"] == 503
    expected = max(schedule.MIN_INTERVAL * 2 ** 2.25, timedelta(seconds=120))
    assert row["interval_seconds"] == expected.total_seconds()
    assert row["next_due_at"] == (NOW + expected).isoformat()


def test_poll_feed_not_a_feed_is_a_hard_failure(site: StaticSite) -> None:
    url = f"{site.base}/page.txt"
    row, items, outcome = poll_feed(url, _source(site.base, [url]), FeedState(), set(),
                                    user_agent=UA, now=NOW)
    assert outcome == "failed" and items == []
    assert row["failures"] == 1.0
    assert "not a feed" in row["last_error"] and row["last_error"].endswith("[hard]")


def test_poll_feed_on_a_dead_port_is_transient() -> None:
    url = f"http://127.0.0.1:{_free_port()}/feed.xml"
    row, items, outcome = poll_feed(url, _source("", [url]), FeedState(), set(),
                                    user_agent=UA, now=NOW)
    assert outcome == "failed" and items == [] and row["failures"] == 0.25
    assert row["last_error"].endswith("[transient]")


# ---------------------------------------------------------------- schedule.py, pure


def test_intervals_clamp_between_ten_minutes_and_a_day() -> None:
    fast = schedule.next_interval_after_success(timedelta(minutes=12), 10, 10, False)
    assert fast == schedule.MIN_INTERVAL == timedelta(minutes=10)
    slow = schedule.next_interval_after_success(timedelta(hours=20), 0, 10, False)
    assert slow == schedule.MAX_INTERVAL == timedelta(hours=24)
    assert schedule.next_interval_after_success(timedelta(hours=23), 0, 0, True) == timedelta(
        hours=24
    )


def test_success_interval_follows_the_share_of_new_items() -> None:
    hour = timedelta(hours=1)
    assert schedule.next_interval_after_success(None, 6, 10, False) == hour / 2  # > half new
    assert schedule.next_interval_after_success(None, 3, 10, False) == hour  # in between
    assert schedule.next_interval_after_success(None, 1, 20, False) == hour * 1.25  # < 10 %
    assert schedule.next_interval_after_success(None, 0, 20, False) == hour * 1.5  # none new
    assert schedule.next_interval_after_success(None, 5, 5, True) == hour * 1.5  # 304/same body
    assert schedule.next_interval_after_success(None, 0, 0, False) == hour * 1.5  # empty feed


def test_failure_weights_and_reset() -> None:
    assert schedule.FAILURE_WEIGHTS == {"hard": 1.0, "soft": 0.5, "transient": 0.25}
    assert schedule.weighted_failures(0.0, "hard") == 1.0
    assert schedule.weighted_failures(1.0, "soft") == 1.5
    assert schedule.weighted_failures(1.5, "transient") == 1.75
    assert schedule.weighted_failures(7.5, None) == 0.0  # one success forgives


def test_failure_backoff_grows_and_clamps() -> None:
    one = schedule.next_interval_after_failure(0.25, None)
    two = schedule.next_interval_after_failure(1.0, None)
    assert schedule.MIN_INTERVAL < one < two == timedelta(minutes=20)
    assert schedule.next_interval_after_failure(9.75, None) == schedule.MAX_INTERVAL


def test_dead_feeds_slow_to_thirty_days() -> None:
    failures = 0.0
    for _ in range(10):
        failures = schedule.weighted_failures(failures, "hard")
    assert failures == schedule.DEAD_AFTER
    assert schedule.next_interval_after_failure(failures, None) == timedelta(days=30)
    transient = 0.0
    for _ in range(39):
        transient = schedule.weighted_failures(transient, "transient")
    assert schedule.next_interval_after_failure(transient, None) == timedelta(hours=24)
    transient = schedule.weighted_failures(transient, "transient")
    assert schedule.next_interval_after_failure(transient, None) == timedelta(days=30)


def test_retry_after_is_honoured_but_capped() -> None:
    assert schedule.next_interval_after_failure(0.25, 3600.0) == timedelta(hours=1)
    three_days = 3 * 86400.0
    assert schedule.next_interval_after_failure(1.0, three_days) == timedelta(days=3)
    # A shorter Retry-After than the backoff does not poll sooner.
    assert schedule.next_interval_after_failure(5.0, 60.0) == schedule.MIN_INTERVAL * 2 ** 5
    assert schedule.next_interval_after_failure(0.25, 400 * 86400.0) == timedelta(days=30)


def test_is_due() -> None:
    assert schedule.is_due(None, NOW)
    assert schedule.is_due(NOW, NOW)
    assert schedule.is_due(NOW - timedelta(seconds=1), NOW)
    assert not schedule.is_due(NOW + timedelta(seconds=1), NOW)
