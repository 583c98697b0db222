-- The first stored article with the same text (content hash), if any.
select arg_min(article_id, fetched_at), arg_min(story_id, fetched_at)
from articles
where content_sha256 = $digest
having count(*) > 0;
