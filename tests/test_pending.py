"""What a dead run leaves, settled by the next one (issue 13), on real DuckDB files: a batch cut
short loads its articles but not its feed states, discovered but unfetched URLs stay pending
until settled or given up, a batch loads once, dead runs and dead senders are told from live
ones. The fault-injection proof of the whole is tests/test_crash_safety.py."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.alerting import deliver_pending
from flows.settings import Settings
from flows.shifts import ShiftConfig
from warehouse import runs
from warehouse.db import connect
from warehouse.load import MAX_ATTEMPTS, NO_OUTCOME, load_batch, upsert_sources

SOURCE = {"id": "src", "name": "Steppe Wire", "country": "KZ", "languages": ["ru"],
          "affiliation": "independent", "domains": ["wire.example"]}
FEED = "https://wire.example/rss.xml"
NOW = "2026-11-28T10:00:00+00:00"


def url(n: int) -> str:
    return f"https://wire.example/news/{n}"


def feed_rows(items: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{
        "kind": "feed", "feed_url": FEED, "source_id": "src", "last_attempt_at": NOW,
        "last_success_at": NOW, "http_status": 200, "body_sha256": "abc", "new_items": len(items),
        "total_items": len(items), "failures": 0.0, "interval_seconds": 3600.0,
        "next_due_at": "2026-11-28T11:00:00+00:00",
    }]
    rows += [{"kind": "feed_item", "source_id": "src", "feed_url": FEED, "guid": url(n),
              "url": url(n), "title": f"Item {n}", "published": NOW, "offsite": False,
              "seen_at": NOW} for n in items]
    rows.append({"kind": "job", "source_id": "src", "urls": [url(n) for n in items]})
    return rows


def page(n: int) -> dict[str, Any]:
    return {"kind": "article", "status": "ok", "article_id": f"{n:032x}", "source_id": "src",
            "url": url(n), "requested_url": url(n), "canonical_url": url(n),
            "title": f"Item {n}", "text": f"Story {n} about the treaty, told in full.",
            "lang": "ru", "published": NOW, "fetched_at": NOW}


def failure(n: int, error: str = "HTTP 503") -> dict[str, Any]:
    return {"kind": "failure", "source_id": "src", "url": url(n), "requested_url": url(n),
            "http_status": 503, "error": error, "fetched_at": NOW}


END = {"kind": "batch_end", "source_id": "src", "complete": True, "counts": {}}


@pytest.fixture()
def con(tmp_path: Path):  # type: ignore[no-untyped-def]
    con = connect(tmp_path / "w.duckdb")
    upsert_sources(con, [SOURCE])
    yield con
    con.close()


def pending(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int, str | None]]:
    rows = con.execute("select url, status, attempts, last_error from pending_items").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def feed_state(con: duckdb.DuckDBPyConnection) -> tuple | None:
    return con.execute("select body_sha256, next_due_at from feeds").fetchone()


def test_a_batch_cut_short_keeps_its_articles_but_not_its_feed_state(con) -> None:  # type: ignore[no-untyped-def]
    report = load_batch(con, feed_rows([1, 2, 3]) + [page(1)], "dead-run")
    assert not report.complete and report.added == 1
    assert feed_state(con) is None  # the feed is polled again: its items are not "same"
    assert pending(con) == {url(2): ("pending", 0, None), url(3): ("pending", 0, None)}

    # the next run fetches what was pending; its batch completes and applies the feed state
    report = load_batch(con, feed_rows([1, 2, 3]) + [page(2), page(3), END], "next-run")
    assert report.complete and report.added == 2
    assert feed_state(con) is not None
    assert pending(con) == {}


def test_failed_fetches_are_retried_then_given_up_with_the_reason(con) -> None:  # type: ignore[no-untyped-def]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = load_batch(con, feed_rows([7]) + [failure(7, f"HTTP 503 (try {attempt})"), END],
                            f"run-{attempt}")
        state = pending(con)[url(7)]
        assert state[1] == attempt
        if attempt < MAX_ATTEMPTS:
            assert state[0] == "pending" and report.gave_up == []
    assert pending(con)[url(7)] == ("failed", MAX_ATTEMPTS, f"HTTP 503 (try {MAX_ATTEMPTS})")
    assert report.gave_up == [url(7)]
    health = con.execute(
        "select pending_items, failed_items, failed_item_errors from source_health"
    ).fetchone()
    assert health is not None and health[:2] == (0, 1) and url(7) in health[2]


def test_a_url_handed_to_the_spiders_without_an_outcome_counts_as_a_failure(con) -> None:  # type: ignore[no-untyped-def]
    load_batch(con, feed_rows([4]), "dead-run")  # no batch_end: the run died, not the URL
    assert pending(con)[url(4)] == ("pending", 0, None)
    load_batch(con, feed_rows([4]) + [END], "run-2")  # it ended, and said nothing of the URL
    assert pending(con)[url(4)] == ("pending", 1, NO_OUTCOME)


def test_a_redirected_article_settles_the_url_the_feed_named(con) -> None:  # type: ignore[no-untyped-def]
    moved = dict(page(5), url="https://wire.example/2026/moved-5", requested_url=url(5))
    load_batch(con, feed_rows([5]) + [moved, END], "run")
    assert pending(con) == {}


def test_a_non_article_is_a_final_state(con) -> None:  # type: ignore[no-untyped-def]
    consent = {"kind": "article", "status": "consent", "source_id": "src", "url": url(6),
               "requested_url": url(6), "reason": "consent wall", "fetched_at": NOW}
    load_batch(con, feed_rows([6]) + [consent, END], "run")
    load_batch(con, feed_rows([6]), "later")  # listed again: not pending, it was recognised
    assert pending(con) == {}


def test_a_batch_loads_once_however_often_its_marker_is_lost(tmp_path: Path) -> None:
    from flows import stages

    db = tmp_path / "w.duckdb"
    batch = tmp_path / "batches" / "dead-run" / "src.jsonl"
    batch.parent.mkdir(parents=True)
    import json

    batch.write_text("".join(json.dumps(r) + "\n" for r in feed_rows([1, 2]) + [page(1)]))
    settings = Settings(lock_timeout=5)
    result = {"source_id": "src", "batch": str(batch), "started_at": NOW, "status": "ok",
              "leftover": True}
    con = connect(db)
    upsert_sources(con, [SOURCE])
    con.close()
    first = stages.load_one(db, "dead-run", None, result, settings)
    assert first["status"] == "crashed" and first["articles_added"] == 1
    batch.with_suffix(".loaded").unlink()  # a kill between the commit and the marker
    assert stages.unloaded_batches(batch.parent.parent) == [batch]
    assert stages.unloaded_batches(batch.parent.parent, {"dead-run"}) == []  # a live run's
    again = stages.load_one(db, "dead-run", None, result, settings)
    assert again["articles_added"] == 1 and again["status"] == "crashed"
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from crawl_events").fetchone() == (0,)
        assert con.execute("select count(*) from loaded_batches").fetchone() == (1,)
        assert con.execute("select count(*) from articles").fetchone() == (1,)
    finally:
        con.close()


def test_a_pending_url_stored_another_way_is_settled_before_collection(tmp_path: Path) -> None:
    """Collection skips known URLs, so a pending URL stored meanwhile under its canonical URL
    (or by a sitemap) would never be settled by a fetch: the run's preparation settles it."""
    from crawlers.sources import parse_sources
    from flows import stages

    db = tmp_path / "w.duckdb"
    con = connect(db)
    upsert_sources(con, [SOURCE])
    load_batch(con, feed_rows([8, 9]), "dead-run")
    stored = dict(page(10), canonical_url=url(8))  # another URL whose canonical is item 8
    load_batch(con, [stored, END], "sitemap-run")
    con.close()
    sources = parse_sources(
        "sources:\n  - {id: src, name: Steppe Wire, country: KZ, languages: [ru], "
        "affiliation: independent, domains: [wire.example], feeds: ['" + FEED + "']}\n"
    )
    state = stages.prepare_run(db, sources, Settings(lock_timeout=5))
    assert [p["url"] for p in state["pending"]["src"]] == [url(9)]


