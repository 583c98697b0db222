-- Rebuild the materialised daily table from the live view (inside the caller's transaction).
delete from stance_daily;
insert into stance_daily select * from daily_stance_live;
