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
    assert stages.digest(db, UNTIL, settings)["path"] == result["path"]  # same day: same file
