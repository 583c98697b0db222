-- The same alert already stored, or an alert for the group in the same direction in the
-- cooldown before $as_of: a group that swung pro-Russian can still alert when it swings back.
-- The cooldown counts data days (window ends), not wall-clock time, so a backfill over many
-- --as-of days behaves like the daily runs it replays.
select alert_id
from alerts
where group_type = $group_type
  and group_value = $group_value
  and (
      alert_id = $alert_id
      or (direction = $direction and window_end >= $cooldown_from and window_end < $as_of)
  );
