-- 004: drop the content-hash index of 002. Loads now look up a whole batch's content hashes in
-- one join (warehouse/sql/content_originals.sql), which scans the column and does not use the
-- index, while keeping the index up to date cost as much as the primary key on every insert
-- (bench/warehouse.py: about a third of the CPU time of a bulk articles insert).
drop index if exists articles_content_sha256;
