"""Helpers for the tests: plain functions and classes, imported explicitly by test modules.

The fixtures built on them are registered once, in tests/conftest.py. One module a role:
`server` (the chat server as a child process), `client` (a recording Socket.IO client),
`raw_engineio` (the wire format by hand), `actions` (protocol steps that assert success),
`checks` (assertions on acks, messages and lists), `names` (unique names), `metrics`
(/metrics scraping), `services` (real Redis, PostgreSQL and nginx for the scale tests),
`clock` (a clock the domain tests move by hand), `parallel` (the lock behind the `alone`
marker under pytest-xdist).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
