-- Weekly probability-mass shares of one alert group between $since and $until.
select
    cast(date_trunc('week', day) as date) as week,
    count(*) as n_articles,
    avg(p_pro_russian) as pro_russian,
    avg(p_neutral) as neutral,
    avg(p_pro_kazakh) as pro_kazakh
from relevant_articles
where day between $since and $until
  and (
      ($group_type = 'outlet' and source_id = $group_value)
      or ($group_type = 'country' and country = $group_value)
      or ($group_type = 'language' and lang = $group_value)
      or ($group_type = 'affiliation' and affiliation = $group_value)
      or $group_type = 'all'
  )
group by all
order by week;
