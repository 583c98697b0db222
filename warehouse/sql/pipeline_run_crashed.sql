-- Runs whose process is gone: crashed, with the stage they were in.
update pipeline_runs
set status = 'crashed',
    finished_at = $now,
    error = 'the run ended without recording its outcome (killed, out of memory, power loss, '
        || 'or the database could not be written)'
        || coalesce(' during ' || stage, '')
where run_id in (select unnest($ids::varchar[]));
