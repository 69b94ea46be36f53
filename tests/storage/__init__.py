"""The store under faults: a locked database, a full disk."""
