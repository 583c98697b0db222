"""Prefect flows: thin lists of task calls over the plain stages in ``flows.stages``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run as prefect_flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from crawlers.sources import Source, load_sources
from flows import stages
from flows.settings import Settings, get_settings
from warehouse.db import DatabaseLocked


def task_runner() -> TaskRunner[Any]:
    """Threads by default; ``CSTOWATCH_TASK_RUNNER=dask`` runs per-source collection and stance
    scoring on a Dask cluster (a LocalCluster, or ``CSTOWATCH_DASK_ADDRESS``)."""
    settings = get_settings()
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True}
        )
    return ThreadPoolTaskRunner(max_workers=settings.source_concurrency)


def _transient(task, task_run, state) -> bool:  # type: ignore[no-untyped-def]
    """Retry only what may pass: a locked database, timeouts, connection trouble."""
    try:
        state.result()
    except (DatabaseLocked, TimeoutError, ConnectionError):
        return True
    except Exception:
        return False
    return False


def _flow_run_id() -> str | None:
    # inside a task the run context is the TaskRunContext, which has no .flow_run:
    # prefect.runtime reads the flow run id from either context
    return prefect_flow_run.get_id()


@task(name="begin-run", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient)
def begin_run(db: Path, settings: Settings, run_id: str, flow_name: str) -> dict[str, Any]:
    return stages.begin_run(db, settings, run_id, flow_name, _flow_run_id())


def _mark_crashed_in_prefect(crashed: list[dict[str, Any]]) -> None:
    """Set the Prefect flow runs of dead runs to Crashed (they stay Running otherwise)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    if not any(run.get("flow_run_id") for run in crashed):
        return
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        for run in crashed:
            if not run.get("flow_run_id"):
                continue
            try:
                client.set_flow_run_state(
                    uuid.UUID(run["flow_run_id"]),
                    Crashed(message=f"cstowatch run {run['run_id']} died (found by a later run)"),
                    force=True,
                )
            except Exception as exc:  # the warehouse already says crashed; Prefect mirrors it
                logger.warning("could not mark flow run %s crashed: %s", run["flow_run_id"], exc)


def _stage(db: Path, settings: Settings, run_id: str, name: str) -> None:
    """Note the stage a run is in (a crashed run's row then says where it died)."""
    try:
        stages.run_stage(db, settings, run_id, name)
    except DatabaseLocked as exc:
        get_run_logger().warning("could not record stage %s: %s", name, exc)


