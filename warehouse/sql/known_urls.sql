-- URLs the crawler need not fetch again: every stored article (by URL and canonical URL), and
-- pages recently recognised as non-articles (soft 404s, consent walls, paywalls, block pages),
-- which are re-checked once $recheck_after has passed. Failed fetches are not here: they retry.
select url from articles
union
select canonical_url from articles where canonical_url is not null
union
select url from crawl_events
where url is not null
  and status in ('soft_404', 'blocked', 'consent', 'paywall', 'empty', 'not_html', 'unparsable')
  and recorded_at >= $recheck_after;
