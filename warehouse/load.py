"""Idempotent loads: each batch in one transaction; loading it twice changes nothing.

A batch is the JSON-lines file that one source's collection wrote (see crawlers/collect.py).
Bad rows are rejected with a message naming the row; the rest of the batch still loads.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from warehouse.db import sql, transaction
from warehouse.stories import StoryIndex, content_hash, signature

STORY_LOOKBACK = timedelta(days=30)
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


@dataclass
class LoadReport:
    added: int = 0
    duplicates: int = 0
    non_articles: int = 0
    failed: int = 0
    rejected: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def _ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    for key in ("published", "fetched_at"):
        try:
            _ts(row.get(key))
        except (TypeError, ValueError):
            return f"{where}: invalid date in {key}: {row.get(key)!r}"
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


def upsert_sources(con: duckdb.DuckDBPyConnection, sources: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    for s in sources:
        con.execute(
            sql("upsert_source"),
            [s["id"], s["name"], s["country"], s["languages"], s["affiliation"], s["domains"], now],
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


def _insert_article(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], index: StoryIndex, run_id: str
) -> bool:
    """Insert one article; False when its URL is already stored."""
    exists = con.execute(
        "select 1 from articles where article_id = ?", [row["article_id"]]
    ).fetchone()
    if exists:
        return False
    text = row["text"]
    digest = content_hash(text)
    twin = con.execute(sql("content_twin"), {"digest": digest}).fetchone()
    values = signature(f"{row.get('title') or ''} {text}")
    if twin:
        duplicate_of, story = twin[0], twin[1]
        index.add(row["article_id"], story, values)
    else:
        duplicate_of, story = None, index.assign(row["article_id"], values)
    con.execute(
        sql("insert_article"),
        [
            row["article_id"],
            row["source_id"],
            row["url"],
            row.get("canonical_url"),
            row.get("title"),
            text,
            row.get("lang"),
            _ts(row.get("published")),
            _ts(row.get("fetched_at")) or datetime.now(UTC),
            digest,
            story,
            duplicate_of,
            row.get("extractor") or "unknown",
            row.get("via"),
            len(text.split()),
            run_id,
        ],
    )
    con.execute("insert into article_minhash values (?, ?)", [row["article_id"], values.tolist()])
    if row.get("raw_html_z"):
        con.execute(
            "insert into raw_pages values (?, ?, ?) on conflict do nothing",
            [
                row["article_id"],
                base64.b64decode(row["raw_html_z"]),
                _ts(row.get("fetched_at")) or datetime.now(UTC),
            ],
        )
    return True


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
    con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], run_id: str
) -> LoadReport:
    """Load one source's batch in one transaction. Returns what was added and rejected."""
    report = LoadReport()
    with transaction(con):
        index = _story_index(con, datetime.now(UTC) - STORY_LOOKBACK)
        for row in rows:
            kind, line = row.get("kind"), row.get("_line", 0)
            report.counts[kind] += 1
            if kind == "feed":
                _upsert_feed(con, row)
            elif kind == "feed_item":
                con.execute(
                    "insert into feed_items values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
                    [
                        row["feed_url"],
                        row["guid"],
                        row["url"],
                        row.get("title"),
                        _ts(row.get("published")),
                        row["offsite"],
                        _ts(row["seen_at"]),
                    ],
                )
            elif kind == "article":
                if row.get("status", "ok") != "ok":
                    report.non_articles += 1
                    con.execute(
                        "insert into crawl_events values (?, ?, ?, ?, ?, ?, ?)",
                        [
                            run_id,
                            row["source_id"],
                            row.get("url"),
                            row["status"],
                            row.get("http_status"),
                            row.get("reason"),
                            _ts(row.get("fetched_at")) or datetime.now(UTC),
                        ],
                    )
                    continue
                problem = validate_article(row, line)
                if problem:
                    report.rejected.append(problem)
                    continue
                if _insert_article(con, row, index, run_id):
                    report.added += 1
                else:
                    report.duplicates += 1
            elif kind in ("failure", "event"):
                report.failed += kind == "failure"
                con.execute(
                    "insert into crawl_events values (?, ?, ?, ?, ?, ?, ?)",
                    [
                        run_id,
                        row["source_id"],
                        row.get("url"),
                        row.get("status", "failure"),
                        row.get("http_status"),
                        row.get("error") or row.get("reason"),
                        _ts(row.get("fetched_at")) or datetime.now(UTC),
                    ],
                )
            elif kind == "torn":
                report.rejected.append(f"line {line}: torn JSON line (interrupted write)")
    return report


def record_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Write (or complete) a crawl_runs row; keyed by run and source so reruns update it."""
    params = {name: row.get(name) for name in RUN_COLUMNS}
    params["started_at"] = _ts(params["started_at"]) or datetime.now(UTC)
    params["finished_at"] = _ts(params["finished_at"])
    con.execute(sql("record_run"), params)
