-- The same alert already stored, or any alert for the group inside the cooldown.
select alert_id
from alerts
where group_type = $group_type
  and group_value = $group_value
  and (alert_id = $alert_id or created_at >= $cooldown_start)
limit 1;
