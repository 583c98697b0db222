-- Claims whose sender died (its process is gone, or the claim is older than the stale limit
-- when that cannot be told): the message may have left, so it is never sent again
-- automatically. message_id says what to look for in the mailbox.
update alert_deliveries
set status = 'uncertain', updated_at = $now
where status = 'sending' and alert_id in (select unnest($ids::varchar[]));
