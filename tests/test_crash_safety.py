"""Crash safety, proven by fault injection (issue 13).

The monitor runs as ``cstowatch run`` in a subprocess against the demo web served on 127.0.0.1
and a real aiosmtpd server, and is ``SIGKILL``ed (its whole process group, Scrapy included) at
seeded instants spread over its stages: feed fetch, spiders, load, model load, scoring,
alerting and delivery. Then it runs to completion. The warehouse must equal the one an
uninterrupted run leaves: the same article ids, the same stance per article, the same alerts,
every alert email delivered once or marked ``uncertain`` and never sent twice. The same holds
after an SMTP server that is down for a run, a DuckDB file locked by a reader for a whole run,
a disk that fills, and a feed that hangs without answering.

``CSTOWATCH_CRASH_SEED`` picks other instants; a failure prints the kill plan it followed.
"""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiosmtpd.controller import Controller

from flows.demo import DEMO_DIR, demo_sources
from flows.static_site import StaticSite

pytestmark = pytest.mark.slow
AS_OF = "2026-11-29"
SEED = int(os.environ.get("CSTOWATCH_CRASH_SEED", "13"))
CLI = str(Path(sys.executable).with_name("cstowatch"))
RUN_TIMEOUT = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: keeps every message; can hold its reply to DATA to let a test kill
    the sender while the message is on the wire."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.hold = 0.0
        self.received = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        import asyncio

        self.messages.append(envelope.content)
        self.received.set()
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 OK"

    def message_ids(self) -> Counter[str]:
        return Counter(str(message_from_bytes(m)["Message-ID"]) for m in self.messages)


@dataclass
class Smtp:
    port: int
    mailbox: Mailbox = field(default_factory=Mailbox)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None


@dataclass
class Kill:
    """Kill the run ``delay`` seconds after ``marker`` shows in its log (or, for ``smtp``,
    after the mail server received a message)."""

    stage: str
    marker: str
    delay: float
    landed: bool = False  # the process was still running when the signal went
    at: float | None = None  # seconds since the run started

    def __str__(self) -> str:
        where = f"{self.at:.1f} s" if self.at is not None else "never"
        return f"{self.stage}: {self.marker!r} + {self.delay:.2f} s -> {where}" + (
            "" if self.landed else " (missed: the run had ended)"
        )


@dataclass
class Web:
    base: str
    sources: Path
    hang_port: int


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    tmp = tmp_path_factory.mktemp("web")
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # accepts connections, never answers
    with StaticSite(DEMO_DIR / "site") as site:
        yield Web(site.base, demo_sources(site.base, tmp / "sources.yaml"), hang.getsockname()[1])
    hang.close()


@pytest.fixture(scope="module")
def prefect_api(prefect_harness: None) -> str:
    """The test harness's Prefect server: every subprocess run reports to it (and none starts
    a temporary server of its own)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "prefect_test_harness set no API URL"
    return str(url)


class Monitor:
    """``cstowatch run`` on the demo, as a user runs it, in its own process group."""

    def __init__(self, root: Path, web: Web, api: str, smtp_port: int) -> None:
        self.root, self.web = root, web
        self.db = root / "data" / "cstowatch.duckdb"
        self.env = dict(
            os.environ,
            PREFECT_API_URL=api,
            HF_HUB_OFFLINE="1",
            CSTOWATCH_SMTP_HOST="127.0.0.1",
            CSTOWATCH_SMTP_PORT=str(smtp_port),
            CSTOWATCH_SMTP_TIMEOUT="10",
            CSTOWATCH_OUTBOX=str(root / "outbox"),
            CSTOWATCH_LOCK_TIMEOUT="2",
            CSTOWATCH_FETCH_TIMEOUT="2",
        )
        self.logs: list[Path] = []

    def start(self, sources: Path | None = None, **popen: Any) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"run{len(self.logs) + 1}.log"
        self.logs.append(log)
        cmd = [CLI, "run", "--sources", str(sources or self.web.sources), "--db", str(self.db),
               "--as-of", AS_OF]
        handle = log.open("wb")
        proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True, **popen)
        handle.close()
        return proc, log

    def run(self, sources: Path | None = None, **popen: Any) -> tuple[int, str]:
        proc, log = self.start(sources, **popen)
        code = proc.wait(timeout=RUN_TIMEOUT)
        return code, log.read_text(errors="replace")

    def run_killed(self, kill: Kill, mailbox: Mailbox) -> None:
        """Start a run, kill its process group as ``kill`` says, wait for it to be gone."""
        mailbox.received.clear()
        proc, log = self.start()
        started = time.monotonic()
        pattern = re.compile(kill.marker)
        while proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT:
            if kill.marker == "smtp":
                seen = mailbox.received.wait(0.05)
            else:
                seen = bool(pattern.search(log.read_text(errors="replace")))
                time.sleep(0.05)
            if seen:
                time.sleep(kill.delay)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    kill.landed, kill.at = True, time.monotonic() - started
                break
        proc.wait(timeout=60)
        _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    """Make sure nothing of a killed run (a Scrapy child) outlives it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    time.sleep(0.2)


