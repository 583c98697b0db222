-- A chunk of classifier output for model $model_id, one statement per table, from the
-- DataFrames warehouse.predictions registers: scored_langs (one row per article),
-- scored_passages and scored_predictions (in chunk order). The first copy of a key in the
-- chunk wins, and a row already stored is kept.
update articles
set lang = s.lang
from scored_langs s
where articles.article_id = s.article_id;

insert into passages
select article_id, idx, kind, text
from scored_passages
qualify row_number() over (partition by article_id, idx order by pos) = 1
on conflict do nothing;

insert into stance_predictions
select
    $model_id, article_id, passage_idx, label, p_pro_russian, p_neutral, p_pro_kazakh,
    relevance, relevant, lang, weight, quotes_other_side, evidence, $now
from scored_predictions
qualify row_number() over (partition by article_id, passage_idx order by pos) = 1
on conflict do nothing;
