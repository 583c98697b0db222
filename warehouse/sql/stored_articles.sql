-- The stored articles that share an id ($ids) or a URL ($urls) with a batch: those are skipped.
select article_id, url
from articles
where article_id in (select unnest($ids::varchar[]))
union
select article_id, url
from articles
where url in (select unnest($urls::varchar[]));
