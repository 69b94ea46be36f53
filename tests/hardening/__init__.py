"""Hostile clients, abuse, limits, churn and crashes: what must not break the server."""