def dead_token() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    token = runs.process_token(proc.pid)
    proc.wait()
    return token


def test_process_tokens_tell_dead_from_alive() -> None:
    assert runs.token_alive(runs.process_token()) is True
    assert runs.token_alive(dead_token()) is False
    assert runs.token_alive("elsewhere.example:1:1") is None  # another host: cannot be told
    assert runs.token_alive(None) is None
    host, pid, _start = runs.process_token().split(":")
    assert runs.token_alive(f"{host}:{pid}:1") is False  # the pid, reused by another process


def test_a_dead_run_is_found_crashed_by_the_next(con) -> None:  # type: ignore[no-untyped-def]
    host, pid, start = dead_token().split(":")
    con.execute(
        "insert into pipeline_runs (run_id, flow, host, pid, proc_start, started_at, status, "
        "stage) values ('dead', 'monitor', ?, ?, ?, ?, 'running', 'classify')",
        [host, int(pid), start, datetime.now(UTC)],
    )
    assert runs.live_runs(con) == set()
    crashed = runs.begin(con, "next", "monitor", None, "collect")
    assert crashed == [{"run_id": "dead", "flow_run_id": None, "stage": "classify"}]
    rows = dict(con.execute("select run_id, status from pipeline_runs").fetchall())
    assert rows == {"dead": "crashed", "next": "running"}
    assert runs.live_runs(con) == {"next"}
    error = con.execute("select error from pipeline_runs where run_id = 'dead'").fetchone()
    assert error is not None and "during classify" in error[0]


def test_a_delivery_claimed_by_a_dead_process_is_uncertain_at_once(con) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    con.execute(
        "insert into alert_deliveries (alert_id, channel, status, attempts, updated_at, "
        "claimed_by, message_id) values ('a1', 'smtp', 'sending', 1, ?, ?, '<m1@x>'), "
        "('a2', 'smtp', 'sending', 1, ?, ?, '<m2@x>'), "
        "('a3', 'smtp', 'sending', 1, ?, 'elsewhere.example:1:1', '<m3@x>')",
        [now, dead_token(), now, runs.process_token(), now - timedelta(hours=1)],
    )
    report = deliver_pending(con, Settings(), ShiftConfig())
    # a1: its sender died a moment ago; a2: its sender is alive (this process); a3: another
    # host's claim, told by its age
    assert sorted(report.uncertain) == ["a1", "a3"]
    status = dict(con.execute("select alert_id, status from alert_deliveries").fetchall())
    assert status == {"a1": "uncertain", "a2": "sending", "a3": "uncertain"}
