"""Opening the warehouse: lock handling, migrations, views.

DuckDB lets one process write a file. When an analyst holds it, the pipeline's writer retries with
backoff for ``lock_timeout`` seconds, then raises ``DatabaseLocked`` naming the holder; nothing has
been written at that point, so the run can simply be repeated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import duckdb

SQL_ROOT = files("warehouse")
_VERSION_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_RE = re.compile(r"(Could not set lock|Conflicting lock|database is locked)", re.IGNORECASE)


class DatabaseLocked(RuntimeError):
    """Another process holds the DuckDB file for writing."""


class SchemaTooNew(RuntimeError):
    """The database was written by a newer cstowatch than this one."""


def sql(name: str) -> str:
    """The text of ``warehouse/sql/<name>.sql``."""
    return (SQL_ROOT / "sql" / f"{name}.sql").read_text(encoding="utf-8")


def run_script(con: duckdb.DuckDBPyConnection, name: str, params: dict | None = None) -> None:
    """Run every statement of ``warehouse/sql/<name>.sql``, each with the parameters it uses.

    DuckDB's own parser splits the script, so a ``;`` in a comment or a string is no boundary.
    """
    params = params or {}
    statements = con.extract_statements(sql(name))
    missing = set().union(*(s.named_parameters for s in statements)) - params.keys()
    if missing:  # before anything runs
        raise KeyError(f"{name}.sql needs parameters {sorted(missing)}")
    for statement in statements:
        used = {k: params[k] for k in statement.named_parameters}
        con.execute(statement, used) if used else con.execute(statement)


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in (SQL_ROOT / "migrations").iterdir():
        match = _VERSION_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute("select max(version) from schema_migrations").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply pending migrations in one transaction; refuse a database newer than the code."""
    known = migrations()
    latest = known[-1][0] if known else 0
    current = schema_version(con)
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, but this cstowatch knows only up to "
            f"{latest}: upgrade cstowatch before opening it"
        )
    pending = [m for m in known if m[0] > current]
    if not pending:
        return []
    con.execute("begin transaction")
    try:
        con.execute(
            "create table if not exists schema_migrations ("
            "version integer primary key, name varchar not null, applied_at timestamptz not null)"
        )
        for version, name, text in pending:
            con.execute(text)
            con.execute(
                "insert into schema_migrations values (?, ?, ?)",
                [version, name, datetime.now(UTC)],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return [m[0] for m in pending]


def rebuild_views(con: duckdb.DuckDBPyConnection) -> None:
    with transaction(con):  # all views or none: a kill cannot leave a mix of old and new
        con.execute(sql("views"))


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    con.execute("set autoinstall_known_extensions = false")  # never download anything
    from warehouse.search import load_fts  # search imports this module

    try:
        load_fts(con)  # analysts' ad hoc SQL may call match_bm25
    except RuntimeError:
        pass  # the package is missing; search() says so clearly
    return con


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    lock_timeout: float = 120.0,
    on_wait: Callable[[str, float], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (and for writers, migrate) the warehouse, waiting out a lock held elsewhere."""
    path = Path(path)
    if str(path) != ":memory:":
        if read_only and not path.exists():
            raise FileNotFoundError(f"no database at {path}: run `cstowatch run` or `demo` first")
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.25
    while True:
        try:
            con = _open(path, read_only)
            break
        except duckdb.IOException as exc:
            if not _LOCK_RE.search(str(exc)):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseLocked(
                    f"{path} is locked by another process and stayed locked for "
                    f"{lock_timeout:.0f} s ({exc}). Close the other session (an analyst's "
                    f"`duckdb` or notebook) or query a Parquet export instead; nothing was "
                    f"written, so the run can be repeated."
                ) from exc
            if on_wait:
                on_wait(str(exc), remaining)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)
    if not read_only:
        try:
            migrate(con)
            rebuild_views(con)
        except Exception:
            con.close()
            raise
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One batch, one transaction: all of it lands or none of it does."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    else:
        con.execute("commit")
