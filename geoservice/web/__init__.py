"""Web pages: the portal, HTML views of OGC items, and static assets."""
