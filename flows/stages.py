"""The pipeline's stages as plain functions over a database path. Flows wrap them in tasks.

Each stage opens the warehouse for as short a time as it can, so an analyst's session can get in
between stages, and each commits its work in transactions that a rerun can repeat safely.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from crawlers.collect import SourceTimedOut, collect_source
from crawlers.sources import Source
from flows.alerting import DeliveryReport, deliver_pending, detect_and_store
from flows.settings import Settings
from flows.shifts import GroupTest, ShiftConfig
from warehouse import runs
from warehouse.db import connect, sql, transaction
from warehouse.load import (
    LoadReport,
    apply_batch,
    read_batch,
    record_run,
    stage,
    upsert_sources,
)
from warehouse.predictions import refresh_daily, register_model, store_scores, unclassified

log = logging.getLogger("cstowatch")
CLASSIFY_CHUNK = 32
# A consent wall or paywall may lift and a soft 404 may come back: look again after a week.
NON_ARTICLE_RECHECK = timedelta(days=7)


def open_db(db: Path, settings: Settings):  # type: ignore[no-untyped-def]
    def waiting(message: str, remaining: float) -> None:
        log.warning("database %s is locked, retrying for %.0f s more: %s", db, remaining, message)

    return connect(db, lock_timeout=settings.lock_timeout, on_wait=waiting)


def prepare_run(db: Path, sources: list[Source], settings: Settings) -> dict[str, Any]:
    """Register the sources; read what collection needs (known URLs, feed state)."""
    with open_db(db, settings) as con:
        upsert_sources(con, [s.model_dump() for s in sources])
        refresh_daily(con)  # outlet names, countries or affiliations may have changed
        recheck_after = datetime.now(UTC) - NON_ARTICLE_RECHECK
        known = {
            row[0]
            for row in con.execute(sql("known_urls"), {"recheck_after": recheck_after}).fetchall()
        }
        cursor = con.execute("select * from feeds")
        columns = [d[0] for d in cursor.description]
        feeds = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
        con.execute(sql("pending_prune"))
        pending: dict[str, list[dict[str, Any]]] = {}
        for url, source_id, title, published in con.execute(sql("pending_due")).fetchall():
            pending.setdefault(source_id, []).append(
                {
                    "url": url,
                    "title": title,
                    "published": published.isoformat() if published else None,
                }
            )
    return {"known": known, "feeds": feeds, "pending": pending}


def collect_one(
    source: Source,
    batch_dir: Path,
    state: dict[str, Any],
    settings: Settings,
    force_feeds: bool = False,
    since: str | None = None,
    until: str | None = None,
    start_delay: float = 0.5,
) -> dict[str, Any]:
    """Collect one source into ``batch_dir/<source>.jsonl``; never raises for a bad source."""
    out = batch_dir / f"{source.id}.jsonl"
    started = datetime.now(UTC)
    feed_states = {url: state["feeds"][url] for url in source.feeds if url in state["feeds"]}
    try:
        counts = collect_source(
            source,
            out,
            feed_states=feed_states,
            known=state["known"],
            user_agent=settings.user_agent,
            force_feeds=force_feeds,
            since=since,
            until=until,
            start_delay=start_delay,
            pending=state.get("pending", {}).get(source.id),
            timeout=settings.fetch_timeout,
            time_limit=settings.source_timeout,
        )
        status = "partial" if counts["errors"] else "ok"
    except SourceTimedOut as exc:  # a stuck source stops; the run goes on with the rest
        log.error("source %s: %s", source.id, exc)
        counts = {"errors": [str(exc)]}
        status = "timed_out"
    except Exception as exc:  # one source failing never fails the run
        log.error("source %s failed: %s", source.id, exc)
        counts = {"errors": [f"{exc.__class__.__name__}: {exc}"]}
        status = "failed"
    return {
        "source_id": source.id,
        "batch": str(out),
        "started_at": started.isoformat(),
        "status": status,
        **counts,
    }


def load_one(
    db: Path, run_id: str, flow_run_id: str | None, result: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """Load one source's batch and write its crawl_runs row, in one transaction.

    The transaction also records the batch in ``loaded_batches``: a batch loads exactly once,
    however often a run dies around it. A batch left by a dead run (``result["leftover"]``)
    takes its counts from its own ``batch_end`` record; one without that record was cut short,
    and its crawl_runs row says ``crashed``.
    """
    path = Path(result["batch"])
    rows = read_batch(path) if path.exists() else []
    report, staged = stage(rows, datetime.now(UTC))
    end = staged.end or {}
    counts = dict(end.get("counts") or {}) | {k: v for k, v in result.items() if k != "errors"}
    stats: dict[str, Any] = next((r["stats"] for r in rows if r.get("kind") == "stats"), {})
    with open_db(db, settings) as con:
        with transaction(con):
            if con.execute(sql("batch_loaded"), [run_id, result["source_id"]]).fetchone():
                log.info("batch %s/%s was loaded already", run_id, result["source_id"])
                cursor = con.execute(
                    "select * from crawl_runs where run_id = ? and source_id = ?",
                    [run_id, result["source_id"]],
                )
                names = [d[0] for d in cursor.description]
                row = dict(zip(names, cursor.fetchone() or [None] * len(names), strict=True))
            else:
                apply_batch(con, staged, report, run_id, max_attempts=settings.max_fetch_attempts)
                row = _crawl_run_row(run_id, flow_run_id, result, counts, rows, stats, report)
                record_run(con, row)
                con.execute(
                    sql("batch_mark_loaded"),
                    [run_id, result["source_id"], report.complete, datetime.now(UTC)],
                )
    path.with_suffix(".loaded").write_text(datetime.now(UTC).isoformat())
    return row


def _crawl_run_row(
    run_id: str,
    flow_run_id: str | None,
    result: dict[str, Any],
    counts: dict[str, Any],
    rows: list[dict[str, Any]],
    stats: dict[str, Any],
    report: LoadReport,
) -> dict[str, Any]:
    errors = list(result.get("errors") or counts.get("errors") or []) + report.rejected[:20]
    failures = [r for r in rows if r.get("kind") == "failure"]
    errors += [
        f"{r['url']}: "
        + (f"HTTP {r['http_status']}: " if r.get("http_status") else "")
        + r["error"]
        for r in failures[:20]
    ]
    errors += [f"gave up after repeated failures: {url}" for url in report.gave_up[:20]]
    status = result["status"]
    if result.get("leftover") and not report.complete:
        status = "crashed"
        errors.insert(0, "the run died while collecting this source; its articles were kept")
    elif status == "ok" and (report.rejected or failures or report.gave_up):
        status = "partial"
    return {
        "run_id": run_id,
        "source_id": result["source_id"],
        "flow_run_id": flow_run_id,
        "started_at": result["started_at"],
        "finished_at": datetime.now(UTC).isoformat(),
        "status": status,
        **{
            k: counts.get(k, 0)
            for k in (
                "feeds_polled",
                "feeds_not_modified",
                "feeds_unchanged",
                "feeds_failed",
                "feeds_not_due",
            )
        },
        # article pages only: robots.txt, sitemaps and listings are not counted
        "pages_fetched": sum(1 for r in rows if r.get("kind") == "article"),
        "articles_added": report.added,
        "duplicates": report.duplicates,
        "known_skipped": int(stats.get("cstowatch/known_skipped", 0))
        + int(counts.get("known_skipped", 0)),
        "non_articles": report.non_articles,
        "rejected": len(report.rejected),
        "failed": report.failed + counts.get("feeds_failed", 0),
        "offsite_skipped": int(stats.get("cstowatch/offsite_skipped", 0))
        + sum(1 for r in rows if r.get("kind") == "feed_item" and r.get("offsite")),
        "duration_s": counts.get("duration_s"),
        "errors": "\n".join(errors)[:4000] or None,
    }


def unloaded_batches(batch_root: Path, live: set[str] | frozenset[str] = frozenset()) -> list[Path]:
    """Batches an earlier, interrupted run wrote but never loaded (not those of ``live`` runs,
    which may still be writing them)."""
    if not batch_root.exists():
        return []
    return sorted(
        p
        for p in batch_root.glob("*/*.jsonl")
        if not p.with_suffix(".loaded").exists() and p.parent.name not in live
    )


def begin_run(
    db: Path,
    settings: Settings,
    run_id: str,
    flow: str,
    flow_run_id: str | None,
    stage_name: str | None = "collect",
) -> dict[str, Any]:
    """Record this run as running; mark dead runs crashed. Returns the crashed runs and the
    runs still alive (whose batches must not be touched)."""
    with open_db(db, settings) as con:
        with transaction(con):
            crashed = runs.begin(con, run_id, flow, flow_run_id, stage_name)
        live = runs.live_runs(con) - {run_id}
    for c in crashed:
        log.warning(
            "run %s died without finishing%s; this run picks up what it left",
            c["run_id"],
            f" (during {c['stage']})" if c["stage"] else "",
        )
    return {"crashed": crashed, "live": live}


def run_stage(db: Path, settings: Settings, run_id: str, stage_name: str) -> None:
    with open_db(db, settings) as con:
        runs.set_stage(con, run_id, stage_name)


def end_run(
    db: Path, settings: Settings, run_id: str, status: str, error: str | None = None
) -> None:
    with open_db(db, settings) as con:
        runs.finish(con, run_id, status, error)


def _score_rows(scores: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for s in scores:
        passages = []
        if s.relevant:
            passages = [dict(p.to_json(), weight=p.passage.weight) for p in s.passages]
        rows.append(
            {
                "article_id": s.article_id,
                "lang": s.lang,
                "label": s.label,
                "probs": s.probs,
                "relevance": s.relevance,
                "relevant": s.relevant,
                "evidence": s.evidence,
                "quotes_other_side": s.quotes_other_side,
                "passages": passages,
            }
        )
    return rows


def stance_model(settings: Settings, model_dir: str | None = None):  # type: ignore[no-untyped-def]
    """``model_dir``, else ``CSTOWATCH_STANCE_MODEL_DIR``, else the bundled stance model."""
    from nlp.stance import load_model  # heavy import: only the classify stage needs torch

    chosen = model_dir or (str(settings.stance_model_dir) if settings.stance_model_dir else None)
    return load_model(chosen, str(settings.encoder_dir) if settings.encoder_dir else None)


def classification_plan(
    db: Path, settings: Settings, model_dir: str | None = None
) -> tuple[str, list[list[dict[str, Any]]]]:
    """Register the model and list what it has not scored yet, in chunks."""
    model = stance_model(settings, model_dir)
    head = model.dir / "head.npz"
    head_sha = (
        getattr(model, "weights_sha256", None) or hashlib.sha256(head.read_bytes()).hexdigest()
    )
    with open_db(db, settings) as con:
        register_model(con, model.info(), head_sha)
        todo = unclassified(con, model.model_id)
    return model.model_id, [
        todo[i : i + CLASSIFY_CHUNK] for i in range(0, len(todo), CLASSIFY_CHUNK)
    ]


def score_chunk(
    articles: list[dict[str, Any]], settings: Settings, model_dir: str | None = None
) -> list[dict[str, Any]]:
    """Pure scoring, no database: safe to run on any worker (the model loads once per process)."""
    from nlp.articles import score_articles

    return _score_rows(score_articles(stance_model(settings, model_dir), articles))


def store_chunk(
    db: Path, settings: Settings, model_id: str, rows: list[dict[str, Any]]
) -> list[str]:
    with open_db(db, settings) as con:
        return store_scores(con, model_id, rows)


def classify_pending(
    db: Path,
    settings: Settings,
    model_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every stored article the current model has not scored yet (in this process)."""
    model_id, chunks = classification_plan(db, settings, model_dir)
    total = sum(len(c) for c in chunks)
    done, rejected, relevant = 0, [], 0
    for chunk in chunks:
        rows = score_chunk(chunk, settings, model_dir)
        relevant += sum(1 for r in rows if r["relevant"])
        rejected += store_chunk(db, settings, model_id, rows)
        done += len(chunk)
        if progress:
            progress(done, total)
    return {"model_id": model_id, "classified": done, "relevant": relevant, "rejected": rejected}


