"""The event store: one interface, two engines (SQLite embedded, PostgreSQL shared)."""
