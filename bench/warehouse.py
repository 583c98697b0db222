"""Warehouse benchmark: 1,000,000 synthetic articles with predictions, loaded the pipeline's way.

    .venv/bin/python bench/warehouse.py                  # 1,000,000 articles, FTS on 100,000
    .venv/bin/python bench/warehouse.py --rows 50000     # a quick run

(``BENCH_ROWS`` and ``BENCH_FTS_ROWS`` set the defaults of ``--rows`` and ``--fts-rows``.)
Steps (everything in a temporary directory, removed at the end unless ``--keep``):

1. generate the articles with DuckDB SQL (vectorised, no Python loop per row) as JSON-lines
   batch files of 100,000 article records each, the records collection writes (1% are exact
   copies of another outlet's text at their own URL), and the classifier results for them;
2. load them through the pipeline's own path into a file database created by
   ``warehouse.db.connect``: per batch ``read_batch`` + ``load_batch`` (validation, content
   hashes, exact-duplicate detection, MinHash story clustering, one transaction), then per
   100,000 results ``store_scores`` (validation, predictions, the ``stance_daily`` refresh of
   the days touched), then a checkpoint. That is the load rate, 2 rows (article + prediction)
   per article. Reloading one batch checks idempotency and times it;
3. time what the pipeline pays per call on the full database: ``load_batch`` of 50 new
   articles, ``store_scores`` of one 32-result chunk (the pipeline's CLASSIFY_CHUNK, with its
   ``stance_daily`` refresh), and ``refresh_daily`` (the full rebuild every run starts with);
4. time the analyst reads: all of ``daily_stance`` fetched, the ``weekly_stance`` rows of one
   outlet, a 31-day ``relevant_articles`` filter (after checking ``stance_daily`` equals the
   live aggregate);
5. build the full-text indexes with ``rebuild_search_index`` on a --fts-rows subset (1M
   documents on 2 cores is several minutes) and time ``search`` for a few queries;
6. report database size, peak memory (ru_maxrss) and a markdown table with the 1-minute load
   average next to each figure: on a shared machine wall time depends on the load, CPU time
   (all threads) much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# run as a script, bench/ is sys.path[0] and this file would shadow the `warehouse` package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import duckdb  # noqa: E402

from warehouse.db import connect  # noqa: E402
from warehouse.load import (  # noqa: E402
    STORY_LOOKBACK,
    _story_index,
    load_batch,
    read_batch,
    upsert_sources,
)
from warehouse.predictions import refresh_daily, register_model, store_scores  # noqa: E402
from warehouse.search import rebuild_search_index, search  # noqa: E402

CHUNK = 100_000
N_SOURCES = 20
MODEL = "bench-model"
PIPELINE_CHUNK = 32  # flows.stages.CLASSIFY_CHUNK

# outlets 0-7 Russian, 8-11 Kazakh, 12-15 English, 16-17 French, 18-19 mixed
SOURCES = [
    {"id": f"outlet-{k:02d}", "name": f"Outlet {k:02d}",
     "country": "RU" if k < 8 else "KZ" if k < 12 else "GB" if k < 16 else "FR" if k < 18
     else "KZ",
     "languages": (["ru"] if k < 8 else ["kk"] if k < 12 else ["en"] if k < 16
                   else ["fr"] if k < 18 else ["ru", "kk", "en", "fr"]),
     "affiliation": "state" if k % 3 == 0 else "independent" if k % 3 == 1 else "international",
     "domains": [f"outlet-{k:02d}.example"]}
    for k in range(N_SOURCES)
]

SYLLABLES = {
    "ru": "ка ро ни ст ва ли по ме за ту ре да ко ны ми ск ор ен ал ов",
    "kk": "қа ғы ңі өр ұл үн һа әр ін ба ты ла ды сы ке ме ар ет ол ші",
    "en": "ba co de ri ty ex pro tion st er in al ly mo ve pe na or an se",
    "fr": "la re sé cu ri té mi on pa de co ve ti è ma ne lo gi ru ça",
}
REAL_WORDS = {
    "ru": "санкции ОДКБ безопасность Казахстан учения генсек Россия союзники",
    "kk": "ҰҚШҰ қауіпсіздік Қазақстан бас хатшы келісім одақтас",
    "en": "sanctions CSTO security Kazakhstan exercises secretary general allies",
    "fr": "sanctions OTSC sécurité Kazakhstan exercices secrétaire général alliés",
}

VOCAB = """
create or replace table syl as select lang, unnest(syl) as x from syllables;
create or replace table vocab as
with words as (
    select a.lang, list(a.x || b.x || c.x order by hash(a.x || b.x || c.x)) as words
    from syl a join syl b using (lang) join syl c using (lang)
    group by a.lang
),
-- the real words sit at ranks 40.. of a Zipf-like draw: common, but not in every article
ranked as (
    select lang, unnest(list_concat(words[1:40], real, words[41:])) as w,
        generate_subscripts(list_concat(words[1:40], real, words[41:]), 1) as k
    from words join syllables using (lang)
)
select * from ranked;
create or replace table vocab_size as select lang, count(*) as v from vocab group by lang;
"""

# Article i of outlet i % 20; every 100th article (i % 100 = 1) is an exact copy of the text of
# article i - 1 (another outlet's wire copy), which the load must mark as a duplicate.
GENERATE = """
create or replace table gen as
with base as (
    select
        i,
        case when i % 100 = 1 then i - 1 else i end as t,
        i % 20 as src,
        case when i % 20 < 8 then 'ru' when i % 20 < 12 then 'kk' when i % 20 < 16 then 'en'
             when i % 20 < 18 then 'fr' else ['ru', 'kk', 'en', 'fr'][1 + (i // 20) % 4] end
            as lang,
        (hash(i, 'u1') % 10000) / 10000.0 as u1,
        (hash(i, 'u2') % 10000) / 10000.0 as u2,
        (hash(i, 'u3') % 10000) / 10000.0 as u3
    from range($lo, $hi) t(i)
),
texts_of as (
    select i as t, lang from base
    union
    select t, lang from (select b.t, p.lang from base b join base p on p.i = b.t)
),
draws as (
    select x.t, x.lang, r.j,
        1 + floor(vs.v * pow((hash(x.t, r.j) % 100000) / 100000.0, 2.5))::int as k
    from texts_of x join vocab_size vs using (lang), range(25) r(j)
),
words as (
    select d.t, string_agg(v.w, ' ' order by d.j) as text
    from draws d join vocab v using (lang, k)
    group by d.t
)
select
    b.i,
    md5(b.i::varchar) as article_id,
    'outlet-' || lpad(b.src::varchar, 2, '0') as source_id,
    'https://outlet-' || lpad(b.src::varchar, 2, '0') || '.example/news/' || b.i as url,
    array_to_string(string_split(w.text, ' ')[1:6], ' ') as title,
    w.text,
    b.lang,
    case when b.i % 20 = 7 then null else
        timestamptz '2024-01-01 00:00:00+00'
        + to_seconds((b.i * 63072000 // $n) + hash(b.i) % 3600) end as published_at,
    timestamptz '2024-01-01 02:00:00+00' + to_seconds(b.i * 63072000 // $n) as fetched_at,
    b.u1 * (case when b.src < 8 then 0.8 when b.src < 12 then 0.3 else 0.5 end) as p_pro_russian,
    b.u3 < 0.8 as relevant,
    b.u2,
    b.u3
from base b join words w using (t)
"""

# The records collection writes (crawlers/collect.py), one batch file per chunk.
ARTICLE_RECORDS = """
select
    'article' as kind,
    'ok' as status,
    article_id,
    source_id,
    url,
    url as canonical_url,
    title,
    text,
    lang,
    strftime(published_at, '%Y-%m-%dT%H:%M:%S+00:00') as published,
    strftime(fetched_at, '%Y-%m-%dT%H:%M:%S+00:00') as fetched_at,
    'bench' as extractor,
    'feed' as via
from gen
order by i
"""

# What score_chunk hands store_scores: the article-level prediction, no passages.
RESULTS = """
with p as (
    select i, article_id, lang, relevant, u3, p_pro_russian,
        (1 - p_pro_russian) * u2 * 0.7 as p_pro_kazakh
    from gen
)
select
    article_id,
    lang,
    []::varchar[] as passages,
    case when not relevant then null
         when p_pro_russian >= greatest(p_pro_kazakh, 1 - p_pro_russian - p_pro_kazakh)
            then 'pro_russian'
         when p_pro_kazakh >= 1 - p_pro_russian - p_pro_kazakh then 'pro_kazakh'
         else 'neutral' end as label,
    struct_pack(pro_russian := p_pro_russian, neutral := 1 - p_pro_russian - p_pro_kazakh,
                pro_kazakh := p_pro_kazakh) as probs,
    case when relevant then 0.5 + u3 / 2 else u3 / 2 end as relevance,
    relevant,
    []::varchar[] as evidence,
    false as quotes_other_side
from p
order by i
"""


def cpu_seconds() -> float:
    """CPU time of this process, all threads (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    return os.getloadavg()[0]


class Clock:
    """Wall and CPU seconds of a block, and the 1-minute load average at its end. On a shared
    machine wall time depends on the load; CPU seconds (summed over DuckDB's threads) do not,
    much: wall ≈ CPU / cores when idle."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.load = 0.0

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self.wall0
        self.cpu += cpu_seconds() - self.cpu0
        self.load = load_average()

    def __str__(self) -> str:
        return f"{self.wall:.2f} s (CPU {self.cpu:.2f} s)"


def timed(fn, repeat: int = 3) -> tuple[Clock, Clock, object]:  # type: ignore[no-untyped-def]
    """(first run, fastest run, last result) of ``fn``."""
    clocks, result = [], None
    for _ in range(repeat):
        with Clock() as clock:
            result = fn()
        clocks.append(clock)
    return clocks[0], min(clocks, key=lambda c: c.wall), result


def generate(work: Path, n: int) -> None:
    gen = duckdb.connect()
    gen.execute("set TimeZone = 'UTC'")
    gen.execute("create table syllables (lang varchar, syl varchar[], real varchar[])")
    for lang, syl in SYLLABLES.items():
        gen.execute("insert into syllables values (?, ?, ?)",
                    [lang, syl.split(), REAL_WORDS[lang].split()])
    gen.execute(VOCAB)
    for lo in range(0, n, CHUNK):
        gen.execute(GENERATE, {"lo": lo, "hi": min(n, lo + CHUNK), "n": n})
        gen.execute(f"copy ({ARTICLE_RECORDS}) to '{work}/batch_{lo:08d}.jsonl' "  # noqa: S608
                    f"(format json)")
        gen.execute(f"copy ({RESULTS}) to '{work}/results_{lo:08d}.jsonl' (format json)")
    gen.close()


def read_results(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def rate(count: int, clock: Clock, unit: str) -> str:
    return (f"{clock}: {count / clock.wall:,.0f} {unit}/s "
            f"({count / clock.cpu:,.0f} per CPU-second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "1000000")),
                        help="articles to generate and load (default 1,000,000)")
    parser.add_argument("--fts-rows", type=int,
                        default=int(os.environ.get("BENCH_FTS_ROWS", "100000")),
                        help="articles in the full-text search subset (default 100,000)")
    parser.add_argument("--keep", action="store_true", default=bool(os.environ.get("BENCH_KEEP")),
                        help="keep the temporary directory (batches and databases)")
    args = parser.parse_args()
    n, fts_n = args.rows, min(args.rows, args.fts_rows)
    chunks = [lo for lo in range(0, n, CHUNK)]

    work = Path(tempfile.mkdtemp(prefix="cstowatch-bench-"))
    figures: list[tuple[str, str, float, str]] = []

    def figure(name: str, value: str, clock: Clock | None = None, target: str = "") -> None:
        figures.append((name, value, clock.load if clock else load_average(), target))
        print(f"  {name}: {value}", flush=True)

    load_start = load_average()
    try:
        print(f"generating {n:,} articles + classifier results in {work} ...", flush=True)
        with Clock() as gen:
            generate(work, n)
        figure(f"generate {n:,} article records + results (SQL → JSON lines)", str(gen), gen)

        db = work / "bench.duckdb"
        con = connect(db)
        upsert_sources(con, SOURCES)
        register_model(con, {"model_id": MODEL, "encoder_id": "synthetic", "labels":
                             ["pro_russian", "neutral", "pro_kazakh"], "card": {}}, "0" * 64)

        read, load, store, checkpoint = Clock(), Clock(), Clock(), Clock()
        added = duplicates = 0
        for lo in chunks:
            with read:
                rows = read_batch(work / f"batch_{lo:08d}.jsonl")
            with load:
                report = load_batch(con, rows, f"bench-{lo // CHUNK}")
            assert not report.rejected, report.rejected[:3]
            added, duplicates = added + report.added, duplicates + report.duplicates
            print(f"  batch {lo // CHUNK}: {load} so far, load average {load.load:.1f}",
                  flush=True)
        del rows
        for lo in chunks:
            results = read_results(work / f"results_{lo:08d}.jsonl")
            with store:
                rejected = store_scores(con, MODEL, results)
            assert not rejected, rejected[:3]
            print(f"  results {lo // CHUNK}: {store} so far, load average {store.load:.1f}",
                  flush=True)
        del results
        with checkpoint:
            con.execute("checkpoint")
        n_articles, n_dups = con.execute(  # type: ignore[misc]
            "select count(*), count(duplicate_of) from articles").fetchone()
        n_preds = con.execute("select count(*) from stance_predictions").fetchone()[0]  # type: ignore[index]
        assert n_articles == added == n and n_preds == n, (n_articles, added, n_preds)
        assert n_dups == len(range(1, n, 100)), n_dups

        total = Clock()
        for part in (read, load, store, checkpoint):
            total.wall, total.cpu = total.wall + part.wall, total.cpu + part.cpu
        total.load = load_average()
        figure("load: `read_batch` + `load_batch` + `store_scores` + checkpoint, "
               "100k-row batches (2 rows per article)", rate(2 * n, total, "rows"), total,
               "> 50,000 rows/s")
        figure(f"… `read_batch` (JSON lines, {n:,} records)", rate(n, read, "records"), read)
        figure(f"… `load_batch` ({n:,} articles, {n_dups:,} exact duplicates found)",
               rate(n, load, "articles"), load)
        figure(f"… `store_scores` ({n:,} predictions, with the `stance_daily` refresh)",
               rate(n, store, "predictions"), store)
        figure("… checkpoint", str(checkpoint), checkpoint)

        again = read_batch(work / "batch_00000000.jsonl")
        with Clock() as reload:
            report = load_batch(con, again, "bench-again")
        assert report.added == 0 and report.duplicates == len(again), report
        del again
        figure(f"reload of a stored {min(n, CHUNK):,}-article batch (adds nothing)", str(reload),
               reload)

        size = disk_size(db)
        figure("database size on disk", f"{size / 2**20:,.0f} MiB ({size / n:,.0f} B/article)")

        # what the pipeline pays per call on the full database
        since = con.execute("select max(fetched_at) from articles").fetchone()[0] - STORY_LOOKBACK  # type: ignore[index]
        small = [dict(r, article_id="x" + r["article_id"][1:], url=r["url"] + "-new",
                      fetched_at="2026-11-01T00:00:00+00:00", _line=k)
                 for k, r in enumerate(read_batch(work / "batch_00000000.jsonl")[:50], 1)]
        with Clock() as small_load:
            report = load_batch(con, small, "bench-small")
        assert report.added == len(small), report
        figure(f"`load_batch` of {len(small)} new articles into the {n:,}-article database",
               str(small_load), small_load)
        # The synthetic articles are older than STORY_LOOKBACK, so the loads above found no
        # story candidates; a live database has 30 days of them, read by every load that adds.
        with Clock() as candidates:
            index = _story_index(con, since)
        figure(f"story index of the last 30 days ({len(index.story_of):,} candidates), built by "
               "every `load_batch` that adds an article", str(candidates), candidates)
        del index
        chunk = [dict(r, article_id=a["article_id"]) for r, a in zip(
            read_results(work / "results_00000000.jsonl")[:PIPELINE_CHUNK], small, strict=False)]
        with Clock() as small_store:
            store_scores(con, MODEL, chunk)
        figure(f"`store_scores` of one {PIPELINE_CHUNK}-result chunk (refreshes its days of "
               "`stance_daily`)", str(small_store), small_store)
        with Clock() as refresh:
            refresh_daily(con)
        figure("`refresh_daily`: full rebuild of `stance_daily` (every run starts with it)",
               str(refresh), refresh)

        live = con.execute("select count(*), sum(n_articles), sum(mass_pro_russian) "
                           "from daily_stance_live").fetchone()
        table = con.execute("select count(*), sum(n_articles), sum(mass_pro_russian) "
                            "from daily_stance").fetchone()
        assert live and table and live[:2] == table[:2] and abs(live[2] - table[2]) < 1e-6
        cold, warm, daily = timed(lambda: con.execute("select * from daily_stance").fetchnumpy())
        n_daily = len(daily["day"])  # type: ignore[index]
        figure(f"all of `daily_stance` ({n_daily:,} rows) fetched",
               f"{warm} (first {cold.wall:.3f} s)", warm, "< 1 s")
        cold, warm, weekly = timed(lambda: con.execute(
            "select * from weekly_stance where source_id = 'outlet-03' order by week"
        ).fetchall())
        figure(f"`weekly_stance` of one outlet ({len(weekly):,} rows)",  # type: ignore[arg-type]
               f"{warm} (first {cold.wall:.3f} s)", warm, "< 1 s")
        cold, warm, _ = timed(lambda: con.execute(
            "select lang, count(*), avg(p_pro_russian) from relevant_articles "
            "where day >= date '2025-12-01' group by lang").fetchall())
        figure("`relevant_articles`, last 31 days by language",
               f"{warm} (first {cold.wall:.3f} s)", warm, "")
        con.close()

        fts_db = work / "fts.duckdb"
        fts = connect(fts_db)
        upsert_sources(fts, SOURCES)
        fts.execute(f"attach '{db}' as src (read_only)")
        step = max(1, n // fts_n)
        fts.execute(f"insert into articles select * from src.articles "  # noqa: S608 - constants
                    f"where hash(article_id) % {step} = 0 limit {fts_n}")
        fts.execute("detach src")
        n_fts = fts.execute("select count(*) from articles").fetchone()[0]  # type: ignore[index]
        with Clock() as build:
            per_lang = rebuild_search_index(fts)
        figure(f"`rebuild_search_index` on a {n_fts:,}-article subset "
               f"({', '.join(f'{k} {v:,}' for k, v in per_lang.items() if v)})", str(build), build)
        best: dict[str, Clock] = {}
        for query in ("санкции ОДКБ", "Қазақстан қауіпсіздік", "sécurité OTSC",
                      "secretary general", "sanctions"):
            _, fastest, hits = timed(lambda q=query: search(fts, q, limit=20))
            best[query] = fastest
            print(f"  search {query!r}: {fastest}, {len(hits)} hits")  # type: ignore[arg-type]
        walls = sorted(c.wall for c in best.values())
        cpus = sorted(c.cpu for c in best.values())
        figure(f"`search` (all languages, limit 20) over {n_fts:,} articles, 5 queries",
               f"median {statistics.median(walls):.2f} s (CPU {statistics.median(cpus):.2f} s), "
               f"worst {walls[-1]:.2f} s")
        fts.close()
        figure("FTS database size (subset)", f"{disk_size(fts_db) / 2**20:,.0f} MiB")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figure("peak memory (ru_maxrss)", f"{peak:,.0f} MiB")
    figure("machine load average (1 min) at start / end",
           f"{load_start:.1f} / {load_average():.1f} on {os.cpu_count()} cores",
           target="wall times assume an idle machine")
    print()
    print(f"| measure ({n:,} articles) | wall (CPU) | load avg | target |")
    print("| --- | --- | --- | --- |")
    for name, value, load_avg, target in figures:
        print(f"| {name} | {value} | {load_avg:.1f} | {target} |")


if __name__ == "__main__":
    main()
