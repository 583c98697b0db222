-- A run starts: recorded as running until it ends (warehouse/runs.py).
insert into pipeline_runs (
    run_id, flow, flow_run_id, host, pid, proc_start, started_at, status, stage
)
values ($run_id, $flow, $flow_run_id, $host, $pid, $proc_start, $now, 'running', $stage)
on conflict (run_id) do update set
    flow_run_id = excluded.flow_run_id,
    host = excluded.host,
    pid = excluded.pid,
    proc_start = excluded.proc_start,
    status = 'running',
    stage = excluded.stage,
    finished_at = null,
    error = null;