@contextmanager
def tracked_run(db: Path, settings: Settings, flow_name: str) -> Iterator[tuple[str, set[str]]]:
    """Record the run in ``pipeline_runs`` for its duration: completed, failed, or (when the
    process dies) found crashed by the next run, which also loads what it left."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    begun = begin_run(db, settings, run_id, flow_name)
    _mark_crashed_in_prefect(begun["crashed"])
    try:
        yield run_id, set(begun["live"])
    except BaseException as exc:
        try:
            stages.end_run(db, settings, run_id, "failed", f"{exc.__class__.__name__}: {exc}")
        except Exception as inner:  # the database may be what failed
            get_run_logger().warning("could not record the run as failed: %s", inner)
        raise
    try:
        stages.end_run(db, settings, run_id, "completed")
    except DatabaseLocked as exc:  # the work is done; the next run will say it crashed
        get_run_logger().warning("could not record the run as completed: %s", exc)


@task(name="prepare-run", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient)
def prepare_run(db: Path, sources: list[Source], settings: Settings) -> dict[str, Any]:
    return stages.prepare_run(db, sources, settings)


@task(name="collect-source", timeout_seconds=3600)
def collect_source(
    source: Source,
    batch_dir: Path,
    state: dict[str, Any],
    settings: Settings,
    force_feeds: bool,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    result = stages.collect_one(source, batch_dir, state, settings, force_feeds, since, until)
    logger = get_run_logger()
    for error in result.get("errors", [])[:10]:
        logger.warning("source %s: %s", source.id, error)
    return result


@task(name="load-batch", retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=_transient)
def load_batch(db: Path, run_id: str, result: dict[str, Any], settings: Settings) -> dict[str, Any]:
    return stages.load_one(db, run_id, _flow_run_id(), result, settings)


@task(
    name="plan-classification",
    retries=2,
    retry_delay_seconds=[10, 60],
    retry_condition_fn=_transient,
)
def plan_classification(
    db: Path, settings: Settings, model_dir: str | None = None
) -> tuple[str, list[list[dict[str, Any]]]]:
    return stages.classification_plan(db, settings, model_dir)


@task(name="score-chunk", retries=1, retry_delay_seconds=[10])
def score_chunk(
    articles: list[dict[str, Any]], settings: Settings, model_dir: str | None = None
) -> list[dict[str, Any]]:
    return stages.score_chunk(articles, settings, model_dir)


@task(
    name="store-scores", retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=_transient
)
def store_scores(
    db: Path, settings: Settings, model_id: str, rows: list[dict[str, Any]]
) -> list[str]:
    return stages.store_chunk(db, settings, model_id, rows)


def _classify(db: Path, settings: Settings, model_dir: str | None = None) -> dict[str, Any]:
    """Score on the task runner's workers, write from here: one writer for DuckDB."""
    logger = get_run_logger()
    model_id, chunks = plan_classification(db, settings, model_dir)
    total, done, relevant, rejected = sum(len(c) for c in chunks), 0, 0, []
    if settings.task_runner == "dask":
        results = (f.result() for f in [score_chunk.submit(c, settings, model_dir) for c in chunks])
    else:  # torch already uses every core: threads would only oversubscribe them
        results = (score_chunk(c, settings, model_dir) for c in chunks)
    for rows in results:
        rejected += store_scores(db, settings, model_id, rows)
        relevant += sum(1 for r in rows if r["relevant"])
        done += len(rows)
        logger.info("classified %d/%d articles", done, total)
    for problem in rejected[:20]:
        logger.warning("prediction rejected: %s", problem)
    return {"model_id": model_id, "classified": done, "relevant": relevant, "rejected": rejected}


@task(name="index-search", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=_transient)
def index_search(db: Path, settings: Settings) -> dict[str, int]:
    return stages.index_search(db, settings)


@task(name="detect-shifts", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=_transient)
def detect_shifts(
    db: Path, as_of: date, settings: Settings, model_id: str | None
) -> dict[str, Any]:
    tests, new = stages.detect_alerts(db, as_of, settings, model_id)
    return {
        "tested": sum(t.kind == "stance" for t in tests),
        "new_alerts": new,
        "alerts": [
            {
                "group": f"{t.group_type}:{t.group_value}",
                "kind": t.kind,
                "direction": t.direction,
                "effect_pp": round(100 * t.effect, 1),
                "q": t.q_value,
            }
            for t in tests
            if t.alert
        ],
    }


@task(name="notify", retries=1, retry_delay_seconds=[30], retry_condition_fn=_transient)
def notify(db: Path, settings: Settings, model_id: str | None) -> dict[str, Any]:
    report = stages.deliver(db, settings, model_id)
    if report.error:
        get_run_logger().warning("alert delivery failed, will retry next run: %s", report.error)
    return {
        "sent": report.sent,
        "pending": report.pending,
        "uncertain": report.uncertain,
        "error": report.error,
        "files": report.paths,
    }


def _collect_all(
    sources: list[Source],
    db: Path,
    settings: Settings,
    run_id: str,
    live: set[str],
    force_feeds: bool,
    since: str | None = None,
    until: str | None = None,
) -> list[dict]:
    batch_root = db.parent / "batches"
    for path in stages.unloaded_batches(batch_root, live | {run_id}):
        # a dead run's batches load first: nothing it collected is lost
        get_run_logger().info("loading batch left by an interrupted run: %s", path)
        load_batch(
            db,
            path.parent.name,
            {
                "source_id": path.stem,
                "batch": str(path),
                "started_at": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
                "status": "ok",
                "leftover": True,
            },
            settings,
        )
    state = prepare_run(db, sources, settings)
    futures = [
        collect_source.submit(s, batch_root / run_id, state, settings, force_feeds, since, until)
        for s in sources
    ]
    return [load_batch(db, run_id, f.result(), settings) for f in futures]


