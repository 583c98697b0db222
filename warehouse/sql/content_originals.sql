-- The first stored copy (by fetched_at, then id) of each text in $digests (content hashes):
-- a new article with the same text is an exact duplicate of it.
select content_sha256, fetched_at, article_id, story_id
from articles
where content_sha256 in (select unnest($digests::varchar[]))
qualify row_number() over (partition by content_sha256 order by fetched_at, article_id) = 1;
