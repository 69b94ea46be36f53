"""Several nodes: what Redis adds (fan-out between nodes, shared presence and rate limits).

Only a node started with `REDIS_URL` imports this package, and with it `redis`.
"""
