-- One language's search table, rebuilt by warehouse.search.rebuild_search_index.
-- {table} is search_docs_<idx>; $idx is en | ru | kk | fr | other. An article's language is the
-- detected one (articles.lang) or, before classification, the declared one (lang_declared);
-- 'other' collects every other language and articles with none. ё is folded to е so that
-- "ещё" and "еще" match (the Russian stemmer does this itself; Kazakh has no stemmer).
create or replace table {table} as
select
    a.article_id,
    a.source_id,
    coalesce(a.lang, a.lang_declared) as lang,
    coalesce(a.published_at, a.published_date, a.fetched_at) as published_at,
    replace(replace(coalesce(a.title, ''), 'ё', 'е'), 'Ё', 'Е') as title,
    replace(replace(a.text, 'ё', 'е'), 'Ё', 'Е') as body
from articles a
where case
    when $idx = 'other' then coalesce(a.lang, a.lang_declared, '') not in ('en', 'ru', 'kk', 'fr')
    else coalesce(a.lang, a.lang_declared) = $idx
end
order by a.article_id;
