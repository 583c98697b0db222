"""A Prefect server that ``cstowatch serve`` starts for itself when no API is configured.

Prefect's temporary ("ephemeral") server, which a client starts when ``PREFECT_API_URL`` is
unset, runs without the scheduler service: deployments served against it are registered with
their schedules, but no scheduled run is ever created, so nothing would fire. ``cstowatch serve``
therefore starts a real ``prefect server start`` on 127.0.0.1 as a child process, waits until
it answers, and stops it (and only it) on the way out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class LocalServerError(RuntimeError):
    """The local Prefect server did not start; the message says why and where its log is."""


def _prefect_command() -> list[str]:
    script = Path(sys.executable).with_name("prefect")
    return [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server output)"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def local_server(
    port: int, log_path: Path, *, host: str = "127.0.0.1", startup_timeout: float = 120.0
) -> Iterator[str]:
    """Run ``prefect server start`` on ``host:port`` for the duration; yield its API URL.

    Raises :class:`LocalServerError` when the port is taken, the server exits, or it does not
    answer ``/api/health`` within ``startup_timeout`` seconds.
    """
    if not _port_free(host, port):
        raise LocalServerError(
            f"port {port} on {host} is in use: pass another --port, or set PREFECT_API_URL "
            "to the Prefect server that is already running there"
        )
    api = f"http://{host}:{port}/api"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*_prefect_command(), "server", "start", "--host", host, "--port", str(port),
             "--analytics-off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise LocalServerError(
                    f"the Prefect server exited with code {proc.returncode}; its log "
                    f"({log_path}) ends with:\n{_log_tail(log_path)}"
                )
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"the Prefect server did not answer on {api} within {startup_timeout:.0f} s; "
                    f"see {log_path}"
                )
            time.sleep(0.5)
        yield api
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
