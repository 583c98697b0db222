"""The Prefect flows of flows/monitor.py on a small two-outlet web, under a test Prefect API.

tests/fixtures/flow_site/ holds two feed-only outlets: Steppe Herald (A, four English articles)
and Volga Telegraph (B, three Russian articles). Every run here crawls that site over real HTTP
(feeds with httpx, articles with Scrapy) and classifies its seven articles with the real model,
which loads once per process.

One module-scoped site server serves the pristine site, so article ids (hashes of the URL, port
included) are the same in every database built from it and rows can be compared across runs.

    test_partial_failure_*          one outlet answering 500 never fails the run
    test_article_errors_*           an article answering 500 is named in the source's run record
    test_rerun_after_crash_*        collect-only, then a crash mid-classification, then a rerun
    test_batch_left_unloaded_*      a batch an interrupted run wrote is loaded once, later
    test_dask_task_runner_*         the Dask task runner stores the same stances as threads
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.static_site import StaticSite

pytestmark = pytest.mark.slow

SITE = Path(__file__).resolve().parent / "fixtures" / "flow_site"
AS_OF = date(2026, 11, 29)
A, B = "steppe-herald", "volga-telegraph"
A_ARTICLES = sorted(p.relative_to(SITE).as_posix() for p in (SITE / A).rglob("*.html"))
B_ARTICLES = sorted(p.relative_to(SITE).as_posix() for p in (SITE / B).rglob("*.html"))
TABLES = ("articles", "raw_pages", "feed_items", "passages", "stance_predictions",
          "article_stance", "models")


def write_sources(base: str, target: Path) -> Path:
    target.write_text((SITE / "sources.yaml").read_text(encoding="utf-8").replace("{base}", base),
                      encoding="utf-8")
    return target


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def counts(db: Path) -> dict[str, int]:
    return {t: query(db, f"select count(*) from {t}")[0][0] for t in TABLES}  # noqa: S608


def stances(db: Path) -> dict[str, tuple]:
    """article_id -> (label, relevant, p_pro_russian, p_neutral, p_pro_kazakh), article level."""
    rows = query(db, "select article_id, label, relevant, p_pro_russian, p_neutral, p_pro_kazakh "
                     "from article_stance")
    return {r[0]: tuple(r[1:]) for r in rows}


def assert_same_stances(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    """Same articles, labels and relevance; probabilities equal up to float noise. Batching
    articles differently (chunks of 3 or 4 instead of 32) moves them by ~1e-7, so a comparison
    of values rounded to a few digits could flip on a rounding boundary: compare with a tolerance.
    """
    assert set(got) == set(want)
    for article_id, (label, relevant, *probs) in want.items():
        assert got[article_id][:2] == (label, relevant), article_id
        assert got[article_id][2:] == pytest.approx(tuple(probs), abs=1e-5), article_id


def assert_no_duplicates(db: Path) -> None:
    """Every stored article has exactly one article-level prediction per model; nothing twice."""
    assert query(db, "select url from articles group by url having count(*) > 1") == []
    assert query(db, "select article_id, model_id from stance_predictions where passage_idx = -1 "
                     "group by all having count(*) > 1") == []
    assert query(db, "select article_id, idx from passages group by all having count(*) > 1") == []
    missing = query(db, """
        select a.article_id, m.model_id from articles a cross join models m
        where a.duplicate_of is null and not exists (
            select 1 from stance_predictions p where p.article_id = a.article_id
            and p.model_id = m.model_id and p.passage_idx = -1)""")
    assert missing == []


@pytest.fixture(scope="module")
def flow_env(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Path]:
    """CSTOWATCH_* pointing into a temporary directory, no SMTP host, fresh settings."""
    from flows.settings import get_settings

    tmp = tmp_path_factory.mktemp("flow_env")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("CSTOWATCH_"):
                mp.delenv(key)
        mp.setenv("CSTOWATCH_OUTBOX", str(tmp / "outbox"))
        mp.setenv("CSTOWATCH_DB", str(tmp / "default.duckdb"))
        mp.setenv("CSTOWATCH_LOCK_TIMEOUT", "10")
        get_settings.cache_clear()
        try:
            yield tmp
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def site(flow_env: Path) -> Iterator[StaticSite]:
    with StaticSite(SITE) as server:
        yield server


@pytest.fixture(scope="module")
def sources(site: StaticSite, flow_env: Path) -> Path:
    return write_sources(site.base, flow_env / "sources.yaml")


@pytest.fixture(scope="module")
def clean_run(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted monitor run with the default (thread) task runner: the reference."""
    from flows.monitor import monitor

    db = tmp_path_factory.mktemp("clean") / "data" / "cstowatch.duckdb"
    result = monitor(sources=str(sources), db=str(db), as_of=AS_OF)
    assert result["status"] == "ok", result
    assert_no_duplicates(db)
    return {"db": db, "result": result, "counts": counts(db), "stances": stances(db)}


