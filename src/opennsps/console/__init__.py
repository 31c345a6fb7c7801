"""The management REST API (and, later, the web console)."""
