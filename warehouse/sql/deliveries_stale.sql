-- A claim older than the stale limit means a run died while sending: the message may have
-- left, so it is never sent again automatically.
update alert_deliveries
set status = 'uncertain', updated_at = $now
where status = 'sending' and updated_at < $stale_before
returning alert_id;