def test_clean_run_stores_and_classifies_every_article(clean_run: dict[str, Any]) -> None:
    c = clean_run["counts"]
    assert c["articles"] == len(A_ARTICLES) + len(B_ARTICLES) == 7
    assert c["article_stance"] == 7 and c["models"] == 1
    assert clean_run["result"]["classified"]["classified"] == 7
    # the fixture texts are all on topic; the opinion pieces are not all neutral
    labels = [s[0] for s in clean_run["stances"].values()]
    assert all(s[1] for s in clean_run["stances"].values())
    assert len(set(labels)) >= 2, labels


def test_partial_failure_keeps_the_good_outlet(flow_env: Path, tmp_path: Path) -> None:
    """B's feed and articles answer 500: the flow completes, status partial, A is stored."""
    from flows.monitor import monitor

    root = tmp_path / "site"
    shutil.copytree(SITE, root)
    for rel in [f"{B}/rss.xml", *B_ARTICLES]:
        (root / (rel + ".meta.json")).write_text(json.dumps({"status": 500}))
    db = tmp_path / "data" / "cstowatch.duckdb"
    with StaticSite(root) as broken:
        src = write_sources(broken.base, tmp_path / "sources.yaml")
        state = monitor(sources=str(src), db=str(db), as_of=AS_OF, return_state=True)
        feed_b = f"{broken.base}/{B}/rss.xml"
        hits = list(broken.hits)
    assert state.is_completed(), state.message
    result = state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    assert result["status"] == "partial"
    runs = {r["source_id"]: r for r in result["sources"]}
    assert runs[A]["status"] == "ok" and runs[A]["articles_added"] == len(A_ARTICLES)
    assert runs[B]["status"] in ("failed", "partial")
    assert runs[B]["articles_added"] == 0 and runs[B]["feeds_failed"] == 1

    stored = dict(query(db, "select source_id, count(*) from articles group by all"))
    assert stored == {A: len(A_ARTICLES)}
    assert len(stances(db)) == len(A_ARTICLES)  # A's articles were still classified
    rows = {r[0]: r[1:] for r in query(
        db, "select source_id, run_id, flow_run_id, status, errors from crawl_runs")}
    assert set(rows) == {A, B}
    for run_id, fr_id, _status, _errors in rows.values():
        assert run_id == result["run_id"]
        assert fr_id == flow_run_id  # the Prefect flow run that loaded it
    assert rows[B][2] in ("failed", "partial")
    assert feed_b in rows[B][3] and "HTTP 500" in rows[B][3], rows[B][3]
    # with its feed down, B's articles are never discovered, let alone requested
    assert not [h for h in hits if h.split("?")[0].lstrip("/") in B_ARTICLES]


def test_article_errors_are_named_in_the_run_record(flow_env: Path, tmp_path: Path) -> None:
    """B's feed works but one of its articles answers 500: B is partial and names the URL."""
    from flows.monitor import collect

    root = tmp_path / "site"
    shutil.copytree(SITE, root)
    bad = B_ARTICLES[0]
    (root / (bad + ".meta.json")).write_text(json.dumps({"status": 500}))
    db = tmp_path / "data" / "cstowatch.duckdb"
    with StaticSite(root) as broken:
        src = write_sources(broken.base, tmp_path / "sources.yaml")
        result = collect(sources=str(src), db=str(db))
        bad_url = f"{broken.base}/{bad}"
    runs = {r["source_id"]: r for r in result["sources"]}
    assert runs[A]["status"] == "ok" and runs[A]["articles_added"] == len(A_ARTICLES)
    assert runs[B]["status"] == "partial" and runs[B]["failed"] == 1
    assert runs[B]["articles_added"] == len(B_ARTICLES) - 1
    errors = query(db, "select errors from crawl_runs where source_id = ?", [B])[0][0]
    assert bad_url in errors, errors
    events = query(db, "select url, http_status from crawl_events where status = 'failure'")
    assert events == [(bad_url, 500)]


