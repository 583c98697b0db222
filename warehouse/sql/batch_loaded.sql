select 1 from loaded_batches where run_id = ? and source_id = ?;
