-- Refresh only the days of the articles just scored ($ids): cheap after each chunk.
delete from stance_daily
where day in (
    select cast(coalesce(published_at, fetched_at) as date)
    from articles
    where article_id in (select unnest($ids::varchar[]))
);
insert into stance_daily
select *
from daily_stance_live
where day in (
    select cast(coalesce(published_at, fetched_at) as date)
    from articles
    where article_id in (select unnest($ids::varchar[]))
);
