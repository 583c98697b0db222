"""Alert emails: compose (pure) and deliver (SMTP or .eml files in the outbox).

Everything that came from the web (titles, passages, outlet names, URLs) is HTML-escaped by
Jinja2's autoescape. Passwords are never logged or stored.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, PackageLoader, select_autoescape

from estimation.mixture import format_share
from flows.charts import STANCE_COLOURS, STANCE_NAMES
from flows.settings import Settings
from flows.shifts import LABELS

GROUP_NOUNS = {
    "outlet": "",
    "country": "outlets in ",
    "language": "coverage in ",
    "affiliation": "",
    "all": "",
}


class DeliveryError(RuntimeError):
    """The message could not be handed to the SMTP server; the alert stays pending."""


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("flows", "templates"),
        autoescape=select_autoescape(["html", "html.jinja"]),
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["share"] = format_share
    return env


def headline(alert: dict[str, Any]) -> str:
    if alert["kind"] == "coverage":
        return (
            f"Coverage collapse: {alert['group_label']}, volume "
            f"-{alert['effect_pp']:.0f}% ({alert['window_days']} d vs "
            f"{alert['baseline_days']} d)"
        )
    sign = "+" if alert["effect_pp"] >= 0 else ""
    return (
        f"Stance shift: {alert['group_label']}, {STANCE_NAMES[alert['direction']]} "
        f"{sign}{alert['effect_pp']:.0f} pp ({alert['window_days']} d vs "
        f"{alert['baseline_days']} d)"
    )


def subject_for(alerts: list[dict[str, Any]]) -> str:
    top = alerts[0]
    more = f" (+{len(alerts) - 1} related)" if len(alerts) > 1 else ""
    return f"[cstowatch] {headline(top)}{more}"


def message_id_for(alert_ids: list[str]) -> str:
    """Deterministic Message-ID: the same alerts always make the same message."""
    digest = hashlib.sha256("|".join(sorted(alert_ids)).encode()).hexdigest()[:24]
    return f"<cstowatch-{digest}@cstowatch.local>"


def compose(
    alerts: list[dict[str, Any]],
    charts: dict[str, bytes],
    sender: str,
    recipients: list[str],
    correction: str | None = None,
) -> EmailMessage:
    """A multipart email (text + HTML with inline PNG charts) for a batch of alerts.

    ``alerts`` are ordered most important first; ``charts`` maps alert_id to PNG bytes.
    ``correction`` says where the confusion matrix that corrected the shares was measured
    (``real`` news or ``written`` passages), or None when the shares are not corrected.
    """
    env = _env()
    views = []
    for alert in alerts:
        view = dict(alert, headline=headline(alert))
        view["chart_cid"] = (
            make_msgid(domain="cstowatch.local")[1:-1] if alert["alert_id"] in charts else None
        )
        views.append(view)
    context = {
        "alerts": views,
        "labels": LABELS,
        "names": STANCE_NAMES,
        "colours": STANCE_COLOURS,
        "correction": correction,
    }
    subject = subject_for(views)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id_for([a["alert_id"] for a in alerts])
    msg["X-Cstowatch-Alerts"] = ",".join(a["alert_id"] for a in alerts)
    msg.set_content(env.get_template("alert.txt.jinja").render(**context))
    msg.add_alternative(
        env.get_template("alert.html.jinja").render(subject=subject, **context), subtype="html"
    )
    html_part = cast(EmailMessage, msg.get_payload()[1])  # type: ignore[index]
    for view in views:
        if view["chart_cid"]:
            html_part.add_related(
                charts[view["alert_id"]],
                maintype="image",
                subtype="png",
                cid=f"<{view['chart_cid']}>",
                filename=f"stance-{view['alert_id'][:8]}.png",
            )
    return msg


def write_outbox(msg: EmailMessage, outbox: Path) -> Path:
    """Write the message as an .eml file named after its Message-ID (so a resend overwrites)."""
    outbox.mkdir(parents=True, exist_ok=True)
    name = msg["Message-ID"].strip("<>").split("@")[0]
    path = outbox / f"{name}.eml"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(msg))
    tmp.replace(path)
    return path


def smtp_password(settings: Settings) -> str | None:
    """The SMTP password: ``CSTOWATCH_SMTP_PASSWORD``, else the Prefect Secret block named by
    ``CSTOWATCH_SMTP_PASSWORD_BLOCK``, else none. Errors name the block, never the value."""
    if settings.smtp_password is not None:
        return settings.smtp_password.get_secret_value()
    if not settings.smtp_password_block:
        return None
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(settings.smtp_password_block)
    except (ValueError, RuntimeError, OSError) as exc:
        raise DeliveryError(
            f"SMTP password: the Prefect Secret block {settings.smtp_password_block!r} could not "
            f"be loaded ({exc.__class__.__name__})"
        ) from None
    return str(secret.get())  # type: ignore[union-attr]


def send_smtp(msg: EmailMessage, settings: Settings) -> None:
    host = settings.smtp_host
    assert host, "send_smtp needs CSTOWATCH_SMTP_HOST"
    password = smtp_password(settings) if settings.smtp_user else None
    try:
        if settings.smtp_ssl:
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=ssl.create_default_context(),
            )
        else:
            server = smtplib.SMTP(host, settings.smtp_port, timeout=settings.smtp_timeout)
        with server:
            if settings.smtp_starttls and not settings.smtp_ssl:
                server.starttls(context=ssl.create_default_context())
            if settings.smtp_user and password:
                server.login(settings.smtp_user, password)
            server.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        # str(exc) of smtplib errors never contains the password; keep only class and text
        raise DeliveryError(
            f"SMTP {host}:{settings.smtp_port}: {exc.__class__.__name__}: {exc}"
        ) from exc


def compose_digest(
    groups: list[dict[str, Any]],
    as_of: Any,
    window_days: int,
    baseline_days: int,
    sender: str,
    recipients: list[str],
) -> EmailMessage:
    """The optional daily digest: every group's stance mix, sent whether or not anything moved."""
    env = _env()
    total = sum(g["n_window"] for g in groups if g["group_type"] == "all")
    subject = f"[cstowatch] Daily digest {as_of}: {total} relevant articles in {window_days} d"
    context = {
        "groups": groups,
        "labels": LABELS,
        "names": STANCE_NAMES,
        "colours": STANCE_COLOURS,
        "as_of": as_of,
        "window_days": window_days,
        "baseline_days": baseline_days,
        "subject": subject,
    }
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<cstowatch-digest-{as_of}@cstowatch.local>"
    msg.set_content(env.get_template("digest.txt.jinja").render(**context))
    msg.add_alternative(env.get_template("digest.html.jinja").render(**context), subtype="html")
    return msg


def deliver(msg: EmailMessage, settings: Settings) -> str | None:
    """Send through SMTP when a host is configured, else write to the outbox. Returns the path."""
    if settings.smtp_host:
        send_smtp(msg, settings)
        return None
    return str(write_outbox(msg, settings.outbox))
