"""Warehouse benchmark: 1,000,000 synthetic articles with stance predictions.

    .venv/bin/python bench/warehouse.py            # BENCH_ROWS=1000000 BENCH_FTS_ROWS=100000

Steps (everything in a temporary directory, removed at the end):

1. generate the articles and their article-level predictions with DuckDB SQL (vectorised, no
   Python loop per row) into Parquet chunks of 100,000 rows, like batch files;
2. load them through the real schema into a file database created by ``warehouse.db.connect``
   (migrations, primary keys, unique url), one transaction per chunk; the bulk path
   (``insert ... select from read_parquet``) is what is timed as the load rate. For comparison
   the pipeline's row-by-row ``load_batch`` (MinHash story clustering per article) is timed on
   a small batch in a separate database;
3. time the analyst views: all of ``daily_stance`` materialised (fetched to Arrow), the
   ``weekly_stance`` rows of one outlet, a 30-day ``relevant_articles`` filter;
4. build the full-text indexes with ``rebuild_search_index`` on a BENCH_FTS_ROWS subset (1M
   documents on 2 cores is several minutes) and time ``search`` for a few queries;
5. report database size, peak memory (ru_maxrss) and a markdown table.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# run as a script, bench/ is sys.path[0] and this file would shadow the `warehouse` package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import duckdb  # noqa: E402

from warehouse.db import connect, transaction  # noqa: E402
from warehouse.load import load_batch, upsert_sources  # noqa: E402
from warehouse.predictions import register_model  # noqa: E402
from warehouse.search import rebuild_search_index, search  # noqa: E402

N = int(os.environ.get("BENCH_ROWS", "1000000"))
FTS_N = min(N, int(os.environ.get("BENCH_FTS_ROWS", "100000")))
CHUNK = 100_000
N_SOURCES = 20
MODEL = "bench-model"

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

GENERATE = """
create or replace table gen as
with base as (
    select
        i,
        i % 20 as src,
        case when i % 20 < 8 then 'ru' when i % 20 < 12 then 'kk' when i % 20 < 16 then 'en'
             when i % 20 < 18 then 'fr' else ['ru', 'kk', 'en', 'fr'][1 + (i // 20) % 4] end
            as lang,
        (hash(i, 'u1') % 10000) / 10000.0 as u1,
        (hash(i, 'u2') % 10000) / 10000.0 as u2,
        (hash(i, 'u3') % 10000) / 10000.0 as u3
    from range($lo, $hi) t(i)
),
draws as (
    select b.i, b.lang, r.j,
        1 + floor(vs.v * pow((hash(b.i, r.j) % 100000) / 100000.0, 2.5))::int as k
    from base b join vocab_size vs using (lang), range(25) r(j)
),
words as (
    select d.i, string_agg(v.w, ' ' order by d.j) as text
    from draws d join vocab v using (lang, k)
    group by d.i
),
texts as (
    select b.*, w.text from base b join words w using (i)
)
select
    md5(i::varchar) as article_id,
    'outlet-' || lpad(src::varchar, 2, '0') as source_id,
    'https://outlet-' || lpad(src::varchar, 2, '0') || '.example/news/' || i as url,
    null::varchar as canonical_url,
    array_to_string(string_split(text, ' ')[1:6], ' ') as title,
    text,
    lang,
    lang as lang_declared,
    case when i % 20 = 7 then null else
        timestamptz '2024-01-01 00:00:00+00'
        + to_seconds((i * 63072000 // $n) + hash(i) % 3600) end as published_at,
    timestamptz '2024-01-01 02:00:00+00' + to_seconds(i * 63072000 // $n) as fetched_at,
    sha256(text) as content_sha256,
    md5((i - i % 3)::varchar) as story_id,
    case when i % 100 = 1 then md5((i - 1)::varchar) end as duplicate_of,
    'bench' as extractor,
    'feed' as via,
    25 as word_count,
    'bench-' || (i // 100000) as run_id,
    -- the article-level prediction
    u1 * (case when src < 8 then 0.8 when src < 12 then 0.3 else 0.5 end) as p_pro_russian,
    u3 < 0.8 as relevant,
    u2,
    u3
from texts
"""

PREDICT = """
create or replace table gen_pred as
with p as (
    select article_id, lang, relevant, u3, p_pro_russian,
        (1 - p_pro_russian) * u2 * 0.7 as p_pro_kazakh
    from gen
)
select
    $model as model_id,
    article_id,
    -1 as passage_idx,
    case when not relevant then null
         when p_pro_russian >= greatest(p_pro_kazakh, 1 - p_pro_russian - p_pro_kazakh)
            then 'pro_russian'
         when p_pro_kazakh >= 1 - p_pro_russian - p_pro_kazakh then 'pro_kazakh'
         else 'neutral' end as label,
    p_pro_russian,
    1 - p_pro_russian - p_pro_kazakh as p_neutral,
    p_pro_kazakh,
    case when relevant then 0.5 + u3 / 2 else u3 / 2 end as relevance,
    relevant,
    lang,
    null::double as weight,
    false as quotes_other_side,
    null::json as evidence,
    now() as created_at
from p;
"""

ARTICLE_COLUMNS = (
    "article_id, source_id, url, canonical_url, title, text, lang, lang_declared, published_at, "
    "fetched_at, content_sha256, story_id, duplicate_of, extractor, via, word_count, run_id"
)


def cpu_seconds() -> float:
    """CPU time of this process, all threads (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds of a block. On a shared machine wall time depends on the load;
    CPU seconds (summed over DuckDB's threads) do not, much: wall ≈ CPU / cores when idle."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = cpu_seconds() - self.cpu0

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


def generate(work: Path) -> None:
    gen = duckdb.connect()
    gen.execute("set TimeZone = 'UTC'")
    gen.execute("create table syllables (lang varchar, syl varchar[], real varchar[])")
    for lang, syl in SYLLABLES.items():
        gen.execute("insert into syllables values (?, ?, ?)",
                    [lang, syl.split(), REAL_WORDS[lang].split()])
    gen.execute(VOCAB)
    for lo in range(0, N, CHUNK):
        hi = min(N, lo + CHUNK)
        gen.execute(GENERATE, {"lo": lo, "hi": hi, "n": N})
        gen.execute(PREDICT, {"model": MODEL})
        gen.execute(f"copy (select {ARTICLE_COLUMNS} from gen) to "  # noqa: S608 - constants
                    f"'{work}/articles_{lo:08d}.parquet' (format parquet)")
        gen.execute(f"copy gen_pred to '{work}/predictions_{lo:08d}.parquet' (format parquet)")
    gen.close()


def bulk_load(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    for lo in range(0, N, CHUNK):
        with transaction(con):
            con.execute(f"insert into articles ({ARTICLE_COLUMNS}) "  # noqa: S608 - constants
                        f"select * from read_parquet('{work}/articles_{lo:08d}.parquet')")
            con.execute("insert into stance_predictions select * from "  # noqa: S608
                        f"read_parquet('{work}/predictions_{lo:08d}.parquet')")


def row_by_row_load(work: Path, db: Path, n: int) -> float:
    """The pipeline's own load_batch (validation, MinHash story index) on ``n`` new articles
    added to the database at ``db``; articles per second."""
    con = connect(db)
    upsert_sources(con, SOURCES)
    rows = con.execute(
        f"select 'x' || article_id[2:], source_id, url || '-new', title, "  # noqa: S608
        f"text || ' ' || article_id, lang, "
        f"strftime(published_at, '%Y-%m-%dT%H:%M:%S+00:00') as published, "
        f"strftime(now(), '%Y-%m-%dT%H:%M:%S+00:00') as fetched_at "
        f"from read_parquet('{work}/articles_00000000.parquet') limit {n}"
    ).fetchall()
    columns = ["article_id", "source_id", "url", "title", "text", "lang", "published",
               "fetched_at"]
    batch = [dict(zip(columns, r, strict=True), kind="article", status="ok", via="feed",
                  extractor="bench", _line=k) for k, r in enumerate(rows, 1)]
    with Clock() as clock:
        report = load_batch(con, batch, "bench-rows")
    con.close()
    assert report.added == n, report
    return n / clock.wall


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cstowatch-bench-"))
    figures: list[tuple[str, str, str]] = []
    load_before = os.getloadavg()[0]
    try:
        print(f"generating {N:,} articles + predictions in {work} ...", flush=True)
        with Clock() as gen:
            generate(work)
        print(f"  {gen}", flush=True)
        figures.append((f"generate {N:,} articles + predictions (SQL → Parquet)", str(gen), ""))

        db = work / "bench.duckdb"
        con = connect(db)
        upsert_sources(con, SOURCES)
        register_model(con, {"model_id": MODEL, "encoder_id": "synthetic", "labels":
                             ["pro_russian", "neutral", "pro_kazakh"], "card": {}}, "0" * 64)
        with Clock() as load:
            bulk_load(con, work)
            con.execute("checkpoint")
        n_articles = con.execute("select count(*) from articles").fetchone()[0]  # type: ignore[index]
        n_preds = con.execute("select count(*) from stance_predictions").fetchone()[0]  # type: ignore[index]
        assert n_articles == N and n_preds == N
        rate = N / load.wall
        print(f"loaded {N:,} articles + {N:,} predictions: {load} = {rate:,.0f} articles/s, "
              f"{2 * N / load.wall:,.0f} rows/s", flush=True)
        figures.append(("bulk load: articles + predictions, 100k-row transactions, checkpoint",
                        f"{load}: {rate:,.0f} articles/s = {2 * N / load.wall:,.0f} rows/s "
                        f"({2 * N / load.cpu:,.0f} rows per CPU-second)",
                        "> 50,000 rows/s"))
        size = disk_size(db)
        figures.append(("database size on disk", f"{size / 2**20:,.0f} MiB "
                        f"({size / N:,.0f} B/article)", ""))

        cold, warm, daily = timed(lambda: con.execute("select * from daily_stance").fetchnumpy())
        n_daily = len(daily["day"])  # type: ignore[index]
        figures.append((f"all of `daily_stance` ({n_daily:,} rows) fetched",
                        f"{warm} (first {cold.wall:.2f} s)", "< 1 s"))
        cold, warm, weekly = timed(lambda: con.execute(
            "select * from weekly_stance where source_id = 'outlet-03' order by week"
        ).fetchall())
        figures.append((f"`weekly_stance` of one outlet ({len(weekly):,} weeks)",  # type: ignore[arg-type]
                        f"{warm} (first {cold.wall:.2f} s)", "< 1 s"))
        cold, warm, _ = timed(lambda: con.execute(
            "select lang, count(*), avg(p_pro_russian) from relevant_articles "
            "where day >= date '2025-12-01' group by lang").fetchall())
        figures.append(("`relevant_articles`, last 31 days by language",
                        f"{warm} (first {cold.wall:.2f} s)", "< 1 s"))
        # the fix if the views are too slow: a daily table refreshed after each scoring run
        with Clock() as refresh:
            con.execute("create or replace temp table stance_daily as select * from daily_stance")
        _, warm, _ = timed(lambda: con.execute("select * from stance_daily").fetchnumpy())
        _, warm_w, _ = timed(lambda: con.execute(
            "select cast(date_trunc('week', day) as date) as week, lang, sum(n_articles), "
            "sum(mass_pro_russian) / sum(n_articles) from stance_daily "
            "where source_id = 'outlet-03' group by all order by week").fetchall())
        figures.append(("materialised daily table: refresh / read all / one outlet weekly",
                        f"{refresh} / {warm.wall:.3f} s / {warm_w.wall:.3f} s", "< 1 s"))
        con.close()

        empty_rate = row_by_row_load(work, work / "rows.duckdb", 1000)
        full_rate = row_by_row_load(work, db, 200)
        figures.append(("pipeline `load_batch` (row by row, MinHash story index)",
                        f"{empty_rate:,.0f} articles/s into an empty database (1,000), "
                        f"{full_rate:,.0f} articles/s into the {N:,}-article one (200)",
                        "(for comparison)"))

        fts_db = work / "fts.duckdb"
        fts = connect(fts_db)
        upsert_sources(fts, SOURCES)
        fts.execute(f"attach '{db}' as src (read_only)")
        step = max(1, N // FTS_N)
        fts.execute(f"insert into articles select * from src.articles "  # noqa: S608 - constants
                    f"where hash(article_id) % {step} = 0 limit {FTS_N}")
        fts.execute("detach src")
        n_fts = fts.execute("select count(*) from articles").fetchone()[0]  # type: ignore[index]
        with Clock() as build:
            per_lang = rebuild_search_index(fts)
        figures.append((f"`rebuild_search_index` on a {n_fts:,}-article subset "
                        f"({', '.join(f'{k} {v:,}' for k, v in per_lang.items() if v)})",
                        str(build), ""))
        best: dict[str, Clock] = {}
        for query in ("санкции ОДКБ", "Қазақстан қауіпсіздік", "sécurité OTSC",
                      "secretary general", "sanctions"):
            _, fastest, hits = timed(lambda q=query: search(fts, q, limit=20))
            best[query] = fastest
            print(f"  search {query!r}: {fastest}, {len(hits)} hits")  # type: ignore[arg-type]
        walls = sorted(c.wall for c in best.values())
        cpus = sorted(c.cpu for c in best.values())
        figures.append((f"`search` (all languages, limit 20) over {n_fts:,} articles, 5 queries",
                        f"median {statistics.median(walls):.2f} s (CPU "
                        f"{statistics.median(cpus):.2f} s), worst {walls[-1]:.2f} s", ""))
        fts.close()
        figures.append(("FTS database size (subset)", f"{disk_size(fts_db) / 2**20:,.0f} MiB", ""))
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.append(("peak memory (ru_maxrss)", f"{peak:,.0f} MiB", ""))
    figures.append(("machine load average (1 min) at start / end",
                    f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
                    "wall times assume an idle machine"))
    print()
    print(f"| measure ({N:,} articles) | wall (CPU) | target |")
    print("| --- | --- | --- |")
    for name, value, target in figures:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
