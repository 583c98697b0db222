-- Articles with no article-level prediction from model $model_id yet (oldest first).
select a.article_id, a.title, a.text
from articles a
where a.duplicate_of is null
  and not exists (
      select 1 from stance_predictions p
      where p.article_id = a.article_id and p.model_id = $model_id and p.passage_idx = -1
  )
order by a.fetched_at, a.article_id
limit $limit;
