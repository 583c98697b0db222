"""The daily digest: every group's stance mix, window vs baseline, as an email in the outbox."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from report_fixtures import UNTIL, build_report_db

from flows import stages


def test_digest_lists_every_group_with_its_mix(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    db = build_report_db(tmp_path / "digest.duckdb")
    result = stages.digest(db, UNTIL, settings)
    assert result["path"] and Path(result["path"]).exists()
    msg = email.message_from_bytes(Path(result["path"]).read_bytes(), policy=policy.default)
    # relevant articles 2026-11-23..29 in the fixture: a1, a2, b1, b2, c1
    assert msg["Subject"] == "[cstowatch] Daily digest 2026-11-29: 5 relevant articles in 7 d"
    text = msg.get_body(("plain",)).get_content()
    lines = {line.split("  n=")[0].strip(): line for line in text.splitlines() if "  n=" in line}
    assert {"all outlets", "Kazakhstan outlets", "Russia outlets", "Kaz One"} <= set(lines)
    # Kaz One in the window: a1 (.1 .2 .7) and a2 (.3 .5 .2) -> pro-Kazakh 45%
    assert "n=   2" in lines["Kaz One"] and "pro-Kazakh  45%" in lines["Kaz One"]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html
    again = stages.digest(db, UNTIL, settings)  # the same day: not sent twice
    assert again["path"] is None and "already sent" in again["skipped"]
    assert stages.digest(db, UNTIL, settings, force=True)["path"] == result["path"]


def test_digest_goes_out_once_through_an_smtp_outage(
    tmp_path: Path, settings, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    """SMTP down: the day's digest is recorded as failed and the error raised; back up: it is
    sent; later runs that day skip it. A claim a crashed run left behind is never resent."""
    from datetime import UTC, datetime, timedelta

    import pytest
    from test_notify import free_port, start_smtp

    from flows.notify import DeliveryError
    from flows.settings import get_settings
    from warehouse.db import connect

    db = build_report_db(tmp_path / "digest.duckdb")
    port = free_port()
    monkeypatch.setenv("CSTOWATCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CSTOWATCH_SMTP_PORT", str(port))
    monkeypatch.setenv("CSTOWATCH_SMTP_TIMEOUT", "3")
    get_settings.cache_clear()
    cfg = get_settings()

    def state(day=UNTIL):  # type: ignore[no-untyped-def]
        con = connect(db)
        try:
            return con.execute(
                "select status, attempts from digests where as_of = ?", [day]
            ).fetchone()
        finally:
            con.close()

    with pytest.raises(DeliveryError):
        stages.digest(db, UNTIL, cfg)
    assert state() == ("failed", 1)
    controller, handler = start_smtp(port)
    try:
        sent = stages.digest(db, UNTIL, cfg)
        skipped = stages.digest(db, UNTIL, cfg)
    finally:
        controller.stop()
    assert sent["skipped"] is None and sent["groups"] > 0
    assert "already sent" in skipped["skipped"]
    assert len(handler.messages) == 1 and state() == ("sent", 2)

    day = UNTIL - timedelta(days=1)
    con = connect(db)
    try:
        con.execute(
            "insert into digests (as_of, status, attempts, updated_at) values (?, 'sending', 1, ?)",
            [day, datetime.now(UTC) - timedelta(hours=2)],
        )
    finally:
        con.close()
    lost = stages.digest(db, day, cfg)
    assert "stopped before recording" in lost["skipped"] and state(day) == ("sending", 1)
