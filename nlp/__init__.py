"""cstowatch: nlp stage."""
