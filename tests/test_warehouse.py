"""The warehouse against real DuckDB files: migrations, idempotent and atomic loads, validation,
data rules, story clusters, the lock-retry path with a second process, the read-only CLI,
full-text search and the Parquet export."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from warehouse import db as db_module
from warehouse import load as load_module
from warehouse.db import DatabaseLocked, SchemaTooNew, connect, migrations, schema_version
from warehouse.export import export_parquet
from warehouse.load import LABELS, load_batch, upsert_sources
from warehouse.predictions import register_model, store_scores
from warehouse.search import SearchIndexMissing, rebuild_search_index, search

SOURCES = [
    {"id": "src-ru", "name": "Vestnik", "country": "RU", "languages": ["ru"],
     "affiliation": "state", "domains": ["vestnik.example"]},
    {"id": "src-kz", "name": "Dala", "country": "KZ", "languages": ["kk", "ru"],
     "affiliation": "independent", "domains": ["dala.example"]},
    {"id": "src-fr", "name": "Courrier", "country": "FR", "languages": ["fr", "en"],
     "affiliation": "independent", "domains": ["courrier.example"]},
]
DOMAIN = {s["id"]: s["domains"][0] for s in SOURCES}

WIRE = (
    "The foreign ministers of the Collective Security Treaty Organization met in Moscow on "
    "Thursday and adopted five documents on regional security, including a statement on cyber "
    "threats to critical infrastructure. Delegations from Armenia did not attend the session, "
    "which was chaired by the Russian minister. The ministers discussed the situation on the "
    "Tajik-Afghan border and agreed to expand joint training of border guards. A separate "
    "declaration calls for closer coordination of information policy among the member states. "
    "Kazakhstan's delegation proposed amendments to the draft on peacekeeping operations, "
    "stressing that any deployment must follow the United Nations Charter. The next meeting of "
    "the council is scheduled for the spring in Minsk, according to the organization's press "
    "service, which published the full texts of the adopted documents on its website. "
    "Speaking to reporters after the talks, the secretary general said the organization was "
    "ready to send specialists to help member states protect their power grids and banking "
    "systems from hacker attacks, and that a joint exercise of cyber response units would be "
    "held in Kazakhstan next autumn. He added that the budget for the coming year had been "
    "agreed in principle, although two member states had asked for more time to complete "
    "their internal procedures. Observers noted that the final communique avoided any direct "
    "mention of the war in Ukraine, a subject on which the member states remain divided."
)
REPUBLISHED = (
    "Officials gathered amid heavy snow in the Russian capital this week. "
    + WIRE.replace(
        "The ministers discussed the situation on the Tajik-Afghan border and agreed to expand "
        "joint training of border guards.",
        "Participants also reviewed the situation along the Tajik-Afghan frontier and promised "
        "more joint exercises.",
    )
)
UNRELATED = (
    "The city football club won its third match in a row on Saturday, beating the visitors two "
    "goals to nil in front of a sold-out stadium. The coach praised the young goalkeeper, who "
    "saved a penalty in the second half, and said the team would rest before the cup game. "
    "Supporters celebrated in the main square until late in the evening, and the mayor "
    "promised to renovate the old stands before the next season begins in March."
)


def article(n: int, source_id: str = "src-ru", *, text: str | None = None, lang: str = "en",
            title: str | None = None, published: str | None = "2026-11-02T08:00:00+00:00",
            **extra: Any) -> dict[str, Any]:
    url = f"https://{DOMAIN[source_id]}/news/{n}"
    row = {
        "kind": "article", "status": "ok", "article_id": f"{n:032x}", "source_id": source_id,
        "url": url, "canonical_url": url, "title": title or f"Report number {n}",
        "text": text or f"Article {n} reports on event {n} with details unique to story {n}.",
        "lang": lang, "published": published, "fetched_at": "2026-11-02T09:00:00+00:00",
        "extractor": "trafilatura", "via": "feed", "_line": n,
    }
    row.update(extra)
    return row


def prediction(article_id: str, label: str | None = "neutral",
               probs: tuple[float, float, float] = (0.2, 0.6, 0.2), *, relevant: bool = True,
               lang: str = "en") -> dict[str, Any]:
    p = dict(zip(LABELS, probs, strict=True))
    return {
        "article_id": article_id, "lang": lang,
        "passages": [{"idx": 0, "kind": "title", "text": "a title", "label": label,
                      "probs": p, "relevance": 0.9}],
        "label": label if relevant else None, "probs": p, "relevance": 0.9 if relevant else 0.1,
        "relevant": relevant, "evidence": [{"idx": 0}], "quotes_other_side": False,
    }


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    tables = ["articles", "article_minhash", "raw_pages", "feed_items", "crawl_events",
              "passages", "stance_predictions", "models"]
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}  # noqa: S608
    checksum = con.execute(
        "select md5(coalesce(string_agg(concat_ws('|', article_id, source_id, url, story_id, "
        "duplicate_of, content_sha256, published_at, title), '\n' order by article_id), '')) "
        "from articles"
    ).fetchone()[0]
    return {"counts": counts, "checksum": checksum}


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture()
def con(db_path: Path):  # type: ignore[no-untyped-def]
    connection = connect(db_path, lock_timeout=5)
    upsert_sources(connection, SOURCES)
    yield connection
    connection.close()


# --- migrations -------------------------------------------------------------------------------

def test_migrations_are_recorded_once(db_path: Path) -> None:
    con = connect(db_path)
    recorded = con.execute("select version, name from schema_migrations order by 1").fetchall()
    assert recorded == [(v, n) for v, n, _ in migrations()]
    con.close()
    con = connect(db_path)  # reopening applies nothing twice
    assert con.execute("select count(*) from schema_migrations").fetchone()[0] == len(recorded)
    con.close()


def test_run_script_splits_like_duckdb_does(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ';' inside a comment or a string is no statement boundary (issue 17)."""
    script = (
        "-- a note; with a semicolon\n"
        "create temp table t (s varchar, n integer);\n"
        "insert into t values ('a;b', $n); -- and here; too\n"
        "insert into t values ('c', $n + 1)"
    )
    real = db_module.sql
    monkeypatch.setattr(db_module, "sql", lambda name: script if name == "t" else real(name))
    db_module.run_script(con, "t", {"n": 1, "unused": 2})
    assert con.execute("select * from t order by n").fetchall() == [("a;b", 1), ("c", 2)]
    with pytest.raises(KeyError, match="needs parameters"):
        db_module.run_script(con, "t", {})


