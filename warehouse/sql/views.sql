-- Analyst-facing views, rebuilt from the raw tables every time the pipeline opens the database.
-- Days are the outlet's own calendar days (sources.timezone; UTC when it has none): see
-- outlet_day.

-- The outlet-local calendar day of an article: of its publication instant in the outlet's time
-- zone, else the day the outlet gave without a time, else of its fetch. A NULL zone means UTC.
create or replace macro outlet_day(tz, published_at, published_date, fetched_at) as coalesce(
    cast(timezone(coalesce(tz, 'UTC'), published_at) as date),
    published_date,
    cast(timezone(coalesce(tz, 'UTC'), fetched_at) as date)
);

create or replace view article_stance as
with ranked as (
    select
        p.*,
        m.created_at as model_created_at,
        row_number() over (
            partition by p.article_id order by m.created_at desc, p.model_id desc
        ) as rn
    from stance_predictions p
    join models m using (model_id)
    where p.passage_idx = -1
)
select
    article_id,
    model_id,
    label,
    p_pro_russian,
    p_neutral,
    p_pro_kazakh,
    relevance,
    relevant,
    lang,
    quotes_other_side,
    evidence,
    created_at
from ranked
where rn = 1;

create or replace view relevant_articles as
select
    a.article_id,
    a.source_id,
    s.name as source_name,
    s.country,
    s.affiliation,
    coalesce(st.lang, a.lang, a.lang_declared) as lang,
    coalesce(a.published_at, a.fetched_at) as published_at,
    a.published_date,
    outlet_day(s.timezone, a.published_at, a.published_date, a.fetched_at) as day,
    a.story_id,
    a.url,
    a.title,
    st.label,
    st.p_pro_russian,
    st.p_neutral,
    st.p_pro_kazakh,
    st.relevance,
    st.model_id
from articles a
join sources s using (source_id)
join article_stance st using (article_id)
where st.relevant and a.duplicate_of is null;

-- Counts every article once per outlet; n_stories counts a story once per outlet and day.
-- The live aggregate; analysts read daily_stance, the table refreshed from it after each run.
create or replace view daily_stance_live as
select
    day,
    source_id,
    source_name,
    country,
    affiliation,
    lang,
    count(*) as n_articles,
    count(distinct story_id) as n_stories,
    sum(p_pro_russian) as mass_pro_russian,
    sum(p_neutral) as mass_neutral,
    sum(p_pro_kazakh) as mass_pro_kazakh,
    count(*) filter (where label = 'pro_russian') as n_pro_russian,
    count(*) filter (where label = 'neutral') as n_neutral,
    count(*) filter (where label = 'pro_kazakh') as n_pro_kazakh
from relevant_articles
group by all;

create or replace view daily_stance as
select * from stance_daily;

create or replace view weekly_stance as
select
    cast(date_trunc('week', day) as date) as week,
    source_id,
    source_name,
    country,
    affiliation,
    lang,
    sum(n_articles) as n_articles,
    sum(n_stories) as n_stories,
    sum(mass_pro_russian) as mass_pro_russian,
    sum(mass_neutral) as mass_neutral,
    sum(mass_pro_kazakh) as mass_pro_kazakh,
    sum(mass_pro_russian) / sum(n_articles) as share_pro_russian,
    sum(mass_neutral) / sum(n_articles) as share_neutral,
    sum(mass_pro_kazakh) / sum(n_articles) as share_pro_kazakh
from daily_stance
group by all;

create or replace view source_health as
with feed_state as (
    select
        source_id,
        count(*) as n_feeds,
        count(*) filter (where failures = 0 and last_success_at is not null) as feeds_ok,
        count(*) filter (where failures > 0) as feeds_failing,
        max(last_success_at) as last_feed_success,
        min(next_due_at) as next_feed_due,
        max(failures) as worst_failures,
        string_agg(last_error, '; ') filter (where last_error is not null) as feed_errors
    from feeds
    group by source_id
),
last_run as (
    select *
    from crawl_runs
    qualify row_number() over (partition by source_id order by started_at desc) = 1
),
volume as (
    select source_id, count(*) as n_articles, max(fetched_at) as last_article_fetched
    from articles
    group by source_id
),
backlog as (
    select
        source_id,
        count(*) filter (where status = 'pending') as pending_items,
        count(*) filter (where status = 'failed') as failed_items,
        string_agg(url || ': ' || last_error, '; ' order by last_attempt_at desc)
            filter (where status = 'failed') as failed_item_errors
    from pending_items
    group by source_id
),
crashes as (
    -- runs that died while collecting the outlet, or later in a run that had collected it
    select c.source_id, max(c.started_at) as last_crashed_run_at
    from crawl_runs c
    left join pipeline_runs p using (run_id)
    where c.status = 'crashed' or p.status = 'crashed'
    group by c.source_id
)
select
    s.source_id,
    s.name,
    s.country,
    s.affiliation,
    coalesce(f.n_feeds, 0) as n_feeds,
    coalesce(f.feeds_ok, 0) as feeds_ok,
    coalesce(f.feeds_failing, 0) as feeds_failing,
    f.last_feed_success,
    f.next_feed_due,
    f.worst_failures,
    f.feed_errors,
    r.status as last_run_status,
    r.started_at as last_run_at,
    r.articles_added as last_run_added,
    r.failed as last_run_failed,
    r.errors as last_run_errors,
    coalesce(v.n_articles, 0) as n_articles,
    v.last_article_fetched,
    coalesce(b.pending_items, 0) as pending_items,
    coalesce(b.failed_items, 0) as failed_items,
    b.failed_item_errors,
    c.last_crashed_run_at
from sources s
left join feed_state f using (source_id)
left join last_run r using (source_id)
left join volume v using (source_id)
left join backlog b using (source_id)
left join crashes c using (source_id);
