-- In the load's own transaction: the batch of (run, source) is in the warehouse.
insert into loaded_batches (run_id, source_id, complete, loaded_at) values (?, ?, ?, ?);