def test_alert_cooldown_is_per_group_and_direction(con: duckdb.DuckDBPyConnection) -> None:
    """A group that alerted pro-Russian yesterday stays quiet pro-Russian today but can alert
    when it swings pro-Kazakh (issue 17); the dispersion is stored with the alert."""
    from datetime import date

    day = date(2026, 11, 28)
    con.execute(
        db_module.sql("insert_alert"),
        {"alert_id": "a1", "kind": "stance", "group_type": "country", "group_value": "KZ",
         "group_label": "Kazakhstan outlets", "direction": "pro_russian", "window_start": day,
         "window_end": day, "baseline_start": day, "baseline_end": day, "n_window": 40,
         "n_baseline": 80, "shares_before": "{}", "shares_after": "{}", "ci_before": "{}",
         "ci_after": "{}", "effect_pp": 20.0, "p_value": 0.001, "q_value": 0.002,
         "severity": "high", "evidence": "[]", "model_id": None,
         "created_at": datetime.now(UTC), "dispersion": 0.62},
    )
    assert con.execute("select dispersion from alerts").fetchone() == (0.62,)

    def recent(direction: str) -> list[tuple]:
        return con.execute(
            db_module.sql("alert_recent"),
            {"group_type": "country", "group_value": "KZ", "direction": direction,
             "alert_id": "new", "cooldown_from": day, "as_of": date(2026, 11, 29)},
        ).fetchall()

    assert recent("pro_russian") == [("a1",)]
    assert recent("pro_kazakh") == []


