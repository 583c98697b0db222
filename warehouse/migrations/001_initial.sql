-- 001: the raw tables. Derived views live in warehouse/sql/views.sql and are rebuilt on open.

create table sources (
    source_id    varchar primary key,
    name         varchar not null,
    country      varchar not null,
    languages    varchar[] not null,
    affiliation  varchar not null,
    domains      varchar[] not null,
    updated_at   timestamptz not null
);

create table feeds (
    feed_url         varchar primary key,
    source_id        varchar not null,
    kind             varchar,
    last_attempt_at  timestamptz,
    last_success_at  timestamptz,
    http_status      integer,
    etag             varchar,
    last_modified    varchar,
    body_sha256      varchar,
    new_items        integer,
    total_items      integer,
    failures         double not null default 0,
    interval_seconds double,
    next_due_at      timestamptz,
    last_error       varchar
);

create table feed_items (
    feed_url       varchar not null,
    guid           varchar not null,
    url            varchar not null,
    title          varchar,
    published_at   timestamptz,
    offsite        boolean not null,
    first_seen_at  timestamptz not null,
    primary key (feed_url, guid)
);

create table crawl_runs (
    run_id              varchar not null,
    source_id           varchar not null,
    flow_run_id         varchar,
    started_at          timestamptz not null,
    finished_at         timestamptz,
    status              varchar not null,   -- ok | partial | failed
    feeds_polled        integer default 0,
    feeds_not_modified  integer default 0,
    feeds_unchanged     integer default 0,
    feeds_failed        integer default 0,
    feeds_not_due       integer default 0,
    pages_fetched       integer default 0,
    articles_added      integer default 0,
    duplicates          integer default 0,
    known_skipped       integer default 0,
    non_articles        integer default 0,  -- block pages, consent walls, soft 404s ...
    rejected            integer default 0,
    failed              integer default 0,
    offsite_skipped     integer default 0,
    duration_s          double,
    errors              varchar,
    primary key (run_id, source_id)
);

create table crawl_events (
    run_id       varchar not null,
    source_id    varchar not null,
    url          varchar,
    status       varchar not null,  -- soft_404 | blocked | consent | paywall | empty | failure ...
    http_status  integer,
    reason       varchar,
    recorded_at  timestamptz not null
);

create table articles (
    article_id      varchar primary key,   -- sha256(normalised url)[:32]
    source_id       varchar not null,
    url             varchar not null unique,
    canonical_url   varchar,
    title           varchar,
    text            varchar not null,
    lang            varchar,               -- detected (nlp), null until classified
    lang_declared   varchar,               -- <html lang> or the source's only language
    published_at    timestamptz,
    fetched_at      timestamptz not null,
    content_sha256  varchar not null,
    story_id        varchar not null,
    duplicate_of    varchar,               -- same text already stored under another URL
    extractor       varchar not null,
    via             varchar,               -- feed | sitemap | listing
    word_count      integer,
    run_id          varchar
);

create table raw_pages (
    article_id  varchar primary key,
    html_zlib   blob not null,
    fetched_at  timestamptz not null
);

create table article_minhash (
    article_id  varchar primary key,
    signature   ubigint[] not null
);

create table models (
    model_id              varchar primary key,
    encoder               varchar not null,
    head_sha256           varchar not null,
    training_data_sha256  varchar,
    labels                varchar[] not null,
    metrics               json,
    created_at            timestamptz not null
);

create table passages (
    article_id  varchar not null,
    idx         integer not null,
    kind        varchar not null,  -- title | lead | body
    text        varchar not null,
    primary key (article_id, idx)
);

-- one row per (model, article, passage); passage_idx = -1 is the whole article
create table stance_predictions (
    model_id           varchar not null,
    article_id         varchar not null,
    passage_idx        integer not null,
    label              varchar,           -- null when the article is off-topic
    p_pro_russian      double,
    p_neutral          double,
    p_pro_kazakh       double,
    relevance          double not null,
    relevant           boolean not null,
    lang               varchar,
    weight             double,
    quotes_other_side  boolean,
    evidence           json,
    created_at         timestamptz not null,
    primary key (model_id, article_id, passage_idx)
);

create table alerts (
    alert_id        varchar primary key,
    kind            varchar not null,   -- stance | coverage
    group_type      varchar not null,   -- outlet | country | language | affiliation | all
    group_value     varchar not null,
    group_label     varchar not null,
    direction       varchar not null,   -- the class that grew, or 'volume_drop'
    window_start    date not null,
    window_end      date not null,
    baseline_start  date not null,
    baseline_end    date not null,
    n_window        double not null,
    n_baseline      double not null,
    shares_before   json not null,
    shares_after    json not null,
    ci_before       json,
    ci_after        json,
    effect_pp       double not null,
    p_value         double,
    q_value         double,
    severity        varchar not null,
    evidence        json,
    model_id        varchar,
    created_at      timestamptz not null,
    unique (kind, group_type, group_value, window_end, direction)
);

create table alert_deliveries (
    alert_id    varchar primary key,
    channel     varchar not null,   -- smtp | outbox
    status      varchar not null,   -- pending | sending | sent
    attempts    integer not null default 0,
    last_error  varchar,
    message_id  varchar,
    sent_at     timestamptz,
    updated_at  timestamptz not null
);
