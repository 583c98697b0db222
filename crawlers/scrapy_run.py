"""Run the spiders for one source in this process and write a JSON-lines batch.

Started as a subprocess by the collect task (Twisted's reactor cannot be restarted in-process):

    python -m crawlers.scrapy_run JOB.json OUT.jsonl

Each fetched page is extracted here, so the batch holds article records ready for the warehouse,
plus one record per failure and a final ``stats`` record with the per-source counts.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scrapy.crawler import CrawlerProcess
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.utils.httpobj import urlparse_cached

from crawlers.dates import zone
from crawlers.extract import extract_article
from crawlers.fetch import MAX_BYTES, parse_retry_after
from crawlers.spiders import ArticleSpider, ListingSpider, SitemapNewsSpider
from crawlers.urls import article_id


class BackoffRetryMiddleware(RetryMiddleware):
    """Retry 408/429/5xx with exponential backoff on the domain's download slot.

    Scrapy's own retry re-queues at once; slowing the slot instead backs off every request to
    that host, and a Retry-After header sets the delay directly (capped at a minute).
    """

    def process_response(self, request, response, spider=None):  # type: ignore[no-untyped-def]
        if response.status in self.retry_http_codes:
            slot_key = request.meta.get("download_slot")
            slots = self.crawler.engine.downloader.slots  # type: ignore[union-attr]
            slot = slots.get(slot_key) if slot_key else None
            if slot is not None:
                wait = parse_retry_after(response.headers.get("Retry-After", b"").decode())
                backoff = max(slot.delay * 2, 0.5)
                slot.delay = min(60.0, wait if wait is not None else backoff)
        return super().process_response(request, response)


class SharedRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt check, mended for requests that wait on the same robots.txt.

    Scrapy 2.x hands every request queued before robots.txt arrives one shared Deferred; the
    first waiter's callback passes None down the chain, and None means "no robots.txt, allow
    everything", so from the third queued URL on a disallowed page was fetched anyway
    (tests/test_hydrate.py and tests/test_collect.py queue such URLs). Once robots.txt is parsed
    the parser sits in ``_parsers``: read it from there.
    """

    async def robot_parser(self, request):  # type: ignore[no-untyped-def]
        parser = await super().robot_parser(request)
        if parser is None:
            parser = self._parsers.get(urlparse_cached(request).netloc)
        return parser


class BatchWriter:
    """Item pipeline: extract pages and append one JSON line per result."""

    def __init__(self, out: str, tz: str | None = None) -> None:
        self.path = Path(out)
        self.tz = zone(tz)
        self.handle = self.path.open("a", encoding="utf-8")

    @classmethod
    def from_crawler(cls, crawler):  # type: ignore[no-untyped-def]
        return cls(crawler.settings["CSTOWATCH_OUT"], crawler.settings.get("CSTOWATCH_TZ"))

    def process_item(self, item: dict[str, Any], spider=None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        if item["kind"] == "page":
            record = page_record(item, self.tz)
        else:
            record = dict(item, fetched_at=datetime.now(UTC).isoformat())
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()
        return {"kind": record["kind"]}

    def close_spider(self, spider=None) -> None:  # type: ignore[no-untyped-def]
        self.handle.close()


def page_record(item: dict[str, Any], tz: ZoneInfo | None = None) -> dict[str, Any]:
    body: bytes = item["body"]
    fetched_at = datetime.now(UTC)
    is_html = "html" in item.get("content_type", "").lower() or body.lstrip()[:1] == b"<"
    record: dict[str, Any] = {
        "kind": "article",
        "source_id": item["source_id"],
        "url": item["url"],
        "requested_url": item.get("requested_url") or item["url"],
        "final_url": item["final_url"],
        "http_status": item["http_status"],
        "via": item["via"],
        "hint": item.get("hint") or {},
        "fetched_at": fetched_at.isoformat(),
    }
    if not is_html or b"\x00" in body[:1024]:
        record.update(status="not_html", reason=f"content type {item.get('content_type')!r}")
        return record
    extracted = extract_article(
        body, item["final_url"], item["http_status"], fetched_at=fetched_at, tz=tz
    )
    record.update(extracted.to_json())
    record["url"] = item["url"]
    record["article_id"] = article_id(extracted.canonical_url)
    record["raw_html_z"] = base64.b64encode(zlib.compress(body, 6)).decode("ascii")
    return record


def crawl_settings(job: dict[str, Any], out: str) -> dict[str, Any]:
    return {
        "USER_AGENT": job["user_agent"],
        "ROBOTSTXT_OBEY": True,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": job.get("start_delay", 0.5),
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 2.0,
        "CONCURRENT_REQUESTS": 8,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "DOWNLOAD_TIMEOUT": job.get("timeout", 20),
        "DOWNLOAD_MAXSIZE": MAX_BYTES,
        "DOWNLOAD_WARNSIZE": MAX_BYTES // 2,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": job.get("retries", 2),
        "RETRY_HTTP_CODES": [408, 429, 500, 502, 503, 504],
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
            "crawlers.scrapy_run.SharedRobotsTxtMiddleware": 100,
            "crawlers.scrapy_run.BackoffRetryMiddleware": 550,
        },
        "ITEM_PIPELINES": {"crawlers.scrapy_run.BatchWriter": 100},
        "CSTOWATCH_OUT": out,
        "CSTOWATCH_TZ": job["source"].get("timezone"),
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": job.get("log_level", "WARNING"),
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    }


def run(job: dict[str, Any], out: str) -> dict[str, Any]:
    process = CrawlerProcess(crawl_settings(job, out), install_root_handler=True)
    crawlers = []
    source = job["source"]
    if job.get("article_urls"):
        crawlers.append(process.create_crawler(ArticleSpider))
    if source.get("start_urls"):
        crawlers.append(process.create_crawler(ListingSpider))
    if source.get("sitemaps"):
        crawlers.append(process.create_crawler(SitemapNewsSpider))
    for crawler in crawlers:
        process.crawl(crawler, job=job)
    process.start()
    totals: dict[str, Any] = {}
    for crawler in crawlers:
        for key, value in (crawler.stats.get_stats() or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return totals


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m crawlers.scrapy_run JOB.json OUT.jsonl", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    stats = run(job, argv[1])
    with Path(argv[1]).open("a", encoding="utf-8") as handle:
        handle.write(
            json.dumps({"kind": "stats", "source_id": job["source"]["id"], "stats": stats}) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
