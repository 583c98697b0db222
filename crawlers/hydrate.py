"""Rebuild the real-news texts from a manifest of facts: ``cstowatch data hydrate MANIFEST``.

The manifest (see ``nlp/realnews.py``) names, for each labelled passage, its article URL and the
SHA-256 of its normalised text. Here the URLs are fetched through the ordinary crawler (one
Scrapy job per host, so robots.txt, autothrottle and the domain fence apply exactly as in a
monitoring run), the extracted text is split into paragraphs, and a paragraph is kept only when
its hash matches. Every manifest row ends with one outcome:

found     the paragraph is on the page; its text is written to the output
changed   the page was fetched and extracted but no paragraph has the hash any more
vanished  404/410, a soft 404, or the host cannot be resolved or refuses connections
blocked   robots.txt disallows the URL, the server refuses us (401/403/451), or the page is a
          block, consent or paywall page
offsite   the URL redirects to another host, which the crawler does not follow
error     anything else (5xx after retries, timeouts, empty or unparsable pages), with the reason

Texts already in the output whose hash still matches a manifest row are kept and their rows not
fetched again (unless ``refresh``). A kept text is verified by its hash, so ``refresh`` never
throws one away, even when the page no longer has it: the outcome says what the page holds now.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawlers.collect import CollectError, run_spiders
from crawlers.sources import Source
from crawlers.urls import host_of, in_domains, normalise
from nlp.realnews import ManifestError, find_passages, passage_hash, read_manifest, write_jsonl

DEFAULT_OUT = Path("data/realnews/texts.jsonl")
OUTCOMES = ("found", "changed", "vanished", "blocked", "offsite", "error")
REQUIRED = ("id", "url", "sha256")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GONE_STATUS = {404, 410}
_REFUSED_STATUS = {401, 403, 451}
# Twisted/Scrapy exception names for a host that no longer answers at all.
_UNREACHABLE = ("DNSLookupError", "ConnectionRefused", "NoRouteError")
_BLOCK_PAGES = {"blocked", "consent", "paywall"}


@dataclass(frozen=True)
class RowOutcome:
    id: str
    url: str
    lang: str
    outcome: str
    reason: str | None = None
    text: str | None = None
    fetched: bool = True  # False: the text was already in the output


@dataclass
class HydrateResult:
    out: Path
    outcomes: list[RowOutcome]
    written: int  # rows in the output file after this run
    left: int = 0  # rows needing a fetch that --limit left for a later run


# ---------------------------------------------------------------------------- pure logic


def validate_manifest(rows: list[Any], where: str) -> list[dict[str, Any]]:
    """Check the fields hydrate relies on; raise :class:`ManifestError` naming the row."""
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ManifestError(f"{where}: row {number}: expected a JSON object")
        missing = [key for key in REQUIRED if not row.get(key)]
        if missing:
            raise ManifestError(f"{where}: row {number}: missing {', '.join(missing)}")
        if not _SHA256.match(str(row["sha256"])):
            raise ManifestError(f"{where}: row {number}: sha256 is not 64 lower-case hex digits")
        url = str(row["url"])
        if not host_of(url) or not in_domains(url, [host_of(url)]):
            raise ManifestError(f"{where}: row {number}: url {url!r} is not an http(s) URL")
        if row["id"] in seen:
            raise ManifestError(f"{where}: row {number}: duplicate id {row['id']!r}")
        seen.add(row["id"])
    return rows


def kept_texts(
    manifest: list[dict[str, Any]], existing: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """Texts of an earlier output still valid for this manifest: same id, same hash, and the
    text really has that hash (a hand-edited line is dropped and fetched again)."""
    wanted = {row["id"]: row["sha256"] for row in manifest}
    kept: dict[str, str] = {}
    for line in existing:
        row_id, text = line.get("id"), line.get("text")
        if (
            isinstance(row_id, str)
            and isinstance(text, str)
            and row_id in wanted
            and line.get("sha256") == wanted[row_id]
            and passage_hash(text) == wanted[row_id]
        ):
            kept[row_id] = text
    return kept


def rows_to_fetch(
    manifest: list[dict[str, Any]], kept: dict[str, str], *, refresh: bool, limit: int | None
) -> tuple[list[dict[str, Any]], int]:
    """The manifest rows to fetch this run, and how many more ``limit`` leaves for later."""
    todo = [row for row in manifest if refresh or row["id"] not in kept]
    if limit is None:
        return todo, 0
    return todo[:limit], max(0, len(todo) - limit)


def host_source_id(host: str) -> str:
    """A source id (``[a-z0-9][a-z0-9_-]*``) for a host: ``www.inform.kz`` -> ``www-inform-kz``."""
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-") or "host"


def group_by_host(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_host: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_host.setdefault(host_of(row["url"]), []).append(row)
    return by_host


def host_jobs(
    by_host: dict[str, list[dict[str, Any]]], user_agent: str, start_delay: float
) -> dict[str, dict]:
    """One crawler job per host, as ``collect_source`` builds it for the article spider.

    The source's domains are the host alone, so a redirect to any other host (even another
    outlet of the manifest) is not followed.
    """
    jobs: dict[str, dict] = {}
    for host, host_rows in by_host.items():
        outlets = sorted({str(r.get("outlet") or host) for r in host_rows})
        source = Source(
            id=host_source_id(host),
            name=", ".join(outlets),
            # Source requires these; the spiders do not read them. ZZ: ISO 3166 "unknown".
            country="ZZ",
            languages=sorted({str(r.get("lang") or "und") for r in host_rows}),
            affiliation="independent",
            domains=[host],
            verified=False,
            notes="built by cstowatch data hydrate from a manifest",
        )
        urls = list(dict.fromkeys(normalise(r["url"]) for r in host_rows))
        jobs[host] = {
            "source": source.model_dump(mode="json"),
            "article_urls": [{"url": url} for url in urls],
            "known": [],
            "user_agent": user_agent,
            "start_delay": start_delay,
        }
    return jobs


def paragraphs(text: str) -> list[str]:
    """The extractor writes one paragraph per line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def index_batch(records: Iterable[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int]:
    """Batch records by the URL they were asked for, and the crawler's count of off-site
    requests it dropped (a redirect off the host leaves no record of its own)."""
    by_url: dict[str, dict[str, Any]] = {}
    offsite = 0
    for record in records:
        kind = record.get("kind")
        if kind == "stats":
            offsite += int((record.get("stats") or {}).get("offsite/filtered", 0))
        elif kind in ("article", "failure", "event"):
            # An article record names the URL after redirects; its hint is the job entry.
            asked = (record.get("hint") or {}).get("url") or record.get("url")
            if asked:
                by_url.setdefault(normalise(str(asked)), record)
    return by_url, offsite


def classify_record(record: dict[str, Any]) -> tuple[str, str | None]:
    """Outcome of a URL whose page was not (or not usefully) extracted. Returns (outcome, why)."""
    kind = record.get("kind")
    if kind == "event":
        if record.get("status") == "robots_disallowed":
            return "blocked", "robots.txt disallows it"
        return "error", f"{record.get('status')}: {record.get('reason')}"
    if kind == "failure":
        status, error = record.get("http_status"), str(record.get("error") or "")
        if status in _GONE_STATUS:
            return "vanished", f"HTTP {status}"
        if status in _REFUSED_STATUS:
            return "blocked", f"HTTP {status}"
        if any(name in error for name in _UNREACHABLE):
            return "vanished", error
        return "error", f"HTTP {status}: {error}" if status else error
    status, reason = record.get("status"), record.get("reason")
    if status == "soft_404":
        return "vanished", f"soft 404 ({reason})"
    if status in _BLOCK_PAGES:
        return "blocked", f"{status} page ({reason})"
    if status == "ok":
        return "changed", "the paragraph is no longer on the page"
    return "error", f"{status}: {reason}"


def passage_on_page(record: dict[str, Any], sha256: str) -> str | None:
    """The paragraph of an extracted page that has the hash, whatever the page's status."""
    if record.get("kind") != "article":
        return None
    return find_passages(paragraphs(record.get("text") or ""), {sha256}).get(sha256)


def classify_silent(offsite: int, silent: int) -> tuple[str, str]:
    """Outcome of a URL the crawler left no record for.

    Scrapy drops a redirect off the host without calling the errback, so the batch only counts
    it; when that count accounts for every silent URL, that is what they are.
    """
    if offsite == silent:
        return "offsite", "redirects to another host (not followed)"
    return "error", (
        f"the crawler left no record ({offsite} off-site redirect(s) dropped "
        f"for {silent} URL(s) without a record)"
    )


def classify_host(
    rows: list[dict[str, Any]], records: Iterable[dict[str, Any]]
) -> list[RowOutcome]:
    """Outcomes of one host's manifest rows from its crawler batch."""
    by_url, offsite = index_batch(records)
    silent = {normalise(r["url"]) for r in rows} - set(by_url)
    outcomes: list[RowOutcome] = []
    for row in rows:
        lang = str(row.get("lang") or "und")
        record = by_url.get(normalise(row["url"]))
        text = None if record is None else passage_on_page(record, row["sha256"])
        why: str | None
        if record is None:
            outcome, why = classify_silent(offsite, len(silent))
        elif text is not None:
            outcome, why = "found", None
        else:
            outcome, why = classify_record(record)
        outcomes.append(RowOutcome(row["id"], row["url"], lang, outcome, why, text))
    return outcomes


def summarise(outcomes: list[RowOutcome]) -> dict[str, Counter[str]]:
    """Counts per language and outcome, plus an ``all`` line."""
    table: dict[str, Counter[str]] = {}
    for item in outcomes:
        for key in (item.lang, "all"):
            table.setdefault(key, Counter())[item.outcome] += 1
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == "all", kv[0])))


