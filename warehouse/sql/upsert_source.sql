-- One outlet from sources.yaml; a changed entry updates the row.
insert into sources (
    source_id, name, country, languages, affiliation, domains, updated_at, timezone
)
values (?, ?, ?, ?, ?, ?, ?, ?)
on conflict (source_id) do update set
    name = excluded.name,
    country = excluded.country,
    languages = excluded.languages,
    affiliation = excluded.affiliation,
    domains = excluded.domains,
    updated_at = excluded.updated_at,
    timezone = excluded.timezone;
