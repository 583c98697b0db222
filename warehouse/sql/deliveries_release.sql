-- The send failed: back to pending with the error; the next run retries.
update alert_deliveries
set status = 'pending', last_error = $error, updated_at = $now
where alert_id in (select unnest($ids::varchar[]));
