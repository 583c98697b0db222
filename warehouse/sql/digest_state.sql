select status, updated_at, claimed_by
from digests
where as_of = $as_of;
