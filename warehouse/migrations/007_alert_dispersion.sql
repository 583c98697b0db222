-- 007: each stance alert keeps the dispersion phi (the baseline's day-to-day variation of the
-- stance mix relative to independent articles) that scaled its test and intervals (issue 17).
alter table alerts add column dispersion double;
