-- 008 (issue 17): one date policy and incremental sitemaps.
--
-- published_at keeps the instant of publication (UTC) when the outlet gave a time; a page or
-- feed that gave only a day now keeps that day in published_date (published_at stays NULL)
-- instead of a made-up midnight. Rows loaded before 008 keep what they had.
alter table articles add column published_date date;
alter table feed_items add column published_date date;

-- The outlet's IANA time zone (sources.yaml `timezone`): the calendar days of the daily and
-- weekly tables and of alert windows are the outlet's own. NULL means UTC.
alter table sources add column timezone varchar;

-- Child sitemaps of a sitemap index as last read: one whose lastmod in the index is unchanged
-- is not fetched again (backfills read everything).
create table sitemaps (
    sitemap_url   varchar primary key,
    source_id     varchar not null,
    lastmod       varchar,            -- as the index wrote it; compared as written
    n_urls        integer,            -- article URLs it listed when last read
    last_read_at  timestamptz not null
);
