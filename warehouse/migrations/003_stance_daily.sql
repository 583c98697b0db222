-- 003: daily_stance as a table, refreshed from daily_stance_live after each classification.
-- Reading a materialised day x source x language table stays fast over years of coverage
-- (the live view aggregates every article on each query).
create table stance_daily (
    day               date,
    source_id         varchar,
    source_name       varchar,
    country           varchar,
    affiliation       varchar,
    lang              varchar,
    n_articles        bigint,
    n_stories         bigint,
    mass_pro_russian  double,
    mass_neutral      double,
    mass_pro_kazakh   double,
    n_pro_russian     bigint,
    n_neutral         bigint,
    n_pro_kazakh      bigint
);
