"""cstowatch: warehouse stage."""
