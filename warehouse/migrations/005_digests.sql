-- 005: the daily digest is sent at most once per data day (flows/stages.py digest).
-- status: sending (claimed, outcome not yet recorded) | sent | failed.
create table digests (
    as_of       date primary key,
    status      varchar not null,
    message_id  varchar,
    path        varchar,
    attempts    integer not null default 0,
    error       varchar,
    updated_at  timestamptz not null
);
