"""prefect.yaml for real: a Prefect server, `prefect deploy --all`, a process worker, one run.

Everything binds 127.0.0.1 and lives in a temporary PREFECT_HOME. The server, the worker and
whatever they spawn (the flow-run process, its Scrapy subprocesses) are tracked and ended in a
finally block, also when an assertion fails or the run times out.

For the deploy test the server runs with its scheduler service off: `prefect deploy` registers
the hourly and daily schedules (checked through the API), but no scheduled run of the real
sources.yaml may start while the test waits for its own run. The `cstowatch serve` test turns
the scheduler on and waits for the schedule itself to start a run.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psutil
import pytest

from flows.static_site import StaticSite

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

REPO = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "fixtures" / "flow_site"
PREFECT = str(Path(sys.executable).parent / "prefect")
RUN_TIMEOUT = 180.0
SERVE_TIMEOUT = 300.0  # up to a minute until the cron fires, then the run
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: no output)"
    return f"--- {path.name} ---\n" + "\n".join(
        path.read_text(errors="replace").splitlines()[-lines:])


class Processes:
    """Background processes started here, each in its own session; stop() ends them and every
    descendant they left (children may start sessions of their own, so track by PID)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: dict[int, psutil.Process] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs[name] = proc
        self.track()
        return proc

    def track(self) -> None:
        """Remember the current descendants, so they can be ended even if a parent dies first."""
        for proc in self.procs.values():
            try:
                parent = psutil.Process(proc.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    self.seen.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                continue

    def stop(self) -> None:
        self.track()
        alive = []
        for p in self.seen.values():
            try:
                if p.is_running():
                    p.send_signal(signal.SIGTERM)
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        _, still = psutil.wait_procs(alive, timeout=15)
        for p in still:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(still, timeout=10)
        for proc in self.procs.values():
            proc.wait(timeout=10)


def cli(args: list[str], env: dict[str, str], logs: Path, timeout: float = 120) -> str:
    done = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    with (logs / "cli.log").open("a") as log:
        log.write(f"$ prefect {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def isolated_env(tmp_path: Path, *, scheduler: bool) -> dict[str, str]:
    """The environment of every process a test starts: its own PREFECT_HOME, no API URL yet,
    127.0.0.1 only, and fast scheduler and runner loops."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "CSTOWATCH_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=str(scheduler).lower(),
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_WORKER_PREFETCH_SECONDS="2",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        CSTOWATCH_HOME=str(REPO),
        CSTOWATCH_OUTBOX=str(tmp_path / "outbox"),
        CSTOWATCH_DB=str(tmp_path / "default.duckdb"),
        CSTOWATCH_REPORT=str(tmp_path / "report.html"),
    )
    return env


@contextmanager
def prefect_server(tmp_path: Path, *, scheduler: bool) -> Iterator[dict[str, Any]]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = isolated_env(tmp_path, scheduler=scheduler) | {"PREFECT_API_URL": api}
    procs = Processes(logs)
    try:
        srv = procs.start("server", [PREFECT, "server", "start", "--host", "127.0.0.1",
                                     "--port", str(port), "--no-ui", "--analytics-off"], env)
        deadline = time.monotonic() + 90
        while True:
            assert srv.poll() is None, "prefect server exited\n" + tail(logs / "server.log")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no /api/health in 90 s\n" + tail(
                logs / "server.log")
            time.sleep(0.5)
        yield {"api": api, "env": env, "logs": logs, "procs": procs}
    finally:
        procs.stop()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with prefect_server(tmp_path, scheduler=False) as srv:
        yield srv


def test_deploy_and_run_monitor_through_a_worker(server: dict[str, Any], tmp_path: Path) -> None:
    api, env, logs, procs = server["api"], server["env"], server["logs"], server["procs"]
    cli(["work-pool", "create", "cstowatch", "--type", "process"], env, logs)
    out = cli(["deploy", "--all", "--no-prompt"], env, logs, timeout=180)
    assert "monitor/monitor-hourly" in out, out

    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    by_name = {d["name"]: d for d in deployments}
    assert set(by_name) == {"monitor-hourly", "digest-daily", "reclassify", "backfill"}
    for d in by_name.values():
        assert d["work_pool_name"] == "cstowatch"
        # the pull step's {{ $CSTOWATCH_HOME }} was resolved at deploy time
        (step,) = d["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    crons = {n: [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]]
             for n, d in by_name.items()}
    assert crons == {"monitor-hourly": [("5 * * * *", "Asia/Almaty")],
                     "digest-daily": [("0 7 * * *", "Asia/Almaty")],
                     "reclassify": [], "backfill": []}

    procs.start("worker", [PREFECT, "worker", "start", "--pool", "cstowatch",
                           "--install-policy", "never", "--name", "test-worker"], env)
    db = tmp_path / "data" / "cstowatch.duckdb"
    with StaticSite(SITE) as site:
        sources = tmp_path / "sources.yaml"
        sources.write_text((SITE / "sources.yaml").read_text(encoding="utf-8")
                           .replace("{base}", site.base), encoding="utf-8")
        out = cli(["deployment", "run", "monitor/monitor-hourly", "--param", f"sources={sources}",
                   "--param", f"db={db}"], env, logs)
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        assert match, out
        flow_run_id = match.group(1)
        deadline = time.monotonic() + RUN_TIMEOUT
        state = None
        while time.monotonic() < deadline:
            procs.track()
            run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()
            state = run["state"]["type"] if run.get("state") else None
            if state in TERMINAL:
                break
            time.sleep(2)
    diagnostics = f"state {state}\n" + tail(logs / "worker.log", 80) + "\n" + tail(
        logs / "server.log", 20)
    assert state == "COMPLETED", diagnostics
    assert run["parameters"] == {"sources": str(sources), "db": str(db)}

    con = duckdb.connect(str(db), read_only=True)
    try:
        articles = con.execute("select source_id, count(*) from articles group by all").fetchall()
        stances = con.execute("select count(*) from article_stance").fetchone()[0]
        runs = con.execute("select source_id, status, flow_run_id from crawl_runs").fetchall()
    finally:
        con.close()
    assert dict(articles) == {"steppe-herald": 4, "volga-telegraph": 3}, diagnostics
    assert stances == 7
    assert sorted(runs) == [("steppe-herald", "ok", flow_run_id),
                            ("volga-telegraph", "ok", flow_run_id)]


def test_cstowatch_serve_runs_monitor_on_its_schedule(tmp_path: Path) -> None:
    """`cstowatch serve` with no PREFECT_API_URL and an every-minute cron: it starts its own
    Prefect server, whose scheduler creates the run; the serve process picks it up and runs it.
    Nobody triggers anything by hand."""
    logs = tmp_path / "logs"
    logs.mkdir()
    env = isolated_env(tmp_path, scheduler=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    db = tmp_path / "served.duckdb"
    cstowatch = str(Path(sys.executable).parent / "cstowatch")
    procs = Processes(logs)
    run: dict[str, Any] = {}
    try:
        with StaticSite(SITE) as site:
            sources = tmp_path / "sources.yaml"
            sources.write_text((SITE / "sources.yaml").read_text(encoding="utf-8")
                               .replace("{base}", site.base), encoding="utf-8")
            serve = procs.start("serve", [
                cstowatch, "serve", "--sources", str(sources), "--db", str(db), "--cron",
                "* * * * *", "--timezone", "UTC", "--port", str(port)], env)
            deadline = time.monotonic() + SERVE_TIMEOUT
            while time.monotonic() < deadline:
                assert serve.poll() is None, "cstowatch serve exited\n" + tail(logs / "serve.log")
                procs.track()
                try:
                    runs = httpx.post(f"{api}/flow_runs/filter", json={
                        "deployments": {"name": {"any_": ["monitor-hourly"]}}}, timeout=10).json()
                except httpx.HTTPError:  # the server is still starting
                    runs = []
                finished = [r for r in runs if r["state"] and r["state"]["type"] in TERMINAL]
                if finished:
                    run = finished[0]
                    break
                time.sleep(2)
        diagnostics = tail(logs / "serve.log", 80) + "\n" + tail(tmp_path / "prefect-server.log")
        assert run, f"no monitor run finished in {SERVE_TIMEOUT:.0f} s\n" + diagnostics
        assert run["state"]["type"] == "COMPLETED", diagnostics
        assert run["auto_scheduled"], "the run was not created by the schedule"
        assert run["parameters"] == {"sources": str(sources), "db": str(db)}
        deployment = httpx.get(f"{api}/deployments/{run['deployment_id']}", timeout=10).json()
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"])
                for s in deployment["schedules"]] == [("* * * * *", "UTC")]
        # SIGTERM to serve alone (as systemd or Docker would stop it): it ends its own server
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api}/health", timeout=2)
    finally:
        procs.stop()

    con = duckdb.connect(str(db), read_only=True)
    try:
        runs_db = con.execute("select source_id, status, flow_run_id from crawl_runs").fetchall()
    finally:
        con.close()
    assert sorted(runs_db) == [("steppe-herald", "ok", run["id"]),
                               ("volga-telegraph", "ok", run["id"])]
