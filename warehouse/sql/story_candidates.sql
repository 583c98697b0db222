-- Recent articles' MinHash signatures: the candidates a new article may join as a story.
select a.article_id, a.story_id, m.signature
from articles a
join article_minhash m using (article_id)
where a.fetched_at >= $since or a.published_at >= $since
order by a.fetched_at;
