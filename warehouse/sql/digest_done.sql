update digests
set status = $status, message_id = $message_id, path = $path, error = $error, updated_at = $now
where as_of = $as_of;
