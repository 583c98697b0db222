-- Refresh only the days of the articles just scored ($ids): cheap after each chunk.
delete from stance_daily
where day in (
    select outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at)
    from articles a
    join sources s using (source_id)
    where a.article_id in (select unnest($ids::varchar[]))
);
insert into stance_daily
select *
from daily_stance_live
where day in (
    select outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at)
    from articles a
    join sources s using (source_id)
    where a.article_id in (select unnest($ids::varchar[]))
);
