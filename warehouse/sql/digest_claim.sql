-- Claim the digest of $as_of for process $owner before sending it.
insert into digests (as_of, status, attempts, updated_at, claimed_by)
values ($as_of, 'sending', 1, $now, $owner)
on conflict (as_of) do update
set status = 'sending', attempts = digests.attempts + 1, error = null, updated_at = $now,
    claimed_by = $owner;
