-- BM25 hits of $query in one language's index ({table}, language group '{idx}').
select
    '{idx}' as idx,
    article_id,
    fts_main_{table}.match_bm25(article_id, $query, conjunctive := $conjunctive) as bm25
from {table}
where bm25 is not null
