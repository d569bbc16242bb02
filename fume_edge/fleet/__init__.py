"""The central side of a fume-edge fleet: the collector into PostgreSQL, fleet queries, Prometheus rules."""
