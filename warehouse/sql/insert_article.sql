insert into articles (
    article_id, source_id, url, canonical_url, title, text, lang_declared, published_at,
    fetched_at, content_sha256, story_id, duplicate_of, extractor, via, word_count, run_id
)
values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
