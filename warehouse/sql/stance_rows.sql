-- Relevant, classified articles published between $since and $until (inclusive), one row each,
-- with the attributes alert groups are built from.
select
    article_id,
    day,
    source_id,
    country,
    lang,
    affiliation,
    p_pro_russian,
    p_neutral,
    p_pro_kazakh
from relevant_articles
where day between $since and $until
order by day, article_id;
