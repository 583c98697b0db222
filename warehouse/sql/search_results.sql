-- Merge the per-language hits (the hits CTE is a union of search_hits.sql) into one ranking.
-- BM25 scores of different indexes are not comparable (different stemmers, vocabularies and
-- document counts), so each hit's score is its BM25 divided by the best BM25 in its language
-- for this query: the best match of every language scores 1.0. Ties go to the higher raw BM25,
-- then to the newer article.
with hits as (
    {hits}
),
normed as (
    select idx, article_id, bm25, bm25 / max(bm25) over (partition by idx) as score
    from hits
)
select
    a.article_id,
    a.source_id,
    a.title,
    a.url,
    coalesce(a.lang, a.lang_declared) as lang,
    a.published_at,
    n.score,
    n.bm25,
    n.idx,
    a.text
from normed n
join articles a using (article_id)
order by n.score desc, n.bm25 desc, coalesce(a.published_at, a.fetched_at) desc, a.article_id
limit $limit
