update alert_deliveries
set status = 'sent', channel = $channel, message_id = $message_id, sent_at = $now,
    last_error = null, updated_at = $now
where alert_id in (select unnest($ids::varchar[]));
