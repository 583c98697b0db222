"""``cstowatch sources check``: is every feed, sitemap and start URL in sources.yaml still alive?

Each URL is fetched once through :func:`crawlers.fetch.fetch` (so the domain fence, redirect
handling and size cap are exactly the crawler's) and given one verdict:

============  =====================================================================
reachable     200, and the body is what the list says it is (a feed that feedparser reads,
              sitemap XML or a robots.txt that lists sitemaps, an HTML listing page)
redirected    as reachable, but only after a redirect: ``final_url`` is the URL to put in
              the list instead
dead          404/410, another hard failure, or no connection at all (DNS, refused, reset)
not_a_feed    a feed URL answered 200 with something feedparser cannot read (often the home
              page the old feed URL now redirects to)
blocked       401/403/429/451: the outlet refuses us (user agent, geo-block or rate limit)
error         anything else: 5xx, timeouts, a body too large for the crawler, a redirect
              that leaves the source's domains, a sitemap URL that is not a sitemap, ...
============  =====================================================================

The verdict is a pure function of the fetch result and a sniff of the body (:func:`verdict`,
:func:`sniff`); only :func:`check_sources` does I/O. Requests run on a small thread pool, at
most :data:`PER_HOST` at a time against one host.
"""

from __future__ import annotations

import gzip
import zlib
from collections import OrderedDict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx
import parsel

from crawlers.feeds import parse_feed
from crawlers.fetch import MAX_BYTES, FetchResult, fetch
from crawlers.sources import Selectors, Source
from crawlers.urls import host_of, in_domains

Kind = Literal["feed", "sitemap", "start_url"]
Verdict = Literal["reachable", "redirected", "dead", "not_a_feed", "blocked", "error"]
VERDICTS: tuple[Verdict, ...] = (
    "reachable", "redirected", "dead", "not_a_feed", "blocked", "error",
)

MAX_WORKERS = 8
PER_HOST = 2
BLOCKED_STATUS = {401, 403, 429, 451}
DEAD_STATUS = {404, 410}
SNIFF_BYTES = 64 * 1024

# fetch() reports these two situations only through its error string.
_OFFSITE_REDIRECT = "redirect leaves the source's domains: "
_OFFSITE_URL = "outside the source's domains: "
_CONNECTION = "connection failed: "

# What each kind of URL has to turn out to be (see sniff()).
EXPECTED: dict[str, set[str]] = {
    "feed": {"feed"},
    "sitemap": {"sitemap", "sitemapindex", "robots"},
    "start_url": {"html"},
}


@dataclass
class CheckResult:
    source_id: str
    kind: Kind
    url: str
    verdict: Verdict
    status: int | None = None
    final_url: str | None = None  # set when the fetch was redirected (or tried to leave)
    detail: str = ""


# --------------------------------------------------------------------------- pure functions


def _decompress(body: bytes) -> bytes:
    """A gzip body that was not decoded by the transport (``sitemap.xml.gz``)."""
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error):
        return body


def _looks_html(head: bytes, content_type: str) -> bool:
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return "html" in content_type.lower() or lowered.startswith((b"<!doctype html", b"<html"))


def _advertised_feeds(text: str, base: str) -> list[str]:
    selector = parsel.Selector(text=text)
    hrefs = selector.css(
        "link[rel~=alternate][type*=rss]::attr(href), link[rel~=alternate][type*=atom]::attr(href)"
    ).getall()
    return list(OrderedDict.fromkeys(urljoin(base, h.strip()) for h in hrefs if h.strip()))


