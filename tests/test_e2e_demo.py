"""End to end: the monitor flow on the bundled demo web, over real HTTP, under Prefect."""

from __future__ import annotations

import email
from datetime import date
from email import policy
from pathlib import Path

import duckdb
import pytest

from flows.demo import DEMO_DIR, demo_sources
from flows.static_site import StaticSite

pytestmark = pytest.mark.slow
AS_OF = date(2026, 11, 29)


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            name: con.execute(f"select count(*) from {name}").fetchone()[0]  # noqa: S608
            for name in (
                "articles",
                "article_stance",
                "daily_stance",
                "alerts",
                "stance_predictions",
                "passages",
                "alert_deliveries",
                "feed_items",
            )
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prefect_harness):  # type: ignore[no-untyped-def]
    import os

    from flows.monitor import monitor
    from flows.settings import get_settings

    tmp = tmp_path_factory.mktemp("demo")
    saved = {k: os.environ.get(k) for k in ("CSTOWATCH_OUTBOX", "CSTOWATCH_SMTP_HOST")}
    os.environ["CSTOWATCH_OUTBOX"] = str(tmp / "outbox")
    os.environ.pop("CSTOWATCH_SMTP_HOST", None)
    get_settings.cache_clear()
    db = tmp / "demo.duckdb"
    try:
        with StaticSite(DEMO_DIR / "site") as site:
            sources = demo_sources(site.base, tmp / "sources.yaml")
            first = monitor(sources=str(sources), db=str(db), as_of=AS_OF, force_feeds=True)
            after_first = counts(db)
            hits_first = len(site.hits)
            second = monitor(sources=str(sources), db=str(db), as_of=AS_OF, force_feeds=True)
            hits_second = site.hits[hits_first:]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
    return {
        "tmp": tmp,
        "db": db,
        "first": first,
        "second": second,
        "after_first": after_first,
        "after_second": counts(db),
        "hits_second": hits_second,
    }


def test_first_run_fills_every_analyst_object(demo_run) -> None:  # type: ignore[no-untyped-def]
    c = demo_run["after_first"]
    articles = sum(len(p.read_text().splitlines()) for p in (DEMO_DIR / "content").glob("*.jsonl"))
    # every demo article is stored once; the soft 404 and the off-site link are not
    assert c["articles"] == articles
    assert c["article_stance"] == articles
    assert c["daily_stance"] > 50
    assert c["alerts"] >= 1
    assert demo_run["first"]["status"] == "ok"
    sources = {r["source_id"]: r for r in demo_run["first"]["sources"]}
    assert sources["csto-press"]["non_articles"] == 1  # the soft 404 in the listing
    assert sources["csto-press"]["offsite_skipped"] >= 1


def test_relevance_gate_drops_off_topic_articles(demo_run) -> None:  # type: ignore[no-untyped-def]
    con = duckdb.connect(str(demo_run["db"]), read_only=True)
    relevant, total = con.execute(
        "select count(*) filter (where relevant), count(*) from article_stance"
    ).fetchone()
    con.close()
    assert 0.6 * total < relevant < total


def test_planted_shift_fires_one_explained_alert_email(demo_run) -> None:  # type: ignore[no-untyped-def]
    con = duckdb.connect(str(demo_run["db"]), read_only=True)
    alerts = con.execute(
        "select group_type, group_value, direction, effect_pp, q_value, evidence, kind "
        "from alerts order by effect_pp desc"
    ).fetchall()
    con.close()
    kz = [a for a in alerts if a[0] == "country" and a[1] == "KZ"]
    assert kz and kz[0][2] == "pro_russian" and kz[0][3] >= 10 and kz[0][4] <= 0.05
    assert all(a[6] == "stance" for a in alerts)
    emails = sorted((demo_run["tmp"] / "outbox").glob("*.eml"))
    assert len(emails) == 1
    msg = email.message_from_bytes(emails[0].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("[cstowatch] Stance shift: Kazakhstan outlets, pro-Russian +")
    html = msg.get_body(("html",)).get_content()
    assert "Articles that moved it most" in html
    assert any(p.get_content_type() == "image/png" for p in msg.walk())


def test_second_run_duplicates_nothing_and_refetches_no_article(demo_run) -> None:  # type: ignore[no-untyped-def]
    assert demo_run["after_second"] == demo_run["after_first"]
    article_hits = [h for h in demo_run["hits_second"] if "/2026/" in h]
    assert article_hits == []
    for row in demo_run["second"]["sources"]:
        assert row["articles_added"] == 0
    assert demo_run["second"]["notify"]["sent"] == []
    assert len(list((demo_run["tmp"] / "outbox").glob("*.eml"))) == 1
    for row in demo_run["second"]["sources"]:
        # each source says why nothing was fetched: unchanged feeds, or known URLs skipped
        unchanged = row["feeds_not_modified"] + row["feeds_unchanged"]
        assert row["pages_fetched"] == 0, row
        assert (row["feeds_polled"] > 0 and unchanged == row["feeds_polled"]) or row[
            "known_skipped"
        ] > 0, row


def test_cooldown_keeps_an_alerted_group_quiet_the_next_day(demo_run, settings) -> None:  # type: ignore[no-untyped-def]
    import shutil
    from datetime import timedelta

    from flows.alerting import detect_and_store
    from flows.shifts import ShiftConfig
    from warehouse.db import connect

    copy = demo_run["tmp"] / "cooldown.duckdb"
    shutil.copy(demo_run["db"], copy)
    con = connect(copy)
    try:
        # This tests the cooldown, not the detector: the next day's window still holds the
        # planted shift (about +16 pp for Kazakhstan outlets with the real-news model) but at
        # q near 0.06, so the FDR level is relaxed to let the group test as an alert again.
        cfg = ShiftConfig(fdr=0.2)
        tests, new = detect_and_store(con, AS_OF + timedelta(days=1), cfg, settings, None)
        kz = next(t for t in tests if t.group_type == "country" and t.group_value == "KZ")
        assert kz.alert and kz.reason == "already alerted (cooldown)"
        assert new == []
        # a day later the cooldown (24 h = one data day) no longer holds the group back
        later, _ = detect_and_store(con, AS_OF + timedelta(days=2), cfg, settings, None)
        kz_later = next(t for t in later if t.group_type == "country" and t.group_value == "KZ")
        assert kz_later.reason != "already alerted (cooldown)"
    finally:
        con.close()
