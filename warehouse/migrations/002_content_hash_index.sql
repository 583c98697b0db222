-- 002: exact-duplicate lookups by content hash use an index instead of scanning articles.
create index articles_content_sha256 on articles (content_sha256);