def test_newer_schema_is_refused(db_path: Path) -> None:
    con = connect(db_path)
    con.execute("insert into schema_migrations values (999, 'from_the_future', now())")
    con.close()
    with pytest.raises(SchemaTooNew, match=r"schema version 999.*upgrade cstowatch"):
        connect(db_path)


def test_migration_004_upgrades_a_database_at_003(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrations()
    monkeypatch.setattr(db_module, "migrations", lambda: [m for m in every if m[0] <= 3])
    # what schema 3 had: no views over later tables, no pending_items for a load to keep, no
    # published_date (008) nor outlet time zones (the days were UTC days)
    views = db_module.sql("views").split("create or replace view")
    real_sql = db_module.sql
    utc_day = "cast(coalesce(a.published_at, a.fetched_at) as date)"

    def schema_3_sql(name: str) -> str:
        text = real_sql(name)
        if name == "views":
            text = "create or replace view".join(v for v in views if "pending_items" not in v)
        text = text.replace(
            "outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at)", utc_day
        )
        return text.replace("    a.published_date,\n", "").replace("published_date, ", "")

    monkeypatch.setattr(db_module, "sql", schema_3_sql)
    monkeypatch.setattr(load_module, "_update_pending", lambda *a, **k: [])
    con = connect(db_path)
    for s in SOURCES:
        con.execute(
            "insert into sources values (?, ?, ?, ?, ?, ?, now())",
            [s["id"], s["name"], s["country"], s["languages"], s["affiliation"], s["domains"]],
        )
    load_batch(con, [article(1, text=WIRE), article(2, "src-kz", text=UNRELATED)], "run-1")
    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    store_scores(con, "m1", [prediction(f"{1:032x}"), prediction(f"{2:032x}", "pro_kazakh",
                                                                  (0.1, 0.2, 0.7))])
    indexes = "select index_name from duckdb_indexes() order by 1"
    assert schema_version(con) == 3
    assert con.execute(indexes).fetchall() == [("articles_content_sha256",)]
    before = snapshot(con)
    daily = con.execute("select * from stance_daily order by all").fetchall()
    con.close()

    monkeypatch.undo()
    con = connect(db_path)
    assert schema_version(con) == every[-1][0] >= 4
    assert con.execute(indexes).fetchall() == []
    assert snapshot(con) == before
    assert con.execute("select * from stance_daily order by all").fetchall() == daily
    # the upgraded data still deduplicates: by id, by URL and by text
    same_url = dict(article(4), url=article(2, "src-kz")["url"])
    report = load_batch(con, [article(1, text=WIRE), same_url,
                              article(3, "src-fr", text=WIRE.upper())], "run-2")
    assert (report.added, report.duplicates) == (1, 2)
    assert con.execute(
        "select duplicate_of, story_id from articles where article_id = ?", [f"{3:032x}"]
    ).fetchone() == (f"{1:032x}", f"{1:032x}")
    con.close()


# --- loads --------------------------------------------------------------------------------------

def test_loading_the_same_batch_twice_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    batch = [article(i, text=f"{WIRE} Item {i}." if i == 1 else None) for i in range(1, 6)]
    batch.append({"kind": "feed_item", "feed_url": "https://vestnik.example/rss", "guid": "g1",
                  "url": "https://vestnik.example/news/1", "title": "t", "published": None,
                  "offsite": False, "seen_at": "2026-11-02T09:00:00+00:00", "_line": 6})
    first = load_batch(con, batch, "run-1")
    assert first.added == 5 and not first.rejected
    before = snapshot(con)
    second = load_batch(con, batch, "run-2")
    assert second.added == 0 and second.duplicates == 5
    assert snapshot(con) == before


def test_a_crash_mid_load_leaves_the_previous_state(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_batch(con, [article(1), article(2)], "run-1")
    before = snapshot(con)
    batch = [article(i) for i in range(3, 9)]
    batch.append({"kind": "feed_item", "feed_url": "https://vestnik.example/rss", "guid": "g3",
                  "url": "https://vestnik.example/news/3", "title": "t", "published": None,
                  "offsite": False, "seen_at": "2026-11-02T09:00:00+00:00", "_line": 9})
    batch.append({"kind": "failure", "source_id": "src-ru", "url": "https://vestnik.example/x",
                  "error": "timeout", "_line": 10})

    real = load_module.run_script
    written: list[int] = []

    def crash_after_the_articles(c: duckdb.DuckDBPyConnection, name: str, params: Any) -> None:
        real(c, name, params)
        written.append(c.execute("select count(*) from articles").fetchone()[0])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(load_module, "run_script", crash_after_the_articles)
    with pytest.raises(OSError, match="simulated"):
        load_batch(con, batch, "run-2")
    assert written == [8]  # the six articles were written before the crash ...
    assert snapshot(con) == before  # ... and rolled back with the feed item and the event
    assert con.execute("select count(*) from crawl_events").fetchone()[0] == 0

    monkeypatch.setattr(load_module, "run_script", real)
    report = load_batch(con, batch, "run-4")  # the rerun completes ...
    assert report.added == 6 and report.failed == 1
    n, distinct = con.execute("select count(*), count(distinct url) from articles").fetchone()
    assert n == distinct == 8  # ... without duplicates

    # a row without a source is rejected by name (validated before the database sees it)
    report = load_batch(con, [dict(article(99), source_id=None, _line=7), article(10)], "run-5")
    assert report.added == 1
    assert report.rejected and "line 7" in report.rejected[0]
    assert "missing source_id" in report.rejected[0]


def test_a_batch_loads_as_its_rows_would_one_by_one(tmp_path: Path) -> None:
    """The set-wise load decides duplicates, originals and stories in batch order."""
    now = datetime.now(UTC)  # recent, so that stored articles are story candidates

    def at(hours: int) -> str:
        return (now - timedelta(hours=hours)).isoformat()

    stored = [article(20, fetched_at=at(30))]
    batch = [
        article(1, text=WIRE, fetched_at=at(5)),
        article(2, "src-kz", text=REPUBLISHED, fetched_at=at(5)),  # near-duplicate of 1
        article(3, "src-fr", text=UNRELATED, fetched_at=at(5)),
        article(4, "src-kz", text=WIRE.upper(), fetched_at=at(4)),  # same text as 1
        article(5, "src-kz", text=UNRELATED, fetched_at=at(10)),  # same text, fetched earlier
        article(6, "src-fr", text=UNRELATED.lower(), fetched_at=at(1)),  # a copy of 5, first
        dict(article(1, text=WIRE, fetched_at=at(5)), url="https://vestnik.example/amp/1"),
        dict(article(7, "src-kz"), url=article(2, "src-kz")["url"]),  # URL seen, other id
        article(8),
        article(8),
        article(9, text=article(20)["text"], fetched_at=at(2)),  # same text as a stored one
        article(20, fetched_at=at(30)),  # stored
    ]
    outcomes = []
    for name, batches in (("whole", [batch]), ("rows", [[row] for row in batch])):
        con = connect(tmp_path / f"{name}.duckdb")
        upsert_sources(con, SOURCES)
        load_batch(con, stored, "run-0")
        reports = [load_batch(con, b, "run-1") for b in batches]
        outcomes.append((snapshot(con), sum(r.added for r in reports),
                         sum(r.duplicates for r in reports)))
        if name == "whole":
            rows = dict(con.execute(
                "select article_id, (story_id, duplicate_of) from articles").fetchall())
        con.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1:] == (8, 4)
    a = {n: f"{n:032x}" for n in (1, 2, 3, 4, 5, 6, 8, 9, 20)}
    assert rows[a[2]] == (a[1], None)
    assert rows[a[4]] == (a[1], a[1])
    assert rows[a[5]] == (a[3], a[3])
    assert rows[a[6]] == (a[3], a[5])  # the first copy is the earliest fetched one
    assert rows[a[9]] == (a[20], a[20])
    assert rows[a[8]] == (a[8], None)


def test_a_url_stored_under_another_id_stays_one_row(con: duckdb.DuckDBPyConnection) -> None:
    # the id comes from the canonical URL, which may change between two fetches of one URL
    load_batch(con, [article(1)], "run-1")
    report = load_batch(con, [dict(article(2), url=article(1)["url"])], "run-2")
    assert (report.added, report.duplicates) == (0, 1)
    assert con.execute("select article_id from articles").fetchall() == [(f"{1:032x}",)]


def test_bad_rows_are_rejected_by_name_and_the_rest_loads(
    con: duckdb.DuckDBPyConnection,
) -> None:
    batch = [
        article(1),
        dict(article(2), url="", _line=2),
        dict(article(3), published="the 32nd of Smarch", _line=3),
        article(4),
        {"kind": "torn", "_line": 5},
    ]
    report = load_batch(con, batch, "run-1")
    assert report.added == 2
    assert len(report.rejected) == 3
    assert "line 2" in report.rejected[0] and "missing url" in report.rejected[0]
    assert "line 3" in report.rejected[1] and "https://vestnik.example/news/3" in report.rejected[1]
    assert "invalid date" in report.rejected[1]
    assert "line 5" in report.rejected[2]
    assert {r[0] for r in con.execute("select url from articles").fetchall()} == {
        "https://vestnik.example/news/1", "https://vestnik.example/news/4"}

    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    ids = [f"{n:032x}" for n in (1, 4)]
    load_batch(con, [article(5), article(6)], "run-2")
    rejected = store_scores(con, "m1", [
        prediction(ids[0]),
        prediction(ids[1], label="pro_chinese"),
        prediction(f"{5:032x}", probs=(0.5, 0.3, 0.1)),
        prediction(f"{6:032x}", label="pro_kazakh", probs=(0.1, 0.2, 0.7)),
    ])
    # one message per bad row (passage #0 and article #-1 of each bad result)
    assert len(rejected) == 4
    assert any(ids[1] in m and "'pro_chinese' is not one of" in m for m in rejected)
    assert any(f"{5:032x}#-1" in m and "sum to 0.9" in m for m in rejected)
    stored = con.execute(
        "select article_id from stance_predictions where passage_idx = -1 order by 1"
    ).fetchall()
    assert stored == [(ids[0],), (f"{6:032x}",)]


def test_storing_scores_twice_changes_nothing_and_keeps_the_daily_table_current(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load_batch(con, [article(i, "src-ru" if i % 2 else "src-kz") for i in range(1, 5)], "run-1")
    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    ids = [f"{i:032x}" for i in range(1, 5)]
    chunk = [prediction(ids[0], lang="ru"), prediction(ids[1], "pro_kazakh", (0.1, 0.2, 0.7)),
             prediction(ids[2], relevant=False), prediction(ids[0], "pro_russian",
                                                            (0.8, 0.1, 0.1), lang="kk")]
    assert store_scores(con, "m1", chunk) == []
    before = snapshot(con)
    assert before["counts"]["stance_predictions"] == 6 and before["counts"]["passages"] == 3
    # a result repeated in the chunk keeps its first prediction; the last language wins
    assert con.execute(
        "select label, lang from stance_predictions where article_id = ? and passage_idx = -1",
        [ids[0]]).fetchone() == ("neutral", "ru")
    assert con.execute("select lang from articles where article_id = ?",
                       [ids[0]]).fetchone() == ("kk",)
    assert store_scores(con, "m1", chunk) == []
    assert snapshot(con) == before
    daily = "select * from {} order by all"
    assert con.execute(daily.format("stance_daily")).fetchall() == con.execute(
        daily.format("daily_stance_live")).fetchall()
    assert con.execute("select sum(n_articles) from daily_stance").fetchone() == (2,)


def test_data_rules_hold_as_queries(con: duckdb.DuckDBPyConnection) -> None:
    load_batch(con, [article(i) for i in range(1, 5)], "run-1")
    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    store_scores(con, "m1", [prediction(f"{1:032x}"), prediction(f"{2:032x}", relevant=False),
                             prediction(f"{3:032x}", "pro_russian", (0.7, 0.2, 0.1))])
    rules = {
        "duplicate article_id": "select article_id from articles group by 1 having count(*) > 1",
        "duplicate url": "select url from articles group by 1 having count(*) > 1",
        "label outside the three": (
            "select * from stance_predictions where relevant "
            "and (label is null or label not in ('pro_russian', 'neutral', 'pro_kazakh'))"),
        "probabilities not summing to 1": (
            "select * from stance_predictions where relevant "
            "and abs(p_pro_russian + p_neutral + p_pro_kazakh - 1) > 1e-4"),
        "prediction without article": (
            "select * from stance_predictions p anti join articles a using (article_id)"),
    }
    for name, query in rules.items():
        assert con.execute(query).fetchall() == [], name
    # and the database enforces uniqueness itself
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into articles select * replace (md5(article_id) as article_id) "
                    "from articles limit 1")


# --- stories ------------------------------------------------------------------------------------

def test_near_duplicates_share_a_story_and_unrelated_text_does_not(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load_batch(con, [article(1, text=WIRE), article(2, "src-kz", text=REPUBLISHED),
                     article(3, "src-fr", text=UNRELATED)], "run-1")
    story = dict(con.execute("select article_id, story_id from articles").fetchall())
    a, b, c = (f"{n:032x}" for n in (1, 2, 3))
    assert story[a] == story[b] == a
    assert story[c] == c
    dups = con.execute("select count(duplicate_of) from articles").fetchone()[0]
    assert dups == 0  # near-duplicates are one story, not duplicates


def test_exact_duplicate_at_another_url_gets_duplicate_of(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load_batch(con, [article(1, text=WIRE)], "run-1")
    # same words, other case and spacing, another outlet and URL
    load_batch(con, [article(2, "src-kz", text="  " + WIRE.upper().replace(" ", "\n"))], "run-2")
    rows = con.execute(
        "select article_id, story_id, duplicate_of from articles order by article_id"
    ).fetchall()
    a, b = f"{1:032x}", f"{2:032x}"
    assert rows == [(a, a, None), (b, a, a)]
    # duplicates are excluded from the analyst views
    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    store_scores(con, "m1", [prediction(a), prediction(b)])
    assert con.execute("select article_id from relevant_articles").fetchall() == [(a,)]


# --- locks --------------------------------------------------------------------------------------

HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("insert into crawl_events values ('holder', 'src-ru', null, 'event', null, "
            "'written by the holder', now())")
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_lock_held_by_another_process_raises_database_locked(db_path: Path) -> None:
    connect(db_path).close()
    holder = _hold(db_path, 60)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseLocked, match=str(db_path)) as info:
            connect(db_path, lock_timeout=1)
        assert 0.9 < time.monotonic() - started < 10
        assert "nothing was written" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_the_writer_waits_for_the_lock_and_loses_nothing(db_path: Path) -> None:
    con = connect(db_path)
    upsert_sources(con, SOURCES)
    load_batch(con, [article(1), article(2)], "run-1")
    con.close()
    holder = _hold(db_path, 1.5)
    waits: list[float] = []
    try:
        started = time.monotonic()
        con = connect(db_path, lock_timeout=10, on_wait=lambda _msg, left: waits.append(left))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waits and waited > 0.5
    assert holder.returncode == 0
    report = load_batch(con, [article(3), article(4)], "run-2")
    assert report.added == 2
    con.close()
    con = connect(db_path, read_only=True)
    assert con.execute("select count(*) from articles").fetchone()[0] == 4
    assert con.execute(
        "select count(*) from crawl_events where reason = 'written by the holder'"
    ).fetchone()[0] == 1
    con.close()


# --- read-only access ---------------------------------------------------------------------------

def test_cli_sql_prints_csv_read_only(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    load_batch(con, [article(1), article(2, "src-kz")], "run-1")
    con.close()
    runner = CliRunner()
    result = runner.invoke(app, ["sql", "select source_id, count(*) as n from articles "
                                 "group by 1 order by 1", "--db", str(db_path), "--csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["source_id,n", "src-kz,1", "src-ru,1"]
    refused = runner.invoke(app, ["sql", "delete from articles", "--db", str(db_path)])
    assert refused.exit_code == 2
    check = connect(db_path, read_only=True)
    assert check.execute("select count(*) from articles").fetchone()[0] == 2
    check.close()


def test_a_read_only_connection_refuses_writes(
    con: duckdb.DuckDBPyConnection, db_path: Path
) -> None:
    load_batch(con, [article(1)], "run-1")
    con.close()
    reader = connect(db_path, read_only=True)
    with pytest.raises(duckdb.Error, match="read-only"):
        reader.execute("delete from articles")
    with pytest.raises(duckdb.Error, match="read-only"):
        load_batch(reader, [article(2)], "run-2")
    assert reader.execute("select count(*) from articles").fetchone()[0] == 1
    reader.close()


def test_read_only_open_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no database"):
        connect(tmp_path / "absent.duckdb", read_only=True)


# --- search -------------------------------------------------------------------------------------

SEARCH_BATCH = [
    article(11, "src-ru", lang="ru", title="Новые санкции против казахстанских компаний",
            text="Вашингтон ввёл новые санкции против трёх компаний. В Астане заявили, что "
                 "санкции не повлияют на торговлю с Россией."),
    article(12, "src-ru", lang="ru", title="Учения ОДКБ завершились",
            text="Совместные учения коллективных сил ОДКБ прошли в Беларуси. Ещё одна "
                 "тренировка пройдёт весной."),
    article(13, "src-kz", lang="kk", title="Қазақстан мен Ресей келісімге қол қойды",
            text="Қазақстан мен Ресей энергетика саласындағы ынтымақтастық туралы келісімге "
                 "қол қойды. Құжат бес жылға жасалды."),
    article(14, "src-kz", lang="kk", title="Ауа райы",
            text="Алматыда ертең қар жауады деп күтілуде, синоптиктер ескертті."),
    article(15, "src-fr", lang="fr", title="La sécurité collective en question",
            text="Les ministres de l'OTSC ont débattu de la sécurité régionale et d'une "
                 "déclaration commune à Moscou."),
    article(16, "src-fr", lang="en", title="Sanctions hit Kazakh traders",
            text="New sanctions were imposed on Kazakh companies trading electronics."),
]


def test_search_needs_an_index(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(SearchIndexMissing, match="rebuild_search_index"):
        search(con, "санкции")


def test_search_is_multilingual_and_stemmed(con: duckdb.DuckDBPyConnection) -> None:
    load_batch(con, SEARCH_BATCH, "run-1")
    counts = rebuild_search_index(con)
    assert counts == {"en": 1, "ru": 2, "kk": 2, "fr": 1, "other": 0}

    def ids(query: str, **kw: Any) -> list[str]:
        return [r["article_id"] for r in search(con, query, **kw)]

    a = {n: f"{n:032x}" for n in range(11, 17)}
    # Russian: the query's dative "санкциям" matches "санкции" through the Russian stemmer
    hits = search(con, "санкциям")
    assert [h["article_id"] for h in hits] == [a[11]]
    hit = hits[0]
    assert set(hit) == {"article_id", "source_id", "title", "url", "lang", "published_at",
                        "score", "bm25", "snippet"}
    assert hit["lang"] == "ru" and hit["score"] == pytest.approx(1.0)
    assert "санкции" in hit["snippet"]
    assert ids("ещё учения") == ids("еще учения") == [a[12]]  # ё folded
    # Kazakh: words with қ, ұ, і, ә are indexed (the default ignore pattern drops them all)
    assert ids("Қазақстан") == [a[13]]
    assert ids("ҚҰЖАТ") == [a[13]]
    assert ids("ынтымақтастық") == [a[13]]
    assert ids("синоптиктер ескертті") == [a[14]]
    # French: accents are folded both ways and the French stemmer applies
    assert ids("sécurité") == ids("securite") == ids("SÉCURITÉ") == [a[15]]
    assert ids("déclarations") == [a[15]]
    # English stemming; a query in two languages ranks each language's best match at 1.0
    assert ids("sanction", lang="en") == [a[16]]
    mixed = search(con, "санкции sanctions")
    assert {h["article_id"] for h in mixed} == {a[11], a[16]}
    assert all(h["score"] == pytest.approx(1.0) for h in mixed)
    assert ids("санкции", lang="en") == []
    assert ids("совершенно отсутствующее слово") == []
    assert search(con, "   ...  ") == []
    # conjunctive: every term must occur
    assert set(ids("санкции ОДКБ")) == {a[11], a[12]}
    assert ids("санкции ОДКБ", conjunctive=True) == []


def test_search_index_is_a_snapshot_and_read_only_search_works(
    con: duckdb.DuckDBPyConnection, db_path: Path
) -> None:
    load_batch(con, SEARCH_BATCH[:2], "run-1")
    rebuild_search_index(con)
    load_batch(con, SEARCH_BATCH[2:], "run-2")
    assert search(con, "Қазақстан") == []  # not indexed yet
    rebuild_search_index(con)
    assert len(search(con, "Қазақстан")) == 1
    con.close()
    reader = connect(db_path, read_only=True)  # loads the extension itself, no download
    assert [r["article_id"] for r in search(reader, "санкциям", limit=5)] == [f"{11:032x}"]
    reader.close()


# --- export -------------------------------------------------------------------------------------

def test_export_parquet_round_trips(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    batch = [article(i, "src-ru" if i % 2 else "src-kz",
                     published=f"2026-{9 + i % 3:02d}-0{1 + i % 5}T10:00:00+00:00")
             for i in range(1, 13)]
    batch.append(article(13, "src-fr", published=None))  # partitioned by fetched_at
    load_batch(con, batch, "run-1")
    register_model(con, {"model_id": "m1", "encoder_id": "e5", "labels": list(LABELS),
                         "card": {}}, "0" * 64)
    store_scores(con, "m1", [prediction(f"{i:032x}", "pro_russian", (0.6, 0.3, 0.1))
                             for i in range(1, 13)])
    out = tmp_path / "export" / "parquet"
    counts = export_parquet(con, out)
    expected = {name: con.execute(f"select count(*) from {name}").fetchone()[0]  # noqa: S608
                for name in counts}
    assert counts == expected and counts["articles"] == 13 and counts["article_stance"] == 12
    assert (out / "articles" / "source_id=src-fr" / "year=2026" / "month=11").is_dir()
    assert (out / "articles" / "source_id=src-ru" / "year=2026" / "month=10").is_dir()
    reader = duckdb.connect()
    back = reader.execute(
        f"select count(*), count(distinct article_id), count(distinct source_id) "  # noqa: S608
        f"from read_parquet('{out}/articles/**/*.parquet', hive_partitioning = true)"
    ).fetchone()
    assert back == (13, 13, 3)
    for name in ("article_stance", "daily_stance", "weekly_stance", "alerts", "source_health"):
        n = reader.execute(f"select count(*) from '{out}/{name}.parquet'").fetchone()[0]  # noqa: S608
        assert n == counts[name], name
    same = reader.execute(
        f"select sum(n_articles) from '{out}/daily_stance.parquet'"  # noqa: S608
    ).fetchone()[0]
    assert same == 12

    # a second export replaces the first whole and leaves no temporary directories behind
    load_batch(con, [article(40, "src-fr")], "run-2")
    assert export_parquet(con, out)["articles"] == 14
    assert sorted(p.name for p in out.parent.iterdir()) == ["parquet"]
    assert reader.execute(
        f"select count(*) from read_parquet('{out}/articles/**/*.parquet')"  # noqa: S608
    ).fetchone()[0] == 14
