"""cstowatch: flows stage."""
