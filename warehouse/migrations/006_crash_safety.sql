-- 006: crash safety (issue 13). What a killed run leaves behind is found and finished by the
-- next run: its batches load once (loaded_batches), the items it discovered but never fetched
-- are fetched (pending_items), it shows as crashed (pipeline_runs), and an alert email it was
-- sending is reported as uncertain at once rather than after a timeout (claimed_by).

-- One row per loaded batch, written in the load's own transaction: a batch loads exactly once.
create table loaded_batches (
    run_id      varchar not null,
    source_id   varchar not null,
    complete    boolean not null,   -- false: a dead run's batch; its feed states were not applied
    loaded_at   timestamptz not null,
    primary key (run_id, source_id)
);

-- Article URLs that a feed listed (or a dead run discovered) and no run has settled yet.
-- status: pending (fetched by the next run, due or not) | failed (gave up after max attempts).
create table pending_items (
    url              varchar primary key,
    source_id        varchar not null,
    feed_url         varchar,
    title            varchar,
    published_at     timestamptz,
    first_seen_at    timestamptz not null,
    attempts         integer not null default 0,
    last_attempt_at  timestamptz,
    last_error       varchar,
    status           varchar not null default 'pending'
);

-- One row per pipeline run (monitor, collect, backfill, reclassify). A run that dies keeps
-- status 'running' until the next run finds its process gone and marks it 'crashed'.
create table pipeline_runs (
    run_id        varchar primary key,
    flow          varchar not null,
    flow_run_id   varchar,
    host          varchar not null,
    pid           integer not null,
    proc_start    varchar,          -- the process's start time, so a reused pid is not mistaken
    started_at    timestamptz not null,
    finished_at   timestamptz,
    status        varchar not null, -- running | completed | failed | crashed
    stage         varchar,          -- the last stage the run began
    error         varchar
);

-- Which process claimed an alert's delivery or a digest: a claim held by a dead process is
-- settled (uncertain) by the next run at once.
alter table alert_deliveries add column claimed_by varchar;
alter table digests add column claimed_by varchar;