# ---------------------------------------------------------------------------- I/O


def load_manifest(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        rows = read_manifest(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(str(exc) if isinstance(exc, ValueError) else f"{path}: {exc}") from exc
    if not rows:
        raise ManifestError(f"{path}: the manifest is empty")
    return validate_manifest(rows, str(path))


def read_output(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return read_manifest(path)  # the same JSON-lines reading, with line numbers on errors
    except ValueError as exc:
        raise ManifestError(f"{exc}: fix or delete the output file, or use another --out") from exc


def read_batch(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def crawl_host(host_rows: list[dict[str, Any]], job: dict, batch: Path) -> list[RowOutcome]:
    """Run the spiders for one host; a failed crawl marks its rows as errors, nothing more."""
    try:
        run_spiders(job, batch)
    except CollectError as exc:
        return [
            RowOutcome(r["id"], r["url"], str(r.get("lang") or "und"), "error", str(exc))
            for r in host_rows
        ]
    return classify_host(host_rows, read_batch(batch))


def hydrate(
    manifest_path: Path,
    out: Path = DEFAULT_OUT,
    *,
    user_agent: str,
    refresh: bool = False,
    limit: int | None = None,
    concurrency: int = 4,
    start_delay: float = 0.5,
) -> HydrateResult:
    """Fetch what the output lacks and rewrite it. Raises :class:`ManifestError` on bad input."""
    manifest = load_manifest(manifest_path)
    kept = kept_texts(manifest, read_output(out))
    todo, left = rows_to_fetch(manifest, kept, refresh=refresh, limit=limit)
    by_host = group_by_host(todo)
    jobs = host_jobs(by_host, user_agent, start_delay)
    fetched: dict[str, RowOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="cstowatch-hydrate-") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            # numbered: two hosts can map to one source id (a-b.kz, a.b.kz)
            futures = [
                pool.submit(crawl_host, by_host[host], job, Path(tmp) / f"{n}.jsonl")
                for n, (host, job) in enumerate(jobs.items())
            ]
            for future in futures:
                fetched.update((o.id, o) for o in future.result())
    outcomes: list[RowOutcome] = []
    texts: list[dict[str, Any]] = []
    for row in manifest:
        outcome = fetched.get(row["id"])
        if outcome is None and row["id"] in kept:
            outcome = RowOutcome(
                row["id"],
                row["url"],
                str(row.get("lang") or "und"),
                "found",
                text=kept[row["id"]],
                fetched=False,
            )
        if outcome is not None:
            outcomes.append(outcome)
        text = outcome.text if outcome and outcome.text is not None else kept.get(row["id"])
        if text is not None:
            texts.append({"id": row["id"], "sha256": row["sha256"], "text": text})
    write_jsonl(out, texts)
    return HydrateResult(out=out, outcomes=outcomes, written=len(texts), left=left)
