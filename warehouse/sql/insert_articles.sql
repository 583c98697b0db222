-- A batch's new articles, one insert per table. new_articles is the DataFrame that
-- warehouse.load registers (already free of stored ids and URLs, in batch order).
insert into articles (
    article_id, source_id, url, canonical_url, title, text, lang_declared, published_at,
    published_date, fetched_at, content_sha256, story_id, duplicate_of, extractor, via,
    word_count, run_id
)
select
    article_id, source_id, url, canonical_url, title, text, lang_declared, published_at,
    published_date, fetched_at, content_sha256, story_id, duplicate_of, extractor, via,
    word_count, $run_id
from new_articles;

insert into article_minhash
select article_id, signature
from new_articles;

insert into raw_pages
select article_id, raw_html, fetched_at
from new_articles
where raw_html is not null
on conflict do nothing;