def sniff(kind: str, result: FetchResult, source: Source | None = None) -> tuple[str, str]:
    """What the body is, and a short note about it. No network.

    The body kind is one of ``feed``, ``sitemap``, ``sitemapindex``, ``robots``,
    ``robots_no_sitemaps``, ``html``, ``xml``, ``json``, ``text``, ``empty`` and ``other``.
    """
    domains = list(source.domains) if source else [host_of(result.final_url)]
    body = _decompress(result.body)
    if not body.strip():
        return "empty", "empty body"
    content_type = result.headers.get("content-type", "")
    head = body[:SNIFF_BYTES]
    lowered = head.lower()

    if kind == "feed":
        parsed = parse_feed(body, result.final_url, domains, content_type or None)
        if parsed.is_feed:
            offsite = sum(1 for item in parsed.items if item.offsite)
            note = f"{parsed.kind or 'feed'}, {len(parsed.items)} items"
            if offsite:
                note += f" ({offsite} outside the source's domains)"
            if parsed.bozo:
                note += f"; ill-formed: {parsed.bozo}"[:200]
            return "feed", note

    if kind == "sitemap":
        if b"<urlset" in lowered:
            count = body.count(b"<loc>") + body.count(b"<loc ")
            news = " (Google News sitemap)" if b"sitemap-news" in lowered else ""
            return "sitemap", f"sitemap with {count} URLs{news}"
        if b"<sitemapindex" in lowered:
            count = body.count(b"<loc>") + body.count(b"<loc ")
            return "sitemapindex", f"sitemap index of {count} sitemaps"
        is_robots = urlsplit(result.final_url).path.endswith("/robots.txt")
        lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines()]
        directives = [line for line in lines if line.lower().startswith("user-agent:")]
        if is_robots or directives:
            listed = [line.split(":", 1)[1].strip() for line in lines
                      if line.lower().startswith("sitemap:")]
            if not listed:
                return "robots_no_sitemaps", "robots.txt lists no Sitemap: lines"
            outside = [url for url in listed if not in_domains(url, domains)]
            note = f"robots.txt lists {len(listed)} sitemaps"
            if outside:
                note += f" ({len(outside)} outside the source's domains: {outside[0]})"
            return "robots", note

    if _looks_html(head, content_type):
        note = ""
        advertised = _advertised_feeds(body.decode("utf-8", "replace"), result.final_url)
        if kind == "start_url":
            selectors = (source.selectors if source else None) or Selectors()
            page = parsel.Selector(text=body.decode("utf-8", "replace"))
            try:
                links = page.css(selectors.article_links).getall()
            except Exception as exc:  # cssselect raises several types
                note = f"article_links selector does not parse: {exc}"
            else:
                absolute = {urljoin(result.final_url, href.strip()) for href in links}
                inside = [u for u in absolute if in_domains(u, domains)]
                note = f"{len(inside)} article links match selectors.article_links"
                if not inside:
                    note += " (check the selector)"
        if advertised:
            note = "; ".join(filter(None, [note, "page advertises feeds: "
                                           + ", ".join(advertised[:3])]))
        return "html", note
    if lowered.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml") or "xml" in content_type:
        return "xml", "XML, but neither a feed nor a sitemap"
    if lowered.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return "json", "JSON"
    if "text/" in content_type or b"\x00" not in head:
        return "text", "plain text"
    return "other", f"content type {content_type or 'unknown'}"


def verdict(kind: str, result: FetchResult, body_kind: str | None) -> tuple[Verdict, str]:
    """The verdict for one fetched URL: (verdict, detail). No network, no body parsing."""
    status, error = result.status, result.error or ""
    moved = f" (after a redirect to {result.final_url})" if result.redirected else ""

    if error.startswith(_OFFSITE_REDIRECT):
        target = error[len(_OFFSITE_REDIRECT):]
        return "error", (f"redirects outside the source's domains to {target}: "
                         "add that host to domains or update the URL")
    if error.startswith(_OFFSITE_URL):
        return "error", "the URL is not inside the source's domains: fix domains or the URL"
    if status is None:
        if error.startswith(_CONNECTION):
            return "dead", error
        return "error", error or "no response"
    if status in BLOCKED_STATUS:
        retry = (f", Retry-After {result.retry_after:.0f}s"
                 if result.retry_after is not None else "")
        return "blocked", f"HTTP {status}{retry}{moved}"
    if status in DEAD_STATUS or result.failure == "hard":
        return "dead", f"HTTP {status}{moved}"
    if result.failure is not None:
        return "error", f"{error or f'HTTP {status}'}{moved}"
    if status not in (200, 203):
        return "error", f"HTTP {status}, expected 200{moved}"

    if body_kind not in EXPECTED.get(kind, set()):
        seen = body_kind or "unknown"
        if kind == "feed":
            return "not_a_feed", f"HTTP {status} but not a feed (body: {seen}){moved}"
        if kind == "sitemap":
            return "error", f"HTTP {status} but not a sitemap or robots.txt (body: {seen}){moved}"
        return "error", f"HTTP {status} but not an HTML page (body: {seen}){moved}"
    if result.redirected:
        return "redirected", f"moved to {result.final_url}: update the list"
    return "reachable", f"HTTP {status}, {body_kind}"


