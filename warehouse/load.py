"""Idempotent loads: each batch in one transaction; loading it twice changes nothing.

A batch is the JSON-lines file that one source's collection wrote (see crawlers/collect.py).
Bad rows are rejected with a message naming the row; the rest of the batch still loads.

A batch is loaded set-wise: ``stage`` sorts and validates the rows (no database), one query
per question reads the stored state the batch depends on (which of its ids and URLs are stored,
the first stored copy of each of its texts), ``resolve`` makes the order-dependent decisions in
one pass in batch order (the first copy of a URL or an id wins, the first copy of a text is the
original of later ones, story clustering), and each table then gets one insert of all its new
rows. The outcome is the one a row-by-row load in batch order would give.

A batch from a collection that did not finish (no ``batch_end`` record, or one with
``complete: false``) loads its articles, events and feed items but not its feed states, so the
feeds are polled again. Every on-site article URL a batch names (a feed item, or a URL handed to
the spiders) that did not reach a final state (stored, known, recognised as a non-article, or
given up on) is kept in ``pending_items`` and fetched by the next run; ``max_attempts`` failed
fetches mark it failed, with the last error.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from crawlers import dates
from warehouse.db import run_script, sql, transaction
from warehouse.stories import StoryIndex, content_hash, signature

STORY_LOOKBACK = timedelta(days=30)
# failed fetches of one article URL before it is given up (pending_items.status = 'failed')
MAX_ATTEMPTS = 3
NO_OUTCOME = "no outcome recorded: the crawler dropped the URL (an off-site redirect or a filter)"
LABELS = ("pro_russian", "neutral", "pro_kazakh")
RUN_COLUMNS = (
    "run_id",
    "source_id",
    "flow_run_id",
    "started_at",
    "finished_at",
    "status",
    "feeds_polled",
    "feeds_not_modified",
    "feeds_unchanged",
    "feeds_failed",
    "feeds_not_due",
    "pages_fetched",
    "articles_added",
    "duplicates",
    "known_skipped",
    "non_articles",
    "rejected",
    "failed",
    "offsite_skipped",
    "duration_s",
    "errors",
)
# The columns of the frames registered for the set-wise inserts (warehouse/sql/insert_*.sql),
# with the pandas dtype each needs to reach DuckDB typed, nulls included.
ARTICLE_FRAME = {
    "article_id": "str",
    "source_id": "str",
    "url": "str",
    "canonical_url": "str",
    "title": "str",
    "text": "str",
    "lang_declared": "str",
    "published_at": "ts",
    "published_date": "date",
    "fetched_at": "ts",
    "content_sha256": "str",
    "story_id": "str",
    "duplicate_of": "str",
    "extractor": "str",
    "via": "str",
    "word_count": "int",
    "signature": "list",
    "raw_html": "bytes",
}
FEED_ITEM_FRAME = {
    "pos": "int",
    "feed_url": "str",
    "guid": "str",
    "url": "str",
    "title": "str",
    "published_at": "ts",
    "published_date": "date",
    "offsite": "bool",
    "first_seen_at": "ts",
}
PENDING_FRAME = {
    "pos": "int",
    "url": "str",
    "source_id": "str",
    "feed_url": "str",
    "title": "str",
    "published_at": "ts",
    "first_seen_at": "ts",
}
ATTEMPT_FRAME = {"url": "str", "error": "str"}
EVENT_FRAME = {
    "source_id": "str",
    "url": "str",
    "status": "str",
    "http_status": "int",
    "reason": "str",
    "recorded_at": "ts",
}
_DTYPES = {"str": "string", "int": "Int64", "float": "Float64", "bool": "boolean"}


@dataclass
class LoadReport:
    added: int = 0
    duplicates: int = 0
    non_articles: int = 0
    failed: int = 0
    rejected: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    complete: bool = True
    gave_up: list[str] = field(default_factory=list)


@dataclass
class StagedBatch:
    """A batch sorted by destination table, validated, its dates parsed (see ``stage``)."""

    feeds: list[dict[str, Any]] = field(default_factory=list)
    feed_items: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    articles: list[dict[str, Any]] = field(default_factory=list)
    discovered: list[dict[str, Any]] = field(default_factory=list)  # on-site feed items
    requested: list[str] = field(default_factory=list)  # URLs handed to the spiders
    settled: set[str] = field(default_factory=set)  # URLs that reached a final state
    failed: dict[str, str] = field(default_factory=dict)  # URL -> error of a failed fetch
    end: dict[str, Any] | None = None  # the batch_end record, when collection got that far

    @property
    def complete(self) -> bool:
        return bool(self.end and self.end.get("complete"))


def _ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _instant(value: Any) -> datetime | None:
    """A batch's publication date as an instant, for hints (pending items): a day is None."""
    try:
        return dates.split(dates.from_json(value))[0]
    except (TypeError, ValueError):
        return None


