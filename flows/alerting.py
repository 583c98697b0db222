"""Alerts in the warehouse: detect and store them, then deliver each exactly once.

Delivery goes through the ``alert_deliveries`` outbox: an alert is committed first (pending);
its email is composed, then the alerts are claimed (``sending``, with the claiming process and the
email's Message-ID) in their own transaction, sent, then marked ``sent``. A failed send goes back
to ``pending`` with its error and is retried next run. A claim whose process is gone (or, when
that cannot be told, older than ``STALE_CLAIM``) means a run died while sending: the message may
or may not have left, so it becomes ``uncertain`` and is reported rather than sent twice; its
Message-ID tells the analyst what to look for in the mailbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import duckdb

from flows import notify
from flows.charts import STANCE_NAMES, to_png, weekly_shares_chart
from flows.settings import Settings
from flows.shifts import LABELS, ArticleRow, GroupTest, ShiftConfig, Windows, detect
from warehouse.db import sql, transaction
from warehouse.runs import claim_abandoned, process_token

log = logging.getLogger("cstowatch.alerts")
STALE_CLAIM = timedelta(minutes=30)
EVIDENCE_ARTICLES = 5
COUNTRY_NAMES = {
    "KZ": "Kazakhstan",
    "RU": "Russia",
    "FR": "France",
    "GB": "United Kingdom",
    "US": "United States",
    "CZ": "Czechia",
    "DE": "Germany",
    "BY": "Belarus",
}
LANGUAGE_NAMES = {"en": "English", "ru": "Russian", "kk": "Kazakh", "fr": "French"}
AFFILIATION_NAMES = {
    "state": "state media",
    "independent": "independent outlets",
    "international": "international outlets",
    "official": "official sources",
}


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    error: str | None = None
    paths: list[str] = field(default_factory=list)


def group_label(con: duckdb.DuckDBPyConnection, group_type: str, value: str) -> str:
    if group_type == "outlet":
        row = con.execute("select name from sources where source_id = ?", [value]).fetchone()
        return row[0] if row else value
    if group_type == "country":
        return f"{COUNTRY_NAMES.get(value, value)} outlets"
    if group_type == "language":
        return f"{LANGUAGE_NAMES.get(value, value)}-language coverage"
    if group_type == "affiliation":
        return AFFILIATION_NAMES.get(value, value)
    return "all outlets"


def load_rows(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[ArticleRow]:
    result = con.execute(sql("stance_rows"), {"since": since, "until": until}).fetchall()
    return [
        ArticleRow(r[0], r[1], r[2], r[3], r[4] or "other", r[5], (r[6], r[7], r[8]))
        for r in result
    ]


def evidence_for(
    con: duckdb.DuckDBPyConnection, test: GroupTest, windows: Windows
) -> list[dict[str, Any]]:
    """The articles that contributed most: highest p(direction) above the baseline share."""
    rows = con.execute(
        sql("group_articles"),
        {
            "since": windows.window_start,
            "until": windows.window_end,
            "group_type": test.group_type,
            "group_value": test.group_value,
        },
    ).fetchall()
    if test.kind == "coverage" or test.direction not in LABELS:
        return []
    k = LABELS.index(test.direction)
    base = test.shares_before.get(test.direction, 0.0)
    scored = sorted(rows, key=lambda r: (r[7 + k] - base, r[0]), reverse=True)
    out = []
    for r in scored[:EVIDENCE_ARTICLES]:
        passages = json.loads(r[10]) if r[10] else []
        best = max(passages, key=lambda p: p["probs"][test.direction], default=None)
        out.append(
            {
                "article_id": r[0],
                "url": r[1],
                "title": r[2],
                "outlet": r[3],
                "date": str(r[4]),
                "lang": r[5],
                "label": test.direction,
                "p": float(r[7 + k]),
                "contribution": round(float(r[7 + k] - base), 4),
                "passage": best["text"] if best else "",
            }
        )
    return out


def alert_id(kind: str, group_type: str, group_value: str, window_end: date, direction: str) -> str:
    key = f"{kind}|{group_type}|{group_value}|{window_end.isoformat()}|{direction}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def detect_and_store(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    cfg: ShiftConfig,
    settings: Settings,
    model_id: str | None,
) -> tuple[list[GroupTest], list[str]]:
    """Run the detector for ``as_of`` and store new alerts with a pending delivery."""
    windows = Windows.ending(as_of, cfg)
    since = windows.baseline_start - timedelta(days=cfg.consecutive_days)
    tests = detect(load_rows(con, since, as_of), as_of, cfg)
    now = datetime.now(UTC)
    # the cooldown in data days: 24 h = an alert on the previous day keeps the group quiet today
    cooldown_from = as_of - timedelta(days=max(1, round(settings.cooldown_hours / 24)))
    new_ids: list[str] = []
    with transaction(con):
        for test in tests:
            if not test.alert:
                continue
            aid = alert_id(
                test.kind, test.group_type, test.group_value, as_of, test.direction or ""
            )
            recent = con.execute(
                sql("alert_recent"),
                {
                    "group_type": test.group_type,
                    "group_value": test.group_value,
                    "direction": test.direction or "",
                    "alert_id": aid,
                    "cooldown_from": cooldown_from,
                    "as_of": as_of,
                },
            ).fetchone()
            if recent:
                test.reason = "already alerted (cooldown)" if recent[0] != aid else "already stored"
                continue
            con.execute(
                sql("insert_alert"),
                {
                    "alert_id": aid,
                    "kind": test.kind,
                    "group_type": test.group_type,
                    "group_value": test.group_value,
                    "group_label": group_label(con, test.group_type, test.group_value),
                    "direction": test.direction,
                    "window_start": windows.window_start,
                    "window_end": windows.window_end,
                    "baseline_start": windows.baseline_start,
                    "baseline_end": windows.baseline_end,
                    "n_window": test.n_window,
                    "n_baseline": test.n_baseline,
                    "shares_before": json.dumps(test.shares_before),
                    "shares_after": json.dumps(test.shares_after),
                    "ci_before": json.dumps(test.ci_before),
                    "ci_after": json.dumps(test.ci_after),
                    "effect_pp": round(100 * test.effect, 2),
                    "p_value": test.p_value,
                    "q_value": test.q_value,
                    "severity": test.severity,
                    "evidence": json.dumps(evidence_for(con, test, windows), ensure_ascii=False),
                    "model_id": model_id,
                    "created_at": now,
                    "dispersion": test.dispersion,
                },
            )
            con.execute(
                "insert into alert_deliveries (alert_id, channel, status, attempts, updated_at) "
                "values (?, ?, 'pending', 0, ?)",
                [aid, "smtp" if settings.smtp_host else "outbox", now],
            )
            new_ids.append(aid)
    return tests, new_ids


def _alert_view(row: dict[str, Any], cfg: ShiftConfig) -> dict[str, Any]:
    view = dict(row)
    for key in ("shares_before", "shares_after", "ci_before", "ci_after", "evidence"):
        view[key] = json.loads(row[key]) if row[key] else ({} if key != "evidence" else [])
    view["window_days"], view["baseline_days"] = cfg.window_days, cfg.baseline_days
    view["direction_name"] = STANCE_NAMES.get(row["direction"], row["direction"])
    return view


def group_weekly(
    con: duckdb.DuckDBPyConnection, alert: dict[str, Any], weeks: int = 12
) -> list[dict[str, Any]]:
    """The alert group's weekly counts and shares over the ``weeks`` weeks ending with its window
    (the alert email's chart and the report's alert charts)."""
    since = alert["window_end"] - timedelta(weeks=weeks) + timedelta(days=1)
    rows = con.execute(
        sql("group_weekly"),
        {
            "since": since,
            "until": alert["window_end"],
            "group_type": alert["group_type"],
            "group_value": alert["group_value"],
        },
    ).fetchall()
    return [
        {
            "week": w,
            "n_articles": int(n),
            "pro_russian": float(pr or 0.0),
            "neutral": float(ne or 0.0),
            "pro_kazakh": float(pk or 0.0),
        }
        for w, n, pr, ne, pk in rows
    ]


def _chart(con: duckdb.DuckDBPyConnection, alert: dict[str, Any]) -> bytes | None:
    rows = group_weekly(con, alert)
    if not rows:
        return None
    chart = weekly_shares_chart(
        rows,
        alert["window_start"],
        alert["window_end"],
        title=f"{alert['group_label']}: raw classifier output, weekly mean probabilities",
    )
    return to_png(chart)


_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def deliver_pending(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    cfg: ShiftConfig,
) -> DeliveryReport:
    """Send every pending alert, batched into one email, exactly once."""
    report = DeliveryReport()
    now = datetime.now(UTC)
    with transaction(con):
        claims = con.execute(
            "select alert_id, claimed_by, updated_at from alert_deliveries where status = 'sending'"
        ).fetchall()
        dead = [
            aid
            for aid, owner, updated in claims
            if claim_abandoned(owner, updated, now, STALE_CLAIM)
        ]
        if dead:
            con.execute(sql("deliveries_uncertain"), {"now": now, "ids": dead})
        report.uncertain = dead
    pending = [
        r[0]
        for r in con.execute(
            "select alert_id from alert_deliveries where status = 'pending' order by alert_id"
        ).fetchall()
    ]
    if not pending:
        return report
    # compose first: a run killed while rendering charts leaves its alerts pending, not uncertain
    msg = _compose(con, pending, settings, cfg)
    with transaction(con):  # this connection is the file's only writer: nothing can race it
        claimed = con.execute(
            sql("deliveries_claim"),
            {
                "now": datetime.now(UTC),
                "ids": pending,
                "owner": process_token(),
                "message_id": msg["Message-ID"],
            },
        ).fetchall()
    ids = sorted(r[0] for r in claimed)
    try:
        if settings.smtp_host:
            notify.send_smtp(msg, settings)
            channel = "smtp"
        else:
            report.paths.append(str(notify.write_outbox(msg, settings.outbox)))
            channel = "outbox"
    except (notify.DeliveryError, OSError) as exc:
        report.error = str(exc)
        report.pending = ids
        with transaction(con):
            con.execute(
                sql("deliveries_release"),
                {"error": str(exc)[:500], "now": datetime.now(UTC), "ids": ids},
            )
        log.warning("alert delivery failed, %d alert(s) stay pending: %s", len(ids), exc)
        return report
    with transaction(con):
        con.execute(
            sql("deliveries_sent"),
            {
                "channel": channel,
                "message_id": msg["Message-ID"],
                "now": datetime.now(UTC),
                "ids": ids,
            },
        )
    report.sent = ids
    return report


def _compose(
    con: duckdb.DuckDBPyConnection, ids: list[str], settings: Settings, cfg: ShiftConfig
) -> EmailMessage:
    """The one email that carries the alerts ``ids``, most important first."""
    cursor = con.execute(
        "select * from alerts where alert_id in (select unnest(?::varchar[]))", [ids]
    )
    columns = [d[0] for d in cursor.description]
    alerts = [_alert_view(dict(zip(columns, r, strict=True)), cfg) for r in cursor.fetchall()]
    alerts.sort(
        key=lambda a: (
            a["kind"] != "stance",
            _SEVERITY_ORDER.get(a["severity"], 3),
            -abs(a["effect_pp"]),
            a["group_label"],
        )
    )
    charts: dict[str, bytes] = {}
    for alert in alerts:
        try:
            png = _chart(con, alert)
        except Exception as exc:  # a chart is nice to have; the alert still goes out
            log.warning("chart for alert %s failed: %s", alert["alert_id"], exc)
            png = None
        if png:
            charts[alert["alert_id"]] = png
    msg = notify.compose(
        alerts,
        charts,
        settings.alert_from,
        settings.alert_to,
        correction=(cfg.confusion_source or "written") if cfg.confusion is not None else None,
    )
    return msg
