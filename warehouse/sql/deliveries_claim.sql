update alert_deliveries
set status = 'sending', attempts = attempts + 1, updated_at = $now
where status = 'pending'
returning alert_id;