def validate_article(row: dict[str, Any], line: int) -> str | None:
    """The reason to reject an article row, or None when it is good."""
    where = f"line {line} ({row.get('url') or 'no url'})"
    if not row.get("url"):
        return f"{where}: missing url"
    if not row.get("source_id"):
        return f"{where}: missing source_id"
    if not row.get("article_id"):
        return f"{where}: missing article_id"
    if not (row.get("text") or "").strip():
        return f"{where}: empty text"
    try:
        dates.from_json(row.get("published"))
        _ts(row.get("fetched_at"))
    except (TypeError, ValueError):
        return f"{where}: invalid date: {row.get('published')!r} / {row.get('fetched_at')!r}"
    return None


def validate_prediction(row: dict[str, Any]) -> str | None:
    where = f"prediction {row.get('article_id')}#{row.get('passage_idx')}"
    if not row.get("relevant"):
        return None
    if row.get("label") not in LABELS:
        return f"{where}: label {row.get('label')!r} is not one of {', '.join(LABELS)}"
    raw = [row.get(f"p_{label}") for label in LABELS]
    if any(p is None for p in raw):
        return f"{where}: a probability is missing: {raw}"
    probs = [float(p) for p in raw]  # type: ignore[arg-type]
    if any(not 0.0 <= p <= 1.0 for p in probs):
        return f"{where}: probabilities must lie in [0, 1]: {probs}"
    if abs(sum(probs) - 1.0) > 1e-4:
        return f"{where}: probabilities sum to {sum(probs):.6f}, not 1"
    return None


def frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """``rows`` as a DataFrame DuckDB reads with the right types (None becomes NULL).

    ``columns`` maps each column to str, int, float, bool, ts (datetimes, any UTC offset), date,
    bytes or list (numpy arrays).
    """
    data: dict[str, Any] = {}
    for name, kind in columns.items():
        values = [row.get(name) for row in rows]
        if kind == "ts":
            data[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif kind == "date":  # datetime.date or None: DuckDB reads them as DATE
            data[name] = pd.Series(values, dtype=object)
        else:
            data[name] = pd.Series(values, dtype=_DTYPES.get(kind, object))
    return pd.DataFrame(data)


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> Iterator[None]:
    """Make each DataFrame queryable under its keyword's name for the duration of the block."""
    for name, df in frames.items():
        con.register(name, df)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)


