"""The sightings room."""
