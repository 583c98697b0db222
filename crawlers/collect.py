"""Collect one source: poll its due feeds, run the spiders, and write one JSON-lines batch.

The batch holds everything the warehouse needs to record the source's part of a run: feed state,
feed items (including off-site ones, recorded but never fetched), the article URLs handed to the
spiders (``job``), article records, failures, and last a ``batch_end`` record with the per-source
counts. Nothing is written to the database here.

A batch carries its own completeness: only a batch that ends with ``batch_end`` and
``complete: true`` was written by a collection that finished. A batch cut short (the run was
killed) still gives up its articles and discovered items, but the warehouse does not apply its
feed states, so the next run polls those feeds again and fetches what this one never reached.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from crawlers import schedule
from crawlers.dates import as_json, zone
from crawlers.feeds import parse_feed
from crawlers.fetch import fetch
from crawlers.sources import Source

SPIDER_TIMEOUT = 30 * 60


class CollectError(RuntimeError):
    """The whole source could not be collected (the spider process failed)."""


class SourceTimedOut(CollectError):
    """The source's spiders ran past the per-source time limit and were stopped."""


@dataclass
class FeedState:
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    failures: float = 0.0
    interval_seconds: float | None = None
    next_due_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> FeedState:
        if not row:
            return cls()
        values: dict[str, Any] = {k: row.get(k) for k in cls.__dataclass_fields__}
        values["failures"] = float(values["failures"] or 0.0)
        return cls(**values)