def index_search(db: Path, settings: Settings) -> dict[str, int]:
    """Rebuild the full-text indexes (after classification, which sets articles.lang)."""
    from warehouse.search import rebuild_search_index

    with open_db(db, settings) as con:
        return rebuild_search_index(con)


def shift_config(
    settings: Settings,
    confusion: list[list[float]] | None = None,
    confusion_source: str | None = None,
) -> ShiftConfig:
    return ShiftConfig(
        window_days=settings.window_days,
        baseline_days=settings.baseline_days,
        min_articles=settings.min_articles,
        min_effect=settings.min_effect_pp / 100.0,
        fdr=settings.fdr,
        confusion=tuple(tuple(r) for r in confusion)
        if confusion and settings.correct_confusion
        else None,
        confusion_source=confusion_source,
    )


def confusion_source(card: dict[str, Any]) -> str:
    """Where a model card's dev confusion matrix was measured: ``real`` news or ``written``
    passages (models trained before the real-news set have no ``dev_data`` naming it)."""
    return "real" if "realnews" in str(card.get("dev_data") or "") else "written"


def model_confusion(
    db: Path, settings: Settings, model_id: str | None
) -> tuple[list[list[float]] | None, str | None]:
    """The dev-set soft confusion matrix saved with the model card, if any, and its source."""
    if not model_id:
        return None, None
    with open_db(db, settings) as con:
        row = con.execute("select metrics from models where model_id = ?", [model_id]).fetchone()
    if not row or not row[0]:
        return None, None
    card = json.loads(row[0])
    return card.get("dev", {}).get("soft_confusion"), confusion_source(card)


