select status, updated_at
from digests
where as_of = $as_of;
