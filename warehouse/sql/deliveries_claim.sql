-- Claim the pending alerts $ids for one email ($message_id), sent by process $owner.
update alert_deliveries
set status = 'sending', attempts = attempts + 1, claimed_by = $owner, message_id = $message_id,
    updated_at = $now
where status = 'pending' and alert_id in (select unnest($ids::varchar[]))
returning alert_id;
