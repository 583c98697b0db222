-- One outlet from sources.yaml; a changed entry updates the row.
insert into sources values (?, ?, ?, ?, ?, ?, ?)
on conflict (source_id) do update set
    name = excluded.name,
    country = excluded.country,
    languages = excluded.languages,
    affiliation = excluded.affiliation,
    domains = excluded.domains,
    updated_at = excluded.updated_at;