def test_rerun_after_crash_equals_a_clean_run(
    clean_run: dict[str, Any], sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collect only (a crash before classifying), then a crash after the first stored chunk,
    then a plain rerun: the warehouse ends up exactly as after one clean run."""
    from flows import stages
    from flows.monitor import collect, monitor

    db = tmp_path / "data" / "cstowatch.duckdb"
    collected = collect(sources=str(sources), db=str(db))
    assert {r["status"] for r in collected["sources"]} == {"ok"}
    assert counts(db)["articles"] == 7 and counts(db)["stance_predictions"] == 0

    monkeypatch.setattr(stages, "CLASSIFY_CHUNK", 3)  # 7 articles: chunks of 3, 3 and 1
    store_chunk, calls = stages.store_chunk, []

    def crash_after_first_chunk(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated crash while storing chunk 2")
        return store_chunk(*args, **kwargs)

    monkeypatch.setattr(stages, "store_chunk", crash_after_first_chunk)
    state = monitor(sources=str(sources), db=str(db), as_of=AS_OF, return_state=True)
    assert state.is_failed()
    assert "simulated crash while storing chunk 2" in (state.message or ""), state.message
    assert len(calls) == 2  # not retried: a RuntimeError is not transient
    assert len(stances(db)) == 3  # the first chunk is stored, the rest is not

    monkeypatch.setattr(stages, "store_chunk", store_chunk)
    result = monitor(sources=str(sources), db=str(db), as_of=AS_OF)
    assert result["status"] == "ok"
    assert result["classified"]["classified"] == 4  # only what the crash left unscored
    assert_no_duplicates(db)
    assert counts(db) == clean_run["counts"]
    assert_same_stances(stances(db), clean_run["stances"])


def test_batch_left_unloaded_is_loaded_once(
    clean_run: dict[str, Any], sources: Path, tmp_path: Path
) -> None:
    """A run that died after collecting leaves data/batches/<run>/*.jsonl without a .loaded
    marker: the next run loads them (once) before collecting, the one after does not."""
    from crawlers.sources import load_sources
    from flows import stages
    from flows.monitor import monitor
    from flows.settings import get_settings

    db = tmp_path / "data" / "cstowatch.duckdb"
    batch_root = db.parent / "batches"
    crashed = "20261129T000500-dead01"
    for source in load_sources(sources):
        out = stages.collect_one(source, batch_root / crashed, {"known": set(), "feeds": {}},
                                 get_settings(), force_feeds=True, start_delay=0.05)
        assert out["status"] == "ok", out
    left = stages.unloaded_batches(batch_root)
    assert [p.name for p in left] == [f"{A}.jsonl", f"{B}.jsonl"]

    first = monitor(sources=str(sources), db=str(db), as_of=AS_OF)
    assert stages.unloaded_batches(batch_root) == []
    assert all(p.with_suffix(".loaded").exists() for p in left)
    loaded = query(db, "select source_id, articles_added, flow_run_id, finished_at "
                       "from crawl_runs where run_id = ? order by source_id", [crashed])
    assert [(r[0], r[1]) for r in loaded] == [(A, len(A_ARTICLES)), (B, len(B_ARTICLES))]
    assert all(r[2] for r in loaded)
    # the leftover's feed state counts: this run's own collection adds nothing
    assert sum(r["articles_added"] for r in first["sources"]) == 0
    assert counts(db) == clean_run["counts"]
    assert_same_stances(stances(db), clean_run["stances"])
    assert_no_duplicates(db)

    second = monitor(sources=str(sources), db=str(db), as_of=AS_OF)
    assert second["classified"]["classified"] == 0
    again = query(db, "select source_id, articles_added, flow_run_id, finished_at "
                      "from crawl_runs where run_id = ? order by source_id", [crashed])
    assert again == loaded  # not loaded (nor its run record rewritten) a second time
    assert counts(db) == clean_run["counts"]


def test_dask_task_runner_matches_thread_runner(
    clean_run: dict[str, Any], sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSTOWATCH_TASK_RUNNER=dask: collection and scoring run on a two-process LocalCluster;
    the stored stances equal those of the thread runner's run."""
    from prefect_dask import DaskTaskRunner

    from flows import stages
    from flows.monitor import monitor
    from flows.settings import get_settings

    monkeypatch.setenv("CSTOWATCH_TASK_RUNNER", "dask")
    monkeypatch.setattr(stages, "CLASSIFY_CHUNK", 4)  # two chunks: one for each worker
    get_settings.cache_clear()
    try:
        assert get_settings().task_runner == "dask"
        runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1,
                                                "processes": True})
        db = tmp_path / "data" / "cstowatch.duckdb"
        result = monitor.with_options(task_runner=runner)(
            sources=str(sources), db=str(db), as_of=AS_OF)
    finally:
        monkeypatch.delenv("CSTOWATCH_TASK_RUNNER")
        get_settings.cache_clear()
    assert result["status"] == "ok"
    assert result["classified"]["classified"] == 7
    assert result["classified"]["model_id"] == clean_run["result"]["classified"]["model_id"]
    assert_same_stances(stances(db), clean_run["stances"])
    assert counts(db) == clean_run["counts"]
    assert_no_duplicates(db)
