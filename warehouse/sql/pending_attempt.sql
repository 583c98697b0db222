-- One more failed fetch for each URL of failed_fetches (url, error) still pending; at
-- $max_attempts it is given up (status failed, kept with its last error). Returns those given up.
update pending_items
set attempts = attempts + 1,
    last_attempt_at = $now,
    last_error = f.error,
    status = case when attempts + 1 >= $max_attempts then 'failed' else 'pending' end
from failed_fetches f
where pending_items.url = f.url and pending_items.status = 'pending'
returning pending_items.url, pending_items.status;
