-- A batch's feed items (the DataFrame new_feed_items). A (feed, guid) already stored, or seen
-- earlier in the batch, keeps its first sighting.
insert into feed_items (
    feed_url, guid, url, title, published_at, offsite, first_seen_at, published_date
)
select feed_url, guid, url, title, published_at, offsite, first_seen_at, published_date
from new_feed_items
qualify row_number() over (partition by feed_url, guid order by pos) = 1
on conflict do nothing;
