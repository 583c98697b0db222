"""Pipeline runs in the warehouse, and telling a dead run from a live one.

Every run writes a ``pipeline_runs`` row when it starts (status ``running``) and completes it
when it ends. A run killed outright (``kill -9``, a power cut, the OOM killer) never completes
its row; the next run finds the row's process gone and marks it ``crashed``. The same process
token marks an alert delivery or a digest claim, so a claim held by a dead process is settled at
once rather than after a timeout.

A token is ``host:pid:start`` where ``start`` is the process's start time in clock ticks since
boot (``/proc/<pid>/stat``), so a pid the kernel reused is not mistaken for the run.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from warehouse.db import sql


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def process_token(pid: int | None = None) -> str:
    """This process's identity: host, pid and start time."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid) or ''}"


def token_alive(token: str | None) -> bool | None:
    """Whether the process behind ``token`` still runs: True, False, or None when it cannot be
    told (another host, or no token recorded)."""
    if not token:
        return None
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    now_start = _proc_start(int(pid_text))
    if now_start is None:
        return False
    return not start or now_start == start


def row_alive(host: str, pid: int, proc_start: str | None) -> bool | None:
    """``token_alive`` for a pipeline_runs row's host, pid and start time."""
    return token_alive(f"{host}:{pid}:{proc_start or ''}")


def claim_abandoned(
    owner: str | None, claimed_at: datetime, now: datetime, stale_after: timedelta
) -> bool:
    """Whether a claim (an alert email or a digest being sent) was left by a process that died:
    its process is gone, or, where that cannot be told (another host, no owner recorded), the
    claim is older than ``stale_after``."""
    alive = token_alive(owner)
    return alive is False or (alive is None and now - claimed_at > stale_after)


def begin(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    flow: str,
    flow_run_id: str | None,
    stage: str | None = None,
) -> list[dict[str, str | None]]:
    """Mark earlier runs whose process is gone as crashed, then record this run as running.

    Returns the runs just found crashed: run_id, flow_run_id, stage.
    """
    crashed = sweep(con)
    token = process_token()
    host, pid, start = token.split(":")
    con.execute(
        sql("pipeline_run_begin"),
        {
            "run_id": run_id,
            "flow": flow,
            "flow_run_id": flow_run_id,
            "host": host,
            "pid": int(pid),
            "proc_start": start,
            "stage": stage,
            "now": datetime.now(UTC),
        },
    )
    return crashed


def sweep(con: duckdb.DuckDBPyConnection) -> list[dict[str, str | None]]:
    """Mark every ``running`` run of this host whose process is gone as ``crashed``."""
    running = con.execute(
        "select run_id, flow_run_id, host, pid, proc_start, stage from pipeline_runs "
        "where status = 'running'"
    ).fetchall()
    crashed = []
    for run_id, flow_run_id, host, pid, start, stage in running:
        if row_alive(host, pid, start) is False:
            crashed.append({"run_id": run_id, "flow_run_id": flow_run_id, "stage": stage})
    if crashed:
        con.execute(
            sql("pipeline_run_crashed"),
            {"ids": [c["run_id"] for c in crashed], "now": datetime.now(UTC)},
        )
    return crashed


def live_runs(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Runs marked running whose process may still be working (alive, or on another host)."""
    rows = con.execute(
        "select run_id, host, pid, proc_start from pipeline_runs where status = 'running'"
    ).fetchall()
    return {r[0] for r in rows if row_alive(r[1], r[2], r[3]) is not False}


def set_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str) -> None:
    con.execute("update pipeline_runs set stage = ? where run_id = ?", [stage, run_id])


def finish(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, error: str | None = None
) -> None:
    con.execute(
        "update pipeline_runs set status = ?, finished_at = ?, error = ? where run_id = ?",
        [status, datetime.now(UTC), error[:2000] if error else None, run_id],
    )
