insert into digests (as_of, status, attempts, updated_at)
values ($as_of, 'sending', 1, $now)
on conflict (as_of) do update
set status = 'sending', attempts = digests.attempts + 1, error = null, updated_at = $now;