def detect_alerts(
    db: Path, as_of: date, settings: Settings, model_id: str | None
) -> tuple[list[GroupTest], list[str]]:
    cfg = shift_config(settings, *model_confusion(db, settings, model_id))
    with open_db(db, settings) as con:
        return detect_and_store(con, as_of, cfg, settings, model_id)


def deliver(db: Path, settings: Settings, model_id: str | None = None) -> DeliveryReport:
    cfg = shift_config(settings, *model_confusion(db, settings, model_id))
    with open_db(db, settings) as con:
        return deliver_pending(con, settings, cfg)


# a digest claimed longer ago than this, with no outcome recorded, was lost by a crashed run
DIGEST_STALE = timedelta(minutes=30)


def digest(db: Path, as_of: date, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Compose and send the daily digest of every group's stance mix, at most once per day.

    The ``digests`` table records each day's digest: claimed before sending, marked sent or
    failed after. A day already sent, being sent, or whose sender crashed mid-send (status
    unknown) is skipped with a reason; ``force`` sends it again."""
    from flows import notify
    from flows.alerting import group_label, load_rows
    from flows.shifts import Windows, digest_rows

    cfg = shift_config(settings)
    windows = Windows.ending(as_of, cfg)
    now = datetime.now(UTC)
    with open_db(db, settings) as con:  # not held while talking to the SMTP server
        state = con.execute(sql("digest_state"), {"as_of": as_of}).fetchone()
        skipped = None
        if not force and state is not None:
            abandoned = runs.claim_abandoned(state[2], state[1], now, DIGEST_STALE)
            skipped = _digest_skip(as_of, state[0], abandoned)
        if skipped:
            log.info(skipped)
            return {"groups": 0, "message_id": None, "path": None, "skipped": skipped}
        groups = digest_rows(load_rows(con, windows.baseline_start, as_of), as_of, cfg)
        for g in groups:
            g["label"] = group_label(con, g["group_type"], g["group_value"])
        con.execute(
            sql("digest_claim"), {"as_of": as_of, "now": now, "owner": runs.process_token()}
        )
    order = {"all": 0, "country": 1, "language": 2, "affiliation": 3, "outlet": 4}
    groups.sort(key=lambda g: (order[g["group_type"]], g["label"]))
    msg = notify.compose_digest(
        groups, as_of, cfg.window_days, cfg.baseline_days, settings.alert_from, settings.alert_to
    )
    outcome: dict[str, Any] = {"as_of": as_of, "message_id": msg["Message-ID"], "path": None}
    try:
        path = notify.deliver(msg, settings)
    except notify.DeliveryError as exc:
        _record_digest(db, settings, outcome | {"status": "failed", "error": str(exc)})
        raise
    _record_digest(db, settings, outcome | {"status": "sent", "path": path, "error": None})
    return {"groups": len(groups), "message_id": msg["Message-ID"], "path": path, "skipped": None}


def _digest_skip(as_of: date, status: str, abandoned: bool) -> str | None:
    """Why not to send the digest of ``as_of`` now, or None. ``abandoned``: a ``sending`` claim
    was left by a process that died (``warehouse.runs.claim_abandoned``)."""
    if status == "sent":
        return f"the digest of {as_of} was already sent (--force sends it again)"
    if status == "sending" and not abandoned:
        return f"another run is sending the digest of {as_of}"
    if status == "sending":
        return (
            f"a run that was sending the digest of {as_of} stopped before recording whether "
            "it went out; check the mailbox (--force sends it again)"
        )
    return None  # failed: try again


def _record_digest(db: Path, settings: Settings, outcome: dict[str, Any]) -> None:
    with open_db(db, settings) as con:
        con.execute(sql("digest_done"), outcome | {"now": datetime.now(UTC)})
