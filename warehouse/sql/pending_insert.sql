-- A batch's on-site feed items (the DataFrame new_pending) join pending_items unless already
-- stored (by URL or canonical URL) or recognised as a non-article; a URL already pending keeps
-- its first sighting and its attempts.
insert into pending_items (url, source_id, feed_url, title, published_at, first_seen_at)
select url, source_id, feed_url, title, published_at, first_seen_at
from new_pending
where url not in (select url from articles)
  and url not in (select canonical_url from articles where canonical_url is not null)
  and url not in (select url from crawl_events where url is not null and status <> 'failure')
qualify row_number() over (partition by url order by pos) = 1
on conflict do nothing;