def snapshot(db: Path) -> dict[str, Any]:
    """What must not differ from an uninterrupted run."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        q: Callable[[str], list[tuple]] = lambda s: con.execute(s).fetchall()  # noqa: E731
        return {
            "articles": {r[0] for r in q("select article_id from articles")},
            "stance": {
                r[0]: (r[1], r[2], r[3], r[4])
                for r in q(
                    "select article_id, label, p_pro_russian, p_neutral, p_pro_kazakh "
                    "from article_stance"
                )
            },
            "alerts": {r[0]: float(r[1]) for r in q("select alert_id, effect_pp from alerts")},
            "deliveries": {
                r[0]: (r[1], r[2]) for r in q(
                    "select alert_id, status, message_id from alert_deliveries")
            },
            "pending": q("select url, status, last_error from pending_items"),
            "runs": Counter(r[0] for r in q("select status from pipeline_runs")),
            "passages": q("select count(*), count(distinct (article_id, idx)) from passages")[0],
            "predictions": q(
                "select count(*), count(distinct (model_id, article_id, passage_idx)) "
                "from stance_predictions"
            )[0],
        }
    finally:
        con.close()


def prefect_states(db: Path) -> Counter[str]:
    """The Prefect state of each run recorded in ``db``'s pipeline_runs."""
    from prefect.client.orchestration import get_client

    con = duckdb.connect(str(db), read_only=True)
    try:
        ids = [r[0] for r in con.execute("select flow_run_id from pipeline_runs").fetchall()]
    finally:
        con.close()
    with get_client(sync_client=True) as client:
        return Counter(
            client.read_flow_run(i).state_type.value for i in ids if i  # type: ignore[union-attr]
        )


def assert_same_warehouse(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["articles"] == want["articles"], (
        f"{len(want['articles'] - got['articles'])} articles lost, "
        f"{len(got['articles'] - want['articles'])} extra"
    )
    assert got["stance"].keys() == want["stance"].keys()
    for article, (label, *probs) in want["stance"].items():
        g_label, *g_probs = got["stance"][article]
        assert g_label == label, article
        for a, b in zip(g_probs, probs, strict=True):  # None for an off-topic article
            assert (a is None and b is None) or abs(a - b) < 1e-4, article
    assert got["alerts"].keys() == want["alerts"].keys()
    for alert, effect in want["alerts"].items():
        assert abs(got["alerts"][alert] - effect) < 0.05
    assert got["passages"][0] == got["passages"][1]  # nothing stored twice
    assert got["predictions"][0] == got["predictions"][1]
    assert got["pending"] == [], got["pending"]


def assert_mailed_once(got: dict[str, Any], mailbox: Mailbox) -> None:
    """Each alert was emailed once, or is uncertain and was emailed at most once."""
    received = mailbox.message_ids()
    assert all(n == 1 for n in received.values()), f"an email went out twice: {received}"
    assert got["deliveries"], "no alert delivery recorded"
    for alert, (status, message_id) in got["deliveries"].items():
        assert status in ("sent", "uncertain"), (alert, status)
        if status == "sent":
            assert received[message_id] == 1, (alert, message_id, received)
    named = {m for _, m in got["deliveries"].values()}
    assert set(received) <= named, "an email no delivery row accounts for"


@pytest.fixture(scope="module")
def reference(
    web: Web, prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    smtp = Smtp(free_port())
    smtp.start()
    try:
        code, log = Monitor(root, web, prefect_api, smtp.port).run()
    finally:
        smtp.stop()
    assert code == 0, log[-3000:]
    got = snapshot(root / "data" / "cstowatch.duckdb")
    assert len(got["articles"]) > 200 and got["alerts"], log[-3000:]
    assert_mailed_once(got, smtp.mailbox)
    assert all(s == "sent" for s, _ in got["deliveries"].values())
    return got


@pytest.fixture()
def smtp() -> Iterator[Smtp]:
    server = Smtp(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def monitor(web: Web, prefect_api: str, smtp: Smtp, tmp_path: Path) -> Monitor:
    return Monitor(tmp_path, web, prefect_api, smtp.port)


def assert_ends_as_reference(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any], code: int, log: str
) -> dict[str, Any]:
    """The last run succeeded and the warehouse and mailbox are what an uninterrupted run
    leaves."""
    assert code == 0, log[-3000:]
    got = snapshot(monitor.db)
    assert_same_warehouse(got, reference)
    assert_mailed_once(got, smtp.mailbox)
    return got


def kill_plan(seed: int) -> list[Kill]:
    """Instants spread over a run's stages; each killed run gets further than the last."""
    rng = random.Random(seed)
    u = rng.uniform
    return [
        Kill("feed fetch", r"Beginning flow run", u(0.5, 1.5)),
        Kill("spiders", r"Beginning flow run", u(1.8, 3.5)),
        Kill("load", r"load-batch-\w+' - Finished", u(0.0, 0.3)),
        Kill("model load", r"Beginning flow run", u(2.5, 5.0)),
        Kill("scoring", r"classified \d+/\d+", u(0.2, 2.5)),
        Kill("scoring", r"classified \d+/\d+", u(0.2, 2.5)),
        Kill("scoring", r"classified \d+/\d+", u(1.0, 3.0)),
        Kill("alerting", r"index-search-\w+' - Finished", u(0.0, 0.3)),
        Kill("delivery", "smtp", u(0.0, 0.5)),
    ]


def test_killed_runs_end_as_an_uninterrupted_run(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any]
) -> None:
    smtp.mailbox.hold = 5.0  # the killed sender never hears the server's answer
    plan = kill_plan(SEED)
    for kill in plan:
        monitor.run_killed(kill, smtp.mailbox)
    smtp.mailbox.hold = 0.0
    code, log = monitor.run()
    report = f"seed {SEED}, kills:\n  " + "\n  ".join(map(str, plan))
    print(report)
    landed = sum(k.landed for k in plan)
    assert landed >= 8, report
    again, log_again = monitor.run()
    got = assert_ends_as_reference(monitor, smtp, reference, max(code, again), log + log_again)
    # every killed run is on record as crashed (found by the run after it)
    assert got["runs"]["crashed"] == landed, (report, got["runs"])
    assert got["runs"]["completed"] == 2, got["runs"]
    assert prefect_states(monitor.db)["CRASHED"] == landed
    con = duckdb.connect(str(monitor.db), read_only=True)
    try:  # every outlet had been collected by a run that then died
        assert con.execute(
            "select count(*) from source_health where last_crashed_run_at is null"
        ).fetchone() == (0,)
    finally:
        con.close()
    assert "Recent runs" in subprocess.run(
        [CLI, "runs", "--db", str(monitor.db)], capture_output=True, text=True, check=True,
        env=monitor.env, timeout=120,
    ).stdout


def test_smtp_down_for_a_run_then_delivered_once(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any]
) -> None:
    smtp.stop()  # nothing listens on its port for the first run
    code, log = monitor.run()
    assert code == 0, log[-3000:]
    assert "alert delivery failed, will retry" in log
    down = snapshot(monitor.db)
    assert down["deliveries"] and all(s == "pending" for s, _ in down["deliveries"].values())
    smtp.start()
    got = assert_ends_as_reference(monitor, smtp, reference, *monitor.run())
    assert all(s == "sent" for s, _ in got["deliveries"].values())
    assert len(smtp.mailbox.messages) == 1


