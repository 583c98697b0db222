-- The window's articles of one alert group, with their strongest passage, for evidence.
-- $group_type is one of outlet | country | language | affiliation | all.
select
    r.article_id,
    r.url,
    r.title,
    r.source_name,
    r.day,
    r.lang,
    r.label,
    r.p_pro_russian,
    r.p_neutral,
    r.p_pro_kazakh,
    st.evidence
from relevant_articles r
join article_stance st using (article_id)
where r.day between $since and $until
  and (
      ($group_type = 'outlet' and r.source_id = $group_value)
      or ($group_type = 'country' and r.country = $group_value)
      or ($group_type = 'language' and r.lang = $group_value)
      or ($group_type = 'affiliation' and r.affiliation = $group_value)
      or $group_type = 'all'
  );
