"""The OGC API surface: pygeoapi, contained in one adapter, with our provider and routes."""
