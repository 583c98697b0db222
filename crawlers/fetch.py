"""The one HTTP seam for feeds, robots-free single fetches and ``sources check``.

Article pages, sitemaps and listings go through Scrapy; everything else comes through ``fetch``.
It never leaves the source's domains (redirects included), caps bodies at ``max_bytes``, sends
conditional headers, and classifies every failure as hard, soft or transient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin

import httpx

from crawlers.urls import in_domains

Failure = Literal["hard", "soft", "transient"]
MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
HARD_STATUS = {401, 403, 404, 410, 451}


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    failure: Failure | None = None
    retry_after: float | None = None
    redirected: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None and self.status in (200, 203)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (now if now is not None else time.time()))


def classify_status(status: int) -> Failure | None:
    if status < 400 or status == 304:
        return None
    if status in TRANSIENT_STATUS or status >= 500:
        return "transient"
    if status in HARD_STATUS:
        return "hard"
    return "soft"


def fetch(
    url: str,
    domains: list[str] | tuple[str, ...],
    *,
    user_agent: str,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 20.0,
    max_bytes: int = MAX_BYTES,
    client: httpx.Client | None = None,
) -> FetchResult:
    """GET ``url`` within ``domains``, following redirects that stay inside them.

    ``timeout`` bounds each step (connect, each read); the whole exchange gets three times as
    long, so a server that trickles bytes cannot hold the run.
    """
    result = FetchResult(url=url, final_url=url)
    if not in_domains(url, domains):
        result.error, result.failure = f"outside the source's domains: {url}", "hard"
        return result
    headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own_client = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    started = time.monotonic()
    current = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            with client.stream("GET", current, headers=headers, timeout=timeout) as response:
                if response.is_redirect and "location" in response.headers:
                    target = urljoin(current, response.headers["location"])
                    if not in_domains(target, domains):
                        result.error = f"redirect leaves the source's domains: {target}"
                        result.failure, result.status = "hard", response.status_code
                        return result
                    current, result.redirected = target, True
                    continue
                result.status = response.status_code
                result.headers = {k.lower(): v for k, v in response.headers.items()}
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    result.error = f"response too large: {declared} bytes > {max_bytes}"
                    result.failure = "soft"
                    return result
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    if time.monotonic() - started > 3 * timeout:
                        result.error = f"timeout: no complete answer within {3 * timeout:.0f} s"
                        result.failure = "transient"
                        return result
                    size += len(chunk)
                    if size > max_bytes:
                        result.error = f"response too large: over {max_bytes} bytes"
                        result.failure = "soft"
                        return result
                    chunks.append(chunk)
                result.body = b"".join(chunks)
                result.failure = classify_status(response.status_code)
                if result.failure:
                    result.error = f"HTTP {response.status_code}"
                    result.retry_after = parse_retry_after(response.headers.get("retry-after"))
                break
        else:
            result.error, result.failure = "too many redirects", "soft"
    except httpx.TimeoutException as exc:
        result.error, result.failure = f"timeout: {exc.__class__.__name__}", "transient"
    except httpx.TransportError as exc:
        result.error, result.failure = f"connection failed: {exc}", "transient"
    finally:
        result.final_url = current
        result.elapsed = time.monotonic() - started
        if own_client:
            client.close()
    return result
