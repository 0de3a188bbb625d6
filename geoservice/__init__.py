"""Tokyo GeoTwin: one OGC API service for Tokyo's city, regulation, hazard and wildlife layers."""

__version__ = "0.1.0"
