"""Multilingual full-text search: BM25 over DuckDB's ``fts`` extension, one index per language.

The extension comes from the pip package ``duckdb-extension-fts`` (pinned with duckdb); it is
signed, so ``LOAD '<path>'`` works on a default connection, read-only ones included, with no
``allow_unsigned_extensions``. Nothing is downloaded.

One FTS index has one stemmer, so articles are split by language (detected ``lang``, else
``lang_declared``) into the tables ``search_docs_en``, ``_ru``, ``_kk``, ``_fr`` and ``_other``,
each indexed on (title, body) with its own settings (``INDEXES``). The extension's default
``ignore`` pattern keeps only a-z, which would drop every Cyrillic word; ``IGNORE`` keeps Latin
(with accents), Cyrillic and the Kazakh letters әғқңөұүһі. Russian keeps its accents-as-letters
(``strip_accents=0``: stripping would turn й into и and break the stemmer's -ый/-ий endings);
French and English strip accents, so "securite" finds "sécurité" and the other way round.

The indexes are snapshots: ``rebuild_search_index`` rebuilds them all (after loads and after
classification, which sets ``articles.lang``). ``search_meta`` records when and with how many
documents each one was built.

Ranking across languages: BM25 scores from different indexes are not comparable, so a hit's
``score`` is its BM25 divided by the best BM25 of its language for the query (the best match in
each language scores 1.0); ties go to the higher raw BM25 (``bm25``), then to the newer article.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb

from warehouse.db import sql, transaction

#: Characters that are NOT part of a token (the FTS ``ignore`` regex, applied after lower()).
LETTERS = "a-z0-9à-öø-ÿœæа-яёәғқңөұүһіїєґў"
IGNORE = f"[^{LETTERS}]+"
_TOKEN = re.compile(f"[{LETTERS}]+")
_WORD = re.compile(r"\w+", re.UNICODE)

STOPWORDS_RU = """
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне
было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до
вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы
тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому
этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех
никогда можно при наконец об другой хоть после над больше тот через эти нас про всего них
какая много разве эту моя впрочем свою этой перед иногда лучше чуть том нельзя такой им более
всегда конечно всю между это также
""".split()
STOPWORDS_FR = """
au aux avec ce ces dans de des du elle en et eux il ils je la le les leur lui ma mais me même mes
moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un
une vos votre vous c d j l à m n s t y été est sont a ont été était cette cet plus aussi comme
être avoir fait sans entre
""".split()
STOPWORDS_KK = """
және мен бен пен да де та те бұл осы сол ол деп үшін бойынша туралы сияқты бірақ немесе әрі еді
жоқ бар болып болды екен ғана тек кейін дейін арқылы қазір біз сіз олар оның оны оған
""".split()


@dataclass(frozen=True)
class IndexSpec:
    idx: str
    stemmer: str
    strip_accents: bool
    stopwords: tuple[str, ...] | str  # words, or the name of a built-in list ('english', 'none')

    @property
    def table(self) -> str:
        return f"search_docs_{self.idx}"


INDEXES: dict[str, IndexSpec] = {
    "en": IndexSpec("en", "english", True, "english"),
    "ru": IndexSpec("ru", "russian", False, tuple(STOPWORDS_RU)),
    "kk": IndexSpec("kk", "none", False, tuple(STOPWORDS_KK)),
    "fr": IndexSpec("fr", "french", True, tuple(STOPWORDS_FR)),
    "other": IndexSpec("other", "none", False, "none"),
}


class SearchIndexMissing(RuntimeError):
    """search() before rebuild_search_index() ever ran on this database."""


def extension_path() -> Path | None:
    """The fts.duckdb_extension shipped by the duckdb-extension-fts package, if installed."""
    spec = find_spec("duckdb_extension_fts")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    exact = root / f"v{duckdb.__version__}" / "fts.duckdb_extension"
    if exact.exists():
        return exact
    found = sorted(root.glob("*/fts.duckdb_extension"))
    return found[-1] if found else None


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    """Load the fts extension into this connection from the pip package (no download)."""
    loaded = con.execute(
        "select loaded from duckdb_extensions() where extension_name = 'fts'"
    ).fetchone()
    if loaded and loaded[0]:
        return
    path = extension_path()
    if path is None:
        raise RuntimeError(
            "the DuckDB fts extension is not installed: pip install "
            f"duckdb-extension-fts=={duckdb.__version__}"
        )
    con.execute(f"load '{path.as_posix()}'")


def _pragma(spec: IndexSpec, stopwords: str) -> str:
    return (
        f"pragma create_fts_index('{spec.table}', 'article_id', 'title', 'body', "
        f"stemmer = '{spec.stemmer}', stopwords = '{stopwords}', ignore = '{IGNORE}', "
        f"strip_accents = {int(spec.strip_accents)}, lower = 1, overwrite = 1)"
    )


def _fold(text: str, strip_accents: bool) -> str:
    """What the index does to text before splitting: lower, ё→е, maybe strip accents."""
    text = text.lower().replace("ё", "е")
    if strip_accents:
        text = "".join(
            c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
        )
    return text


def rebuild_search_index(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild every language's search table and FTS index in one transaction.

    Returns the number of documents per index (en, ru, kk, fr, other).
    """
    load_fts(con)
    counts: dict[str, int] = {}
    now = datetime.now(UTC)
    with transaction(con):
        con.execute(
            "create or replace table search_meta (idx varchar primary key, table_name varchar "
            "not null, stemmer varchar not null, strip_accents boolean not null, "
            "n_docs bigint not null, built_at timestamptz not null)"
        )
        for spec in INDEXES.values():
            con.execute(sql("search_docs").format(table=spec.table), {"idx": spec.idx})
            stopwords = spec.stopwords
            if isinstance(stopwords, tuple):
                stopwords = f"search_stopwords_{spec.idx}"
                con.execute(f"create or replace temp table {stopwords} (sw varchar)")
                words = sorted({_fold(w, spec.strip_accents) for w in spec.stopwords})
                con.executemany(f"insert into {stopwords} values (?)",  # noqa: S608 - constant
                                [[w] for w in words])
            con.execute(_pragma(spec, stopwords))
            if stopwords.startswith("search_stopwords_"):
                con.execute(f"drop table {stopwords}")
            row = con.execute(f"select count(*) from {spec.table}").fetchone()  # noqa: S608
            counts[spec.idx] = int(row[0]) if row else 0
            con.execute(
                "insert into search_meta values (?, ?, ?, ?, ?, ?)",
                [spec.idx, spec.table, spec.stemmer, spec.strip_accents, counts[spec.idx], now],
            )
    return counts


