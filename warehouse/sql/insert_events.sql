-- A batch's non-article pages and failed fetches (the DataFrame new_events) for run $run_id.
insert into crawl_events
select $run_id, source_id, url, status, http_status, reason, recorded_at
from new_events;
