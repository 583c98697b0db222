"""The three Scrapy spiders. Per-outlet behaviour comes from ``sources.yaml``, not from code.

- ``SitemapNewsSpider`` reads robots.txt and (news) sitemaps.
- ``ListingSpider`` walks listing pages with the source's CSS selectors.
- ``ArticleSpider`` fetches the article URLs found in feeds.

Every spider skips URLs already stored (``job["known"]``) and never requests a URL outside the
source's domains; such links are counted, not followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.spiders import SitemapSpider

from crawlers.urls import in_domains, normalise


class _JobMixin:
    job: dict[str, Any]

    def _setup(self, job: dict[str, Any]) -> None:
        self.job = job
        self.source_id: str = job["source"]["id"]
        self.domains: list[str] = job["source"]["domains"]
        self.allowed_domains = list(self.domains)
        self.known: set[str] = set(job.get("known", []))
        # Shared by the spiders of one run (they get the same job dict): a listing and a sitemap
        # often name the same article, which is fetched once.
        self.queued: set[str] = job.setdefault("_queued", set())

    def wanted(self, url: str) -> bool:
        """Whether to fetch an article URL; counts why a URL is passed over."""
        stats = self.crawler.stats  # type: ignore[attr-defined]
        if not in_domains(url, self.domains):
            stats.inc_value("cstowatch/offsite_skipped")
            return False
        if url in self.known:
            stats.inc_value("cstowatch/known_skipped")
            return False
        if url in self.queued:
            return False
        self.queued.add(url)
        return True

    def article_request(self, url: str, via: str, hint: dict | None = None) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=self.parse_article,
            errback=self.failed,
            meta={"via": via, "hint": hint or {}},
        )

    def parse_article(self, response: Response) -> Iterator[dict]:
        url = normalise(response.request.url if response.request else response.url)
        yield {
            "kind": "page",
            "source_id": self.source_id,
            "url": url,
            "requested_url": _requested(response.meta, url),
            "final_url": response.url,
            "http_status": response.status,
            "content_type": (response.headers.get("Content-Type") or b"").decode("latin-1"),
            "body": response.body,
            "encoding": getattr(response, "encoding", None),
            "via": response.meta.get("via"),
            "hint": response.meta.get("hint", {}),
        }

    def failed(self, failure: Any) -> Iterator[dict]:
        request = failure.request
        response = getattr(failure.value, "response", None)
        message = failure.getErrorMessage()
        if "robots.txt" in message:  # the site asked us not to: a decision, not a failure
            yield {
                "kind": "event",
                "status": "robots_disallowed",
                "source_id": self.source_id,
                "url": normalise(request.url),
                "requested_url": _requested(request.meta, request.url),
                "reason": message[:500],
                "via": request.meta.get("via"),
            }
            return
        yield {
            "kind": "failure",
            "source_id": self.source_id,
            "url": normalise(request.url),
            "requested_url": _requested(request.meta, request.url),
            "http_status": getattr(response, "status", None),
            "error": f"{failure.type.__name__}: {failure.getErrorMessage()}"[:500],
            "via": request.meta.get("via"),
        }


class ArticleSpider(_JobMixin, scrapy.Spider):
    name = "articles"

    def __init__(self, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._setup(job)

    async def start(self):  # type: ignore[override]
        for entry in self.job.get("article_urls", []):
            url = normalise(entry["url"])
            if self.wanted(url):
                yield self.article_request(url, "feed", entry)


class ListingSpider(_JobMixin, scrapy.Spider):
    name = "listing"

    def __init__(self, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._setup(job)
        selectors = job["source"].get("selectors") or {}
        self.link_css: str = selectors.get("article_links") or "article a::attr(href)"
        self.next_css: str | None = selectors.get("next_page")
        self.max_pages: int = int(selectors.get("max_pages") or 20)

    async def start(self):  # type: ignore[override]
        for url in self.job["source"].get("start_urls", []):
            yield scrapy.Request(
                url, callback=self.parse, errback=self.failed, meta={"page": 1, "via": "listing"}
            )

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        for href in response.css(self.link_css).getall():
            url = normalise(href, response.url)
            if self.wanted(url):
                yield self.article_request(url, "listing")
        page = response.meta["page"]
        if self.next_css and page < self.max_pages:
            for href in response.css(self.next_css).getall()[:1]:
                url = normalise(href, response.url)
                if in_domains(url, self.domains):
                    yield scrapy.Request(
                        url,
                        callback=self.parse,
                        errback=self.failed,
                        meta={"page": page + 1, "via": "listing"},
                    )


class SitemapNewsSpider(_JobMixin, SitemapSpider):
    name = "sitemap"

    def __init__(self, job: dict[str, Any], **kwargs: Any) -> None:
        self._setup(job)
        self.sitemap_urls = list(job["source"].get("sitemaps", []))
        self.since = _date(job.get("since"))
        self.until = _date(job.get("until"))
        super().__init__(**kwargs)

    def sitemap_filter(self, entries):  # type: ignore[no-untyped-def]
        is_index = getattr(entries, "type", None) == "sitemapindex"
        for entry in entries:
            loc = entry.get("loc", "")
            if is_index:
                if in_domains(loc, self.domains):
                    yield entry
                continue
            when = _date(entry.get("lastmod") or entry.get("publication_date"))
            if when is not None and (
                (self.since and when < self.since) or (self.until and when > self.until)
            ):
                continue
            url = normalise(loc)
            if self.wanted(url):
                entry["loc"] = url
                yield entry

    async def start(self):  # type: ignore[override]
        # Scrapy's sitemap requests have no errback: a dead sitemap would vanish without a record.
        async for request in super().start():
            yield request.replace(errback=self.failed, meta={"via": "sitemap"})

    def _parse_sitemap(self, response: Response):  # type: ignore[no-untyped-def]
        for request in super()._parse_sitemap(response):
            if request.callback == self.parse:
                yield self.article_request(request.url, "sitemap")
            else:
                yield request.replace(errback=self.failed, meta={"via": "sitemap"})


def _requested(meta: dict[str, Any], url: str) -> str:
    """The URL first asked for: after redirects, the one the feed or listing named."""
    return normalise((meta.get("redirect_urls") or [url])[0])


def _date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)
