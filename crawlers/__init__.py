"""cstowatch: crawlers stage."""
