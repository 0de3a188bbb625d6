"""The hazards room."""