# --------------------------------------------------------------------------- I/O


@dataclass(frozen=True)
class _Job:
    index: int
    source: Source
    kind: Kind
    url: str


def _jobs(sources: list[Source]) -> list[_Job]:
    jobs: list[_Job] = []
    for source in sources:
        seen: set[tuple[str, str]] = set()
        for kind, urls in (("feed", source.feeds), ("sitemap", source.sitemaps),
                           ("start_url", source.start_urls)):
            for url in urls:
                if (kind, url) in seen:
                    continue
                seen.add((kind, url))
                jobs.append(_Job(len(jobs), source, kind, url))  # type: ignore[arg-type]
    return jobs


def check_one(
    source: Source,
    kind: Kind,
    url: str,
    *,
    user_agent: str,
    timeout: float = 15.0,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Fetch one URL of a source and judge it."""
    try:
        result = fetch(url, source.domains, user_agent=user_agent, timeout=timeout,
                       max_bytes=MAX_BYTES, client=client)
    except Exception as exc:  # a malformed URL must not stop the whole check
        result = FetchResult(url=url, final_url=url, error=f"{exc.__class__.__name__}: {exc}")
    body_kind: str | None = None
    note = ""
    if result.status in (200, 203) and result.failure is None:
        try:
            body_kind, note = sniff(kind, result, source)
        except Exception as exc:  # a parser bug must not stop the whole check either
            body_kind, note = "other", f"could not read the body: {exc.__class__.__name__}: {exc}"
    outcome, detail = verdict(kind, result, body_kind)
    if note and outcome not in ("dead", "blocked"):
        detail = f"{detail}; {note}"
    final_url = result.final_url if result.redirected else None
    if (result.error or "").startswith(_OFFSITE_REDIRECT):
        final_url = result.error[len(_OFFSITE_REDIRECT):]  # type: ignore[index]
    return CheckResult(source_id=source.id, kind=kind, url=url, verdict=outcome,
                       status=result.status, final_url=final_url, detail=detail)


def check_sources(
    sources: list[Source],
    user_agent: str,
    timeout: float = 15.0,
    client: httpx.Client | None = None,
    *,
    max_workers: int = MAX_WORKERS,
    per_host: int = PER_HOST,
) -> list[CheckResult]:
    """Check every feed, sitemap and start URL of ``sources`` once.

    Results come back in the order of the file: source by source, feeds, then sitemaps, then
    start URLs. A URL listed twice in one source is checked once. ``client``, when given, must
    not follow redirects itself (fetch follows them inside the domain fence).
    """
    jobs = _jobs(sources)
    if not jobs:
        return []
    max_workers = max(1, min(max_workers, MAX_WORKERS))
    per_host = max(1, per_host)
    own_client = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    queues: OrderedDict[str, deque[_Job]] = OrderedDict()
    for job in jobs:
        queues.setdefault(host_of(job.url), deque()).append(job)
    running: dict[Future[CheckResult], str] = {}
    per_host_running: dict[str, int] = {host: 0 for host in queues}
    results: list[CheckResult | None] = [None] * len(jobs)
    try:
        with ThreadPoolExecutor(max_workers=max_workers,
                                thread_name_prefix="sources-check") as pool:
            index_of: dict[Future[CheckResult], int] = {}
            while queues or running:
                # Start what we may: round-robin over hosts with a free slot.
                started = True
                while started and len(running) < max_workers:
                    started = False
                    for host in list(queues):
                        if len(running) >= max_workers:
                            break
                        if per_host_running[host] >= per_host:
                            continue
                        job = queues[host].popleft()
                        if not queues[host]:
                            del queues[host]
                        future = pool.submit(check_one, job.source, job.kind, job.url,
                                             user_agent=user_agent, timeout=timeout,
                                             client=client)
                        running[future], index_of[future] = host, job.index
                        per_host_running[host] += 1
                        started = True
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    host = running.pop(future)
                    per_host_running[host] -= 1
                    results[index_of.pop(future)] = future.result()
    finally:
        if own_client:
            client.close()
    return [r for r in results if r is not None]


def summarise(results: list[CheckResult]) -> dict[str, int]:
    """Count of results per verdict, every verdict present (for the CLI's last line)."""
    counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
    for result in results:
        counts[result.verdict] += 1
    return counts
