"""What stands at the edge of the service, before any route runs.

Request bodies (size, nesting, item and geometry limits: ``bodies``), browser security
headers and the Content-Security-Policy (``headers``), CORS (``cors``) and the public
base URL of a request behind a proxy (``proxy``).  Shared plumbing: nothing here imports a
domain room or the OGC adapter.
"""