def test_database_locked_for_a_whole_run_loses_nothing(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any]
) -> None:
    monitor.db.parent.mkdir(parents=True)
    duckdb.connect(str(monitor.db)).close()
    reader = duckdb.connect(str(monitor.db), read_only=True)  # an analyst's session
    try:
        code, log = monitor.run()
    finally:
        reader.close()
    assert code != 0 and "locked" in log, log[-3000:]
    assert_ends_as_reference(monitor, smtp, reference, *monitor.run())


def test_disk_full_mid_run_then_completed(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any]
) -> None:
    """Files the run writes may not grow past a limit (RLIMIT_FSIZE: writes beyond it fail with
    EFBIG, as on a full disk): the run fails part-way; the next run, with room, completes."""
    limit = 2 * 1024 * 1024  # the demo grows the warehouse (and its WAL) to about 20 MB

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code, log = monitor.run(preexec_fn=small_disk)
    assert code != 0, log[-3000:]
    assert "File too large" in log or "Errno 27" in log, log[-3000:]
    assert_ends_as_reference(monitor, smtp, reference, *monitor.run())


def test_hanging_feed_fails_alone(
    monitor: Monitor, smtp: Smtp, reference: dict[str, Any], tmp_path: Path
) -> None:
    """A source whose feed accepts the connection and never answers is recorded as failing;
    every other source is collected as usual."""
    hanging = tmp_path / "sources.yaml"
    hanging.write_text(
        monitor.web.sources.read_text(encoding="utf-8")
        + f"""  - id: silent-wire
    name: Silent Wire
    country: KZ
    languages: [ru]
    affiliation: independent
    domains: [127.0.0.1]
    feeds: ["http://127.0.0.1:{monitor.web.hang_port}/feed.xml"]
""",
        encoding="utf-8",
    )
    assert_ends_as_reference(monitor, smtp, reference, *monitor.run(sources=hanging))
    con = duckdb.connect(str(monitor.db), read_only=True)
    try:
        health = con.execute(
            "select feeds_failing, feed_errors, last_run_status from source_health "
            "where source_id = 'silent-wire'"
        ).fetchone()
    finally:
        con.close()
    assert health is not None and health[0] == 1 and "timeout" in health[1], health
    assert health[2] == "partial", health
