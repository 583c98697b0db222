-- The latest $limit runs: pipeline_runs (one row per run) beside the per-source crawl_runs
-- summary. Runs from before pipeline_runs existed show their crawl_runs part only.
with statuses as (
    select run_id, status, count(*) as n
    from crawl_runs
    group by run_id, status
),
per_run as (
    select
        run_id,
        min(started_at) as started_at,
        max(finished_at) as finished_at,
        any_value(flow_run_id) as flow_run_id,
        sum(articles_added) as added,
        sum(failed) as failed
    from crawl_runs
    group by run_id
),
mix as (
    -- the sources' outcomes, e.g. "4 crashed 2 ok"
    select run_id, string_agg(n || ' ' || status, ' ' order by status) as sources
    from statuses
    group by run_id
)
select
    run_id,
    p.flow,
    coalesce(p.started_at, c.started_at) as started_at,
    coalesce(p.finished_at, c.finished_at) as finished_at,
    p.status,
    p.stage,
    coalesce(p.flow_run_id, c.flow_run_id) as flow_run_id,
    m.sources,
    c.added,
    c.failed,
    p.host,
    p.pid,
    p.proc_start,
    p.error
from pipeline_runs p
full outer join per_run c using (run_id)
left join mix m using (run_id)
order by started_at desc
limit $limit;
