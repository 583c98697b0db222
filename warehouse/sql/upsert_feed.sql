-- A feed's state after a poll. A failed poll keeps the last success and the feed kind.
insert into feeds values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
on conflict (feed_url) do update set
    source_id = excluded.source_id,
    kind = coalesce(excluded.kind, feeds.kind),
    last_attempt_at = excluded.last_attempt_at,
    last_success_at = coalesce(excluded.last_success_at, feeds.last_success_at),
    http_status = excluded.http_status,
    etag = excluded.etag,
    last_modified = excluded.last_modified,
    body_sha256 = excluded.body_sha256,
    new_items = excluded.new_items,
    total_items = excluded.total_items,
    failures = excluded.failures,
    interval_seconds = excluded.interval_seconds,
    next_due_at = excluded.next_due_at,
    last_error = excluded.last_error;
