"""``cstowatch demo``: serve the bundled demo web and run the monitor flow on it once."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from flows.static_site import StaticSite

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


def demo_sources(base: str, target: Path) -> Path:
    """Write demo/sources.yaml with the server's address filled in."""
    text = (DEMO_DIR / "sources.yaml").read_text(encoding="utf-8").replace("{base}", base)
    target.write_text(text, encoding="utf-8")
    return target


def run_demo(
    db: Path, as_of: date, outbox: Path | None = None, console: Console | None = None
) -> dict[str, Any]:
    from flows.settings import get_settings

    if outbox is not None:
        os.environ["CSTOWATCH_OUTBOX"] = str(outbox)
        get_settings.cache_clear()
    from flows.monitor import monitor

    console = console or Console()
    site_root = DEMO_DIR / "site"
    if not site_root.exists():
        raise FileNotFoundError(f"{site_root} is missing: run `python demo/build.py`")
    with StaticSite(site_root) as site, tempfile.TemporaryDirectory() as tmp:
        console.print(f"Serving the demo web at {site.base}")
        sources = demo_sources(site.base, Path(tmp) / "sources.yaml")
        # force_feeds: the demo is one self-contained run, whatever the feeds' next due time
        result = monitor(sources=str(sources), db=str(db), as_of=as_of, force_feeds=True)
    result["report"] = _report(db, as_of, console)
    return result


def _report(db: Path, as_of: date, console: Console) -> str | None:
    try:
        from flows.report import write_report
    except ImportError:
        return None
    from flows.settings import get_settings

    path = get_settings().report if db.name != "demo.duckdb" else db.with_name("report.html")
    try:
        return str(write_report(db, out=path, until=as_of))
    except Exception as exc:  # the run itself succeeded; say what went wrong with the report
        console.print(f"[red]report failed:[/] {exc.__class__.__name__}: {exc}")
        return None