def _built(con: duckdb.DuckDBPyConnection) -> list[str]:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'search_meta'"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    return [r[0] for r in con.execute("select idx from search_meta order by idx").fetchall()]


def _stems(con: duckdb.DuckDBPyConnection, query: str, spec: IndexSpec) -> list[str]:
    tokens = _TOKEN.findall(_fold(query, spec.strip_accents))
    if isinstance(spec.stopwords, tuple):
        stop = {_fold(w, spec.strip_accents) for w in spec.stopwords}
        tokens = [t for t in tokens if t not in stop] or tokens
    if not tokens:
        return []
    row = con.execute(
        "select list_transform($tokens, t -> stem(t, $stemmer))",
        {"tokens": tokens, "stemmer": spec.stemmer},
    ).fetchone()
    return [s for s in (row[0] if row else []) if s]


def snippet(text: str, stems: list[str], strip_accents: bool, width: int = 220) -> str:
    """About ``width`` characters of ``text`` around the first word matching a query stem."""
    text = " ".join(text.split())
    at = 0
    for match in _WORD.finditer(text):
        word = _fold(match.group(0), strip_accents)
        if any(word.startswith(s) for s in stems):
            at = match.start()
            break
    start = max(0, at - width // 3)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < at else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > at else end
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def search(
    con: duckdb.DuckDBPyConnection,
    query: str,
    limit: int = 20,
    lang: str | None = None,
    *,
    conjunctive: bool = False,
) -> list[dict[str, Any]]:
    """Rank articles for ``query`` by BM25 across the language indexes.

    Each result: article_id, source_id, title, url, lang, published_at, score (BM25 normalised
    by the best BM25 of the same language, so in (0, 1]), bm25 (raw), snippet. ``lang`` limits
    the search to one language (en, ru, kk, fr; anything else searches ``other`` and keeps that
    language only). ``conjunctive`` requires every query term.
    """
    if not _TOKEN.search(_fold(query, True)):
        return []
    load_fts(con)
    built = _built(con)
    if not built:
        raise SearchIndexMissing(
            "the database has no search index yet: call warehouse.search.rebuild_search_index"
        )
    wanted = [lang if lang in INDEXES else "other"] if lang else list(INDEXES)
    groups = [g for g in wanted if g in built]
    if not groups:
        return []
    hits = "\nunion all\n".join(
        sql("search_hits").format(table=INDEXES[g].table, idx=g) for g in groups
    )
    text = sql("search_results").format(hits=hits)
    cursor = con.execute(
        text,
        {"query": query.replace("ё", "е").replace("Ё", "Е"), "conjunctive": int(conjunctive),
         "limit": limit if not lang or lang in INDEXES else limit * 10},
    )
    columns = [d[0] for d in cursor.description or []]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    if lang and lang not in INDEXES:
        rows = [r for r in rows if r["lang"] == lang][:limit]
    stems = {g: _stems(con, query, INDEXES[g]) for g in {r["idx"] for r in rows}}
    results = []
    for r in rows:
        spec = INDEXES[r.pop("idx")]
        body = r.pop("text")
        r["snippet"] = snippet(body, stems[spec.idx], spec.strip_accents)
        results.append(r)
    return results
