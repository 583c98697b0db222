-- URLs that reached a final state in this batch ($settled), and URLs the batch named ($named)
-- that are stored by now, leave pending_items.
delete from pending_items
where url in (select unnest($settled::varchar[]))
   or (url in (select unnest($named::varchar[]))
       and (url in (select url from articles)
            or url in (select canonical_url from articles where canonical_url is not null)));