def _paths(sources: str, db: str | None) -> tuple[list[Source], Path, Settings]:
    settings = get_settings()
    return load_sources(sources), Path(db) if db else settings.db, settings


@flow(name="monitor", task_runner=task_runner(), log_prints=True)
def monitor(
    sources: str = "sources.yaml",
    db: str | None = None,
    as_of: date | None = None,
    force_feeds: bool = False,
    model_dir: str | None = None,
) -> dict[str, Any]:
    """One full monitoring run: collect, load, classify, detect shifts, notify."""
    source_list, db_path, settings = _paths(sources, db)
    as_of = as_of or datetime.now(UTC).date()
    with tracked_run(db_path, settings, "monitor") as (run_id, live):
        runs = _collect_all(source_list, db_path, settings, run_id, live, force_feeds)
        _stage(db_path, settings, run_id, "classify")
        scored = _classify(db_path, settings, model_dir)
        _stage(db_path, settings, run_id, "alerts")
        index_search(db_path, settings)
        shifts = detect_shifts(db_path, as_of, settings, scored["model_id"])
        _stage(db_path, settings, run_id, "delivery")
        sent = notify(db_path, settings, scored["model_id"])
    failed = [r["source_id"] for r in runs if r["status"] == "failed"]
    return {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "db": str(db_path),
        "status": "partial" if failed or any(r["status"] != "ok" for r in runs) else "ok",
        "sources": runs,
        "classified": scored,
        "shifts": shifts,
        "notify": sent,
    }


@flow(name="collect", task_runner=task_runner())
def collect(
    sources: str = "sources.yaml", db: str | None = None, force_feeds: bool = False
) -> dict[str, Any]:
    """Collection only: feeds and spiders into the warehouse."""
    source_list, db_path, settings = _paths(sources, db)
    with tracked_run(db_path, settings, "collect") as (run_id, live):
        runs = _collect_all(source_list, db_path, settings, run_id, live, force_feeds)
    return {"run_id": run_id, "sources": runs}


@flow(name="backfill", task_runner=task_runner())
def backfill(
    since: date,
    until: date,
    sources: str = "sources.yaml",
    only: list[str] | None = None,
    db: str | None = None,
) -> dict[str, Any]:
    """Re-crawl the sitemaps of a past period (feeds only show recent items)."""
    source_list, db_path, settings = _paths(sources, db)
    chosen = [s for s in source_list if not only or s.id in only]
    with tracked_run(db_path, settings, "backfill") as (run_id, live):
        runs = _collect_all(
            chosen, db_path, settings, run_id, live, False, since.isoformat(), until.isoformat()
        )
    return {"run_id": run_id, "sources": runs}


@flow(name="reclassify", task_runner=task_runner())
def reclassify(model: str | None = None, db: str | None = None) -> dict[str, Any]:
    """Re-score stored articles with another model; the old model's rows stay."""
    settings = get_settings()
    return _classify(Path(db) if db else settings.db, settings, model)


@task(name="send-digest", retries=2, retry_delay_seconds=[30, 300], retry_condition_fn=_transient)
def send_digest(db: Path, as_of: date, settings: Settings, force: bool) -> dict[str, Any]:
    return stages.digest(db, as_of, settings, force)


@flow(name="digest")
def digest(db: str | None = None, as_of: date | None = None, force: bool = False) -> dict[str, Any]:
    """The daily digest email: every group's stance mix, whether or not anything shifted.
    Sent at most once per day; ``force`` sends a day's digest again."""
    settings = get_settings()
    return send_digest(
        Path(db) if db else settings.db, as_of or datetime.now(UTC).date(), settings, force
    )