def poll_feed(
    url: str,
    source: Source,
    state: FeedState,
    known: set[str],
    *,
    user_agent: str,
    now: datetime,
    client: httpx.Client | None = None,
    timeout: float = 20.0,
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Fetch and parse one feed. Returns (feed state row, feed item rows, outcome)."""
    result = fetch(
        url,
        source.domains,
        user_agent=user_agent,
        etag=state.etag,
        last_modified=state.last_modified,
        client=client,
        timeout=timeout,
    )
    previous = timedelta(seconds=state.interval_seconds) if state.interval_seconds else None
    row: dict[str, Any] = {
        "kind": "feed",
        "feed_url": url,
        "source_id": source.id,
        "last_attempt_at": now.isoformat(),
        "http_status": result.status,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "body_sha256": state.body_sha256,
        "new_items": 0,
        "total_items": 0,
    }
    items: list[dict[str, Any]] = []
    failure, error = result.failure, result.error
    outcome = "failed"
    if result.not_modified:
        outcome = "not_modified"
    elif result.ok:
        digest = hashlib.sha256(result.body).hexdigest()
        if digest == state.body_sha256:
            outcome = "unchanged"  # servers lie about ETag; the same bytes mean nothing new
        else:
            parsed = parse_feed(
                result.body,
                result.final_url,
                source.domains,
                result.headers.get("content-type"),
                now,
                zone(source.timezone),
            )
            if not parsed.is_feed:
                failure, error = "hard", "not a feed" + (f" ({parsed.bozo})" if parsed.bozo else "")
            else:
                outcome = "parsed"
                row.update(
                    feed_kind=parsed.kind,
                    body_sha256=digest,
                    etag=result.headers.get("etag"),
                    last_modified=result.headers.get("last-modified"),
                    total_items=len(parsed.items),
                )
                if parsed.bozo:
                    error = f"ill-formed feed, kept {len(parsed.items)} items: {parsed.bozo}"[:300]
                for item in parsed.items:
                    if not item.offsite and item.url not in known:
                        row["new_items"] += 1
                    items.append(
                        {
                            "kind": "feed_item",
                            "source_id": source.id,
                            "feed_url": url,
                            "guid": item.guid,
                            "url": item.url,
                            "title": item.title,
                            "published": as_json(item.published),
                            "offsite": item.offsite,
                            "seen_at": now.isoformat(),
                        }
                    )
    if failure:
        failures = schedule.weighted_failures(state.failures, failure)
        interval = schedule.next_interval_after_failure(failures, result.retry_after)
        row.update(failures=failures, last_error=f"{error} [{failure}]")
    else:
        row.update(failures=0.0, last_error=error, last_success_at=now.isoformat())
        interval = schedule.next_interval_after_success(
            previous, row["new_items"], row["total_items"], outcome != "parsed"
        )
    row["interval_seconds"] = interval.total_seconds()
    row["next_due_at"] = (now + interval).isoformat()
    return row, items, outcome


def _write(handle: Any, row: dict[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _die_with_parent() -> None:
    """In the Scrapy child: be killed when the process that started it dies (Linux), so a dead
    run leaves no crawler writing into its batch while the next run loads it."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_spiders(job: dict[str, Any], out: Path, timeout: float = SPIDER_TIMEOUT) -> None:
    """Run Scrapy in a subprocess (its reactor cannot restart in-process)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(job, fh, ensure_ascii=False)
        job_path = fh.name
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "crawlers.scrapy_run", job_path, str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceTimedOut(
            f"spiders for {job['source']['id']} stopped at the time limit of {timeout:.0f} s "
            "(CSTOWATCH_SOURCE_TIMEOUT); what they fetched before is kept"
        ) from exc
    finally:
        Path(job_path).unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise CollectError(
            f"spiders for {job['source']['id']} exited {proc.returncode}: " + " | ".join(tail)
        )


def collect_source(
    source: Source,
    out: Path,
    *,
    feed_states: dict[str, dict[str, Any]],
    known: set[str],
    user_agent: str,
    now: datetime | None = None,
    force_feeds: bool = False,
    since: str | None = None,
    until: str | None = None,
    start_delay: float = 0.5,
    pending: list[dict[str, Any]] | None = None,
    timeout: float = 20.0,
    time_limit: float = SPIDER_TIMEOUT,
) -> dict[str, Any]:
    """Collect one source into the batch file ``out``. Returns the per-source counts.

    ``pending`` lists article URLs an earlier run discovered but never settled (url, title,
    published): they are fetched whatever their feed's state. ``timeout`` bounds each feed
    request (and its whole body, at three times as long); ``time_limit`` stops the source's
    spiders (``SourceTimedOut``), keeping what they wrote.
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    counts: dict[str, Any] = {
        "feeds_polled": 0,
        "feeds_not_modified": 0,
        "feeds_unchanged": 0,
        "feeds_failed": 0,
        "feeds_not_due": 0,
        "known_skipped": 0,
        "pending_retried": 0,
        "errors": [],
    }
    article_urls: list[dict[str, Any]] = []
    with out.open("w", encoding="utf-8") as handle, httpx.Client(timeout=timeout) as client:
        for feed_url in source.feeds:
            state = FeedState.from_row(feed_states.get(feed_url))
            if not force_feeds and not schedule.is_due(state.next_due_at, now):
                counts["feeds_not_due"] += 1
                continue
            row, items, outcome = poll_feed(
                feed_url,
                source,
                state,
                known,
                user_agent=user_agent,
                now=now,
                client=client,
                timeout=timeout,
            )
            counts["feeds_polled"] += 1
            if outcome == "failed":
                counts["feeds_failed"] += 1
                counts["errors"].append(f"feed {feed_url}: {row['last_error']}")
            elif outcome in ("not_modified", "unchanged"):
                counts[f"feeds_{outcome}"] += 1
            _write(handle, row)
            for item in items:
                _write(handle, item)
                if not item["offsite"] and item["url"] in known:
                    counts["known_skipped"] += 1
                elif not item["offsite"]:
                    article_urls.append(
                        {"url": item["url"], "title": item["title"], "published": item["published"]}
                    )
        listed = {a["url"] for a in article_urls}
        for item in pending or []:
            if item["url"] not in listed and item["url"] not in known:
                listed.add(item["url"])
                article_urls.append({k: item.get(k) for k in ("url", "title", "published")})
                counts["pending_retried"] += 1
        # the URLs handed to the spiders: the warehouse settles each against what came back
        _write(handle, {"kind": "job", "source_id": source.id, "urls": sorted(listed)})
        handle.flush()
    job = {
        "source": source.model_dump(mode="json"),
        "article_urls": article_urls,
        "known": sorted(known),
        "user_agent": user_agent,
        "since": since,
        "until": until,
        "start_delay": start_delay,
    }
    end: dict[str, Any] = {"kind": "batch_end", "source_id": source.id, "complete": False}
    try:
        if article_urls or source.start_urls or source.sitemaps:
            run_spiders(job, out, time_limit)
        end["complete"] = True
    except Exception as exc:
        end["error"] = f"{exc.__class__.__name__}: {exc}"[:500]
        raise
    finally:
        counts["duration_s"] = round(time.monotonic() - started, 3)
        with out.open("a", encoding="utf-8") as handle:
            _write(handle, end | {"counts": counts})
            handle.flush()
            os.fsync(handle.fileno())
    return counts