def upsert_sources(con: duckdb.DuckDBPyConnection, sources: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    for s in sources:
        con.execute(
            sql("upsert_source"),
            [
                s["id"],
                s["name"],
                s["country"],
                s["languages"],
                s["affiliation"],
                s["domains"],
                now,
                s.get("timezone"),
            ],
        )


def _story_index(con: duckdb.DuckDBPyConnection, since: datetime) -> StoryIndex:
    index = StoryIndex()
    rows = con.execute(sql("story_candidates"), {"since": since}).fetchall()
    for article_id, story_id, values in rows:
        index.add(article_id, story_id, values)
    return index


def _upsert_feed(con: duckdb.DuckDBPyConnection, f: dict[str, Any]) -> None:
    con.execute(
        sql("upsert_feed"),
        [
            f["feed_url"],
            f["source_id"],
            f.get("feed_kind"),
            _ts(f.get("last_attempt_at")),
            _ts(f.get("last_success_at")),
            f.get("http_status"),
            f.get("etag"),
            f.get("last_modified"),
            f.get("body_sha256"),
            f.get("new_items"),
            f.get("total_items"),
            f.get("failures", 0.0),
            f.get("interval_seconds"),
            _ts(f.get("next_due_at")),
            f.get("last_error"),
        ],
    )


def _event(row: dict[str, Any], status: str, reason: str | None, now: datetime) -> dict[str, Any]:
    return {
        "source_id": row["source_id"],
        "url": row.get("url"),
        "status": status,
        "http_status": row.get("http_status"),
        "reason": reason,
        "recorded_at": _ts(row.get("fetched_at")) or now,
    }


def stage(rows: list[dict[str, Any]], now: datetime) -> tuple[LoadReport, StagedBatch]:
    """Sort a batch's rows by table and validate them; no database involved.

    A malformed feed, feed item or event row raises (KeyError), so a batch the crawler wrote
    wrongly fails whole before anything is written; bad article rows are only rejected.
    """
    report, staged = LoadReport(), StagedBatch()
    sources = {row["feed_url"]: row["source_id"] for row in rows if row.get("kind") == "feed"}
    for row in rows:
        kind, line = row.get("kind"), row.get("_line", 0)
        report.counts[kind] += 1
        urls = {u for u in (row.get("url"), row.get("requested_url")) if u}
        if kind == "feed":
            staged.feeds.append(row)
        elif kind == "feed_item":
            if not row["offsite"]:
                staged.discovered.append(
                    {
                        "pos": len(staged.discovered),
                        "url": row["url"],
                        "source_id": row.get("source_id") or sources.get(row["feed_url"]),
                        "feed_url": row["feed_url"],
                        "title": row.get("title"),
                        "published_at": _instant(row.get("published")),
                        "first_seen_at": _ts(row["seen_at"]),
                    }
                )
            published_at, published_date = dates.split(dates.from_json(row.get("published")))
            staged.feed_items.append(
                {
                    "pos": len(staged.feed_items),
                    "feed_url": row["feed_url"],
                    "guid": row["guid"],
                    "url": row["url"],
                    "title": row.get("title"),
                    "published_at": published_at,
                    "published_date": published_date,
                    "offsite": row["offsite"],
                    "first_seen_at": _ts(row["seen_at"]),
                }
            )
        elif kind == "job":
            staged.requested.extend(row["urls"])
        elif kind == "batch_end":
            staged.end = row
        elif kind == "article":
            staged.settled |= urls  # stored, a duplicate, a non-article or rejected: final
            if row.get("status", "ok") != "ok":
                report.non_articles += 1
                staged.events.append(_event(row, row["status"], row.get("reason"), now))
                continue
            problem = validate_article(row, line)
            if problem:
                report.rejected.append(problem)
                continue
            text = row["text"]
            raw = row.get("raw_html_z")
            published_at, published_date = dates.split(dates.from_json(row.get("published")))
            staged.articles.append(
                {
                    "article_id": row["article_id"],
                    "source_id": row["source_id"],
                    "url": row["url"],
                    "canonical_url": row.get("canonical_url"),
                    "title": row.get("title"),
                    "text": text,
                    "lang_declared": row.get("lang"),
                    "published_at": published_at,
                    "published_date": published_date,
                    "fetched_at": _ts(row.get("fetched_at")) or now,
                    "content_sha256": content_hash(text),
                    "extractor": row.get("extractor") or "unknown",
                    "via": row.get("via"),
                    "word_count": len(text.split()),
                    "raw_html": base64.b64decode(raw) if raw else None,
                }
            )
        elif kind in ("failure", "event"):
            if kind == "failure":
                reason = row.get("error") or "fetch failed"
                staged.failed.update(dict.fromkeys(urls, reason))
            else:
                staged.settled |= urls
            report.failed += kind == "failure"
            reason = row.get("error") or row.get("reason")
            staged.events.append(_event(row, row.get("status", "failure"), reason, now))
        elif kind == "torn":
            report.rejected.append(f"line {line}: torn JSON line (interrupted write)")
    return report, staged


def resolve(
    articles: list[dict[str, Any]],
    stored_ids: set[str],
    stored_urls: set[str],
    originals: dict[str, tuple[datetime, str, str]],
    story_index: Callable[[], StoryIndex],
) -> list[dict[str, Any]]:
    """The staged articles to insert, in batch order, with story_id, duplicate_of, signature.

    An article whose id or URL is stored, or came earlier in the batch, is skipped.
    ``originals`` maps a content hash to (fetched_at, article_id, story_id) of its first stored
    copy; an article with the same text becomes a duplicate of the first copy (by fetched_at,
    then id) and joins its story. Other articles are clustered into stories by ``story_index``
    (called once, when the first article needs it: reading the candidates costs a query).
    """
    seen_ids, seen_urls = set(stored_ids), set(stored_urls)
    first = dict(originals)
    index: StoryIndex | None = None
    new = []
    for a in articles:
        if a["article_id"] in seen_ids or a["url"] in seen_urls:
            continue
        seen_ids.add(a["article_id"])
        seen_urls.add(a["url"])
        values = signature(f"{a['title'] or ''} {a['text']}")
        if index is None:
            index = story_index()
        original = first.get(a["content_sha256"])
        if original:
            duplicate_of, story = original[1], original[2]
            index.add(a["article_id"], story, values)
        else:
            duplicate_of, story = None, index.assign(a["article_id"], values)
        if original is None or (a["fetched_at"], a["article_id"]) < original[:2]:
            first[a["content_sha256"]] = (a["fetched_at"], a["article_id"], story)
        new.append(dict(a, story_id=story, duplicate_of=duplicate_of, signature=values))
    return new


def _insert_articles(
    con: duckdb.DuckDBPyConnection, articles: list[dict[str, Any]], run_id: str
) -> int:
    """Insert the staged articles that are new; the number inserted."""
    if not articles:
        return 0
    stored = con.execute(
        sql("stored_articles"),
        {"ids": [a["article_id"] for a in articles], "urls": [a["url"] for a in articles]},
    ).fetchall()
    originals = {
        digest: (fetched_at, article_id, story_id)
        for digest, fetched_at, article_id, story_id in con.execute(
            sql("content_originals"), {"digests": [a["content_sha256"] for a in articles]}
        ).fetchall()
    }
    new = resolve(
        articles,
        {r[0] for r in stored},
        {r[1] for r in stored},
        originals,
        lambda: _story_index(con, datetime.now(UTC) - STORY_LOOKBACK),
    )
    if new:
        with registered(con, new_articles=frame(new, ARTICLE_FRAME)):
            run_script(con, "insert_articles", {"run_id": run_id})
    return len(new)


def read_batch(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(dict(json.loads(line), _line=number))
            except json.JSONDecodeError:
                # a crash while writing leaves a torn last line; everything before it is good
                rows.append({"kind": "torn", "_line": number})
    return rows


def load_batch(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict[str, Any]],
    run_id: str,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> LoadReport:
    """Load one source's batch in one transaction. Returns what was added and rejected."""
    report, staged = stage(rows, datetime.now(UTC))
    with transaction(con):
        apply_batch(con, staged, report, run_id, max_attempts=max_attempts)
    return report


def apply_batch(
    con: duckdb.DuckDBPyConnection,
    staged: StagedBatch,
    report: LoadReport,
    run_id: str,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """Write a staged batch inside the caller's transaction, filling in ``report``."""
    report.complete = staged.complete
    if staged.complete:  # a cut-short batch's feed states would hide what it never fetched
        for feed in staged.feeds:  # a handful per batch, and a later poll overrides an earlier
            _upsert_feed(con, feed)
    if staged.feed_items:
        with registered(con, new_feed_items=frame(staged.feed_items, FEED_ITEM_FRAME)):
            con.execute(sql("insert_feed_items"))
    if staged.events:
        with registered(con, new_events=frame(staged.events, EVENT_FRAME)):
            con.execute(sql("insert_events"), {"run_id": run_id})
    report.added = _insert_articles(con, staged.articles, run_id)
    report.duplicates = len(staged.articles) - report.added
    report.gave_up = _update_pending(con, staged, max_attempts)


def _update_pending(
    con: duckdb.DuckDBPyConnection, staged: StagedBatch, max_attempts: int
) -> list[str]:
    """Remember the batch's unsettled article URLs, settle the rest; the URLs given up now."""
    now = datetime.now(UTC)
    if staged.discovered:
        with registered(con, new_pending=frame(staged.discovered, PENDING_FRAME)):
            con.execute(sql("pending_insert"))
    named = {d["url"] for d in staged.discovered} | set(staged.requested)
    if staged.settled or named:
        con.execute(
            sql("pending_settle"),
            {"settled": sorted(staged.settled), "named": sorted(named)},
        )
    attempts = dict(staged.failed)
    if staged.end is not None:  # collection ended (well or not): a URL with no outcome failed
        silent = set(staged.requested) - staged.settled - set(attempts)
        reason = staged.end.get("error") or NO_OUTCOME
        attempts.update(dict.fromkeys(silent, reason))
    if not attempts:
        return []
    rows = [{"url": url, "error": error[:500]} for url, error in sorted(attempts.items())]
    with registered(con, failed_fetches=frame(rows, ATTEMPT_FRAME)):
        gave_up = con.execute(
            sql("pending_attempt"), {"max_attempts": max_attempts, "now": now}
        ).fetchall()
    return sorted(url for url, status in gave_up if status == "failed")


def record_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Write (or complete) a crawl_runs row; keyed by run and source so reruns update it."""
    params = {name: row.get(name) for name in RUN_COLUMNS}
    params["started_at"] = _ts(params["started_at"]) or datetime.now(UTC)
    params["finished_at"] = _ts(params["finished_at"])
    con.execute(sql("record_run"), params)
