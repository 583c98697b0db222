-- One source's part of a run; keyed by (run, source) so a rerun of the same run updates it.
insert into crawl_runs (
    run_id, source_id, flow_run_id, started_at, finished_at, status, feeds_polled,
    feeds_not_modified, feeds_unchanged, feeds_failed, feeds_not_due, pages_fetched,
    articles_added, duplicates, known_skipped, non_articles, rejected, failed, offsite_skipped,
    duration_s, errors
)
values ($run_id, $source_id, $flow_run_id, $started_at, $finished_at, $status, $feeds_polled,
        $feeds_not_modified, $feeds_unchanged, $feeds_failed, $feeds_not_due, $pages_fetched,
        $articles_added, $duplicates, $known_skipped, $non_articles, $rejected, $failed,
        $offsite_skipped, $duration_s, $errors)
on conflict (run_id, source_id) do update set
    flow_run_id = excluded.flow_run_id,
    started_at = excluded.started_at,
    finished_at = excluded.finished_at,
    status = excluded.status,
    feeds_polled = excluded.feeds_polled,
    feeds_not_modified = excluded.feeds_not_modified,
    feeds_unchanged = excluded.feeds_unchanged,
    feeds_failed = excluded.feeds_failed,
    feeds_not_due = excluded.feeds_not_due,
    pages_fetched = excluded.pages_fetched,
    articles_added = excluded.articles_added,
    duplicates = excluded.duplicates,
    known_skipped = excluded.known_skipped,
    non_articles = excluded.non_articles,
    rejected = excluded.rejected,
    failed = excluded.failed,
    offsite_skipped = excluded.offsite_skipped,
    duration_s = excluded.duration_s,
    errors = excluded.errors;
