-- Pending URLs stored meanwhile by another way (a sitemap, a listing, under a canonical URL)
-- are settled: collection skips known URLs, so nothing else would ever settle them.
delete from pending_items
where url in (select url from articles)
   or url in (select canonical_url from articles where canonical_url is not null);
