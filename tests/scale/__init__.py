"""Several nodes on real Redis, PostgreSQL and nginx (marker `scale`)."""
