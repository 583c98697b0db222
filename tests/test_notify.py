"""Alert emails: composition, escaping, and exactly-once delivery through a real SMTP server."""

from __future__ import annotations

import email
import re
import socket
import time
from datetime import date
from email import policy

import pytest
from aiosmtpd.controller import Controller

from flows.notify import compose, write_outbox

HOSTILE = '<script>alert("x")</script><b>Lavrov</b>'


def alert(**overrides):  # type: ignore[no-untyped-def]
    base = {
        "alert_id": "a" * 24,
        "kind": "stance",
        "group_type": "country",
        "group_value": "KZ",
        "group_label": "Kazakhstan outlets",
        "direction": "pro_russian",
        "window_start": date(2026, 11, 23),
        "window_end": date(2026, 11, 29),
        "baseline_start": date(2026, 10, 26),
        "baseline_end": date(2026, 11, 22),
        "n_window": 40,
        "n_baseline": 48,
        "effect_pp": 31.5,
        "p_value": 1e-5,
        "q_value": 2e-5,
        "severity": "high",
        "window_days": 7,
        "baseline_days": 28,
        "shares_before": {"pro_russian": 0.2, "neutral": 0.4, "pro_kazakh": 0.4},
        "shares_after": {"pro_russian": 0.515, "neutral": 0.3, "pro_kazakh": 0.185},
        "ci_before": {},
        "ci_after": {"pro_russian": [0.4, 0.6], "neutral": [0.2, 0.4], "pro_kazakh": [0.1, 0.3]},
        "evidence": [
            {
                "url": "http://127.0.0.1/a?x=1&y=<2>",
                "title": HOSTILE,
                "outlet": "Dala <i>",
                "date": "2026-11-25",
                "passage": "Союзники <img src=x onerror=1> помогли.",
                "label": "pro_russian",
                "p": 0.91,
            }
        ],
    }
    base.update(overrides)
    return base


def test_compose_builds_multipart_with_chart_and_subject() -> None:
    msg = compose(
        [alert()],
        {"a" * 24: b"\x89PNG\r\n\x1a\nfake"},
        "cw <cw@localhost>",
        ["one@example.org", "two@example.org"],
    )
    assert msg["Subject"] == (
        "[cstowatch] Stance shift: Kazakhstan outlets, pro-Russian +32 pp (7 d vs 28 d)"
    )
    assert msg["To"] == "one@example.org, two@example.org"
    parsed = email.message_from_bytes(bytes(msg), policy=policy.default)
    types = [part.get_content_type() for part in parsed.walk()]
    assert "text/plain" in types and "text/html" in types and "image/png" in types
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    image = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
    assert f"cid:{image['Content-ID'].strip('<>')}" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "Dala <i>" not in html
    assert "&amp;y=&lt;2&gt;" in html
    assert HOSTILE in text  # the plain-text part carries the title as it is
    assert "51.5%" in text and "20.0%" in text
    assert "Dispersion phi" not in text  # an alert without it says nothing of it
    with_phi = compose([alert(dispersion=0.62)], {}, "a@b", ["c@d"])
    parsed = email.message_from_bytes(bytes(with_phi), policy=policy.default)
    assert "Dispersion phi = 0.62: how much" in parsed.get_body(("plain",)).get_content()
    assert "&phi; = 0.62" in parsed.get_body(("html",)).get_content()


def test_edge_shares_and_what_the_numbers_are_are_spelled_out() -> None:
    """A share estimated at 0 reads "< 1%" with its interval, never "0.0%"; the text says the
    table is the corrected mix and the chart raw output, and which dev split corrected it."""
    edge = alert(
        shares_after={"pro_russian": 0.9981, "neutral": 0.0019, "pro_kazakh": 0.0},
        ci_after={"pro_russian": [0.93, 1.0], "neutral": [0.0, 0.05], "pro_kazakh": [0.0, 0.046]},
    )
    for correction in ("real", "written", None):
        parsed = email.message_from_bytes(
            bytes(compose([edge], {}, "a@b", ["c@d"], correction=correction)),
            policy=policy.default,
        )
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        for part in (text, html):
            assert not re.search(r"(?<![\d.\[;-])0\.0%", part), part  # a bare 0.0% share
            assert "< 1%" in part or "&lt; 1%" in part
            assert "> 99%" in part or "&gt; 99%" in part
        assert "0.0-4.6%" in text and "raw classifier output" in text
        assert ("Estimated true mix" in text) == (correction is not None)
        assert ("measured on real news" in text) == (correction == "real")
        assert ("comes from our written passages" in text) == (correction == "written")
        assert ("comes from our written passages" in html) == (correction == "written")


def test_same_alerts_make_the_same_message_id() -> None:
    one = compose([alert()], {}, "a@b", ["c@d"])
    two = compose([alert()], {}, "a@b", ["c@d"])
    other = compose([alert(alert_id="b" * 24)], {}, "a@b", ["c@d"])
    assert one["Message-ID"] == two["Message-ID"] != other["Message-ID"]


def test_outbox_file_is_named_after_the_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    msg = compose([alert()], {}, "a@b", ["c@d"])
    path = write_outbox(msg, tmp_path)
    assert path.exists() and path.suffix == ".eml"
    assert write_outbox(msg, tmp_path) == path  # a resend overwrites, never duplicates
    assert len(list(tmp_path.iterdir())) == 1


class Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def smtp_port() -> int:
    return free_port()


def start_smtp(port: int) -> tuple[Controller, Collector]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler


def test_delivery_is_exactly_once_through_an_smtp_outage(
    tmp_path,
    monkeypatch,
    smtp_port,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    """SMTP down: the alert stays pending. Back up: delivered once. Next run: nothing new."""
    from flows.alerting import deliver_pending
    from flows.settings import get_settings
    from flows.shifts import ShiftConfig
    from warehouse.db import connect

    monkeypatch.setenv("CSTOWATCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CSTOWATCH_SMTP_PORT", str(smtp_port))
    monkeypatch.setenv("CSTOWATCH_SMTP_USER", "cw")
    monkeypatch.setenv("CSTOWATCH_SMTP_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("CSTOWATCH_SMTP_TIMEOUT", "3")
    get_settings.cache_clear()
    cfg = get_settings()
    con = connect(tmp_path / "a.duckdb")
    import json

    a = alert()
    con.execute(
        "insert into alerts values (?, 'stance', 'country', 'KZ', 'Kazakhstan outlets', "
        "'pro_russian', ?, ?, ?, ?, 40, 48, ?, ?, ?, ?, 31.5, 1e-5, 2e-5, 'high', ?, null, now(), "
        "null)",
        [
            a["alert_id"],
            a["window_start"],
            a["window_end"],
            a["baseline_start"],
            a["baseline_end"],
            json.dumps(a["shares_before"]),
            json.dumps(a["shares_after"]),
            json.dumps({}),
            json.dumps(a["ci_after"]),
            json.dumps(a["evidence"]),
        ],
    )
    con.execute(
        "insert into alert_deliveries (alert_id, channel, status, attempts, updated_at) "
        "values (?, 'smtp', 'pending', 0, now())",
        [a["alert_id"]],
    )

    down = deliver_pending(con, cfg, ShiftConfig())
    assert down.error and down.pending == [a["alert_id"]]
    status, attempts, error = con.execute(
        "select status, attempts, last_error from alert_deliveries"
    ).fetchone()
    assert status == "pending" and attempts == 1 and error
    assert "hunter2" not in error

    controller, handler = start_smtp(smtp_port)
    try:
        # aiosmtpd without TLS refuses AUTH; log in only where the server offers it
        monkeypatch.delenv("CSTOWATCH_SMTP_USER")
        monkeypatch.delenv("CSTOWATCH_SMTP_PASSWORD")
        get_settings.cache_clear()
        up = deliver_pending(con, get_settings(), ShiftConfig())
        again = deliver_pending(con, get_settings(), ShiftConfig())
        time.sleep(0.2)
    finally:
        controller.stop()
    assert up.sent == [a["alert_id"]] and up.error is None
    assert again.sent == [] and len(handler.messages) == 1
    delivered = email.message_from_bytes(handler.messages[0], policy=policy.default)
    assert delivered["Subject"].startswith("[cstowatch] Stance shift: Kazakhstan outlets")
    assert con.execute("select status, attempts from alert_deliveries").fetchone() == ("sent", 2)
    con.close()


class Authenticator:
    """aiosmtpd's authenticator callback: accepts one user and password, records attempts."""

    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())
        self.attempts: list[bytes] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        self.attempts.append(auth_data.login)
        ok = (auth_data.login, auth_data.password) == self.expected
        return AuthResult(success=ok, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_the_password_from_a_prefect_secret_block(
    prefect_harness, smtp_port, monkeypatch, settings  # type: ignore[no-untyped-def]
) -> None:
    """CSTOWATCH_SMTP_PASSWORD_BLOCK names a Secret block; a wrong or missing secret is a
    DeliveryError that names the block and never carries a password."""
    from prefect.blocks.system import Secret

    from flows.notify import DeliveryError, send_smtp
    from flows.settings import get_settings

    Secret(value="block-pass-7q").save("cw-smtp-test", overwrite=True)
    handler = Collector()
    auth = Authenticator("cw", "block-pass-7q")
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port,
                            authenticator=auth, auth_required=True, auth_require_tls=False)
    controller.start()
    msg = compose([alert()], {}, "cstowatch <cw@localhost>", ["analyst@localhost"])
    try:
        for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
                           "SMTP_USER": "cw", "SMTP_TIMEOUT": "5",
                           "SMTP_PASSWORD_BLOCK": "cw-smtp-test"}.items():
            monkeypatch.setenv(f"CSTOWATCH_{key}", value)
        get_settings.cache_clear()
        send_smtp(msg, get_settings())
        assert len(handler.messages) == 1 and auth.attempts == [b"cw"]

        Secret(value="stale-pass-3k").save("cw-smtp-test", overwrite=True)
        with pytest.raises(DeliveryError) as wrong:
            send_smtp(msg, get_settings())
        assert "SMTPAuthenticationError" in str(wrong.value)
        assert "stale-pass" not in str(wrong.value) and "block-pass" not in str(wrong.value)

        monkeypatch.setenv("CSTOWATCH_SMTP_PASSWORD_BLOCK", "no-such-block")
        get_settings.cache_clear()
        with pytest.raises(DeliveryError, match="'no-such-block' could not be loaded"):
            send_smtp(msg, get_settings())
    finally:
        controller.stop()
    assert len(handler.messages) == 1
