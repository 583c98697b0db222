-- Article URLs discovered earlier and not settled yet: fetched by this run, due feed or not.
select url, source_id, title, published_at
from pending_items
where status = 'pending'
order by source_id, first_seen_at, url;
