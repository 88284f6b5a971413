//! Local backend: SQLite queues, bus, records and a directory object store.
