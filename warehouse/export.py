"""Parquet export of the analyst-facing data, for notebooks and tools that must not hold the
DuckDB file (DuckDB lets one process write it; a Parquet copy can be read by anyone, any time).

Layout under ``out_dir``::

    articles/source_id=<id>/year=<yyyy>/month=<m>/data_0.parquet   (hive partitions)
    article_stance.parquet  daily_stance.parquet  weekly_stance.parquet
    alerts.parquet          source_health.parquet
    manifest.json           (counts, schema version, export time)

Articles are partitioned by outlet and by the UTC year/month of ``published_at``
(``published_date`` when the outlet gave only a day, ``fetched_at`` when it gave no date).
Read them back with ``read_parquet('<out>/articles/**/*.parquet', hive_partitioning = true)``.

The export is atomic: everything is written to a temporary sibling directory inside one read
transaction (a consistent snapshot), then renamed into place; an interrupted export leaves the
previous one untouched. Readers see the old export or the new one, never a mix (between the two
renames there is an instant when ``out_dir`` does not exist).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.db import schema_version, transaction

#: table or view -> the query exported (constants: no user input reaches these strings)
EXPORTS: dict[str, str] = {
    "articles": (
        "select a.*, "
        "year(coalesce(a.published_at, a.published_date, a.fetched_at)) as year, "
        "month(coalesce(a.published_at, a.published_date, a.fetched_at)) as month "
        "from articles a"
    ),
    "article_stance": "select * from article_stance",
    "daily_stance": "select * from daily_stance order by day, source_id, lang",
    "weekly_stance": "select * from weekly_stance order by week, source_id, lang",
    "alerts": "select * from alerts order by created_at, alert_id",
    "source_health": "select * from source_health order by source_id",
}
PARTITIONS: dict[str, tuple[str, ...]] = {"articles": ("source_id", "year", "month")}


def _quote(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def export_parquet(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    """Write the Parquet export to ``out_dir`` (replacing any previous one); rows per table."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{token}"
    tmp.mkdir()
    counts: dict[str, int] = {}
    try:
        with transaction(con):
            for name, query in EXPORTS.items():
                if name in PARTITIONS:
                    target = tmp / name
                    target.mkdir()
                    options = (
                        f"format parquet, compression zstd, "
                        f"partition_by ({', '.join(PARTITIONS[name])}), overwrite_or_ignore"
                    )
                else:
                    target = tmp / f"{name}.parquet"
                    options = "format parquet, compression zstd"
                row = con.execute(f"copy ({query}) to {_quote(target)} ({options})").fetchone()
                counts[name] = int(row[0]) if row else 0
            version = schema_version(con)
        manifest = {
            "exported_at": datetime.now(UTC).isoformat(),
            "schema_version": version,
            "counts": counts,
            "partitions": {k: list(v) for k, v in PARTITIONS.items()},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        old = out_dir.parent / f".{out_dir.name}.old-{token}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
