# The two commands of the README. Both install what they need first.
.PHONY: run test setup

run:
	scripts/setup.sh
	.venv/bin/python -m chat_server

test:
	scripts/setup.sh --test
	.venv/bin/ruff check chat_server bench tests
	.venv/bin/mypy
	.venv/bin/python -m pytest

setup:
	scripts/setup.sh --test

# The linter and the type checker alone (both pinned in the test extra; `make setup` installs them).
.PHONY: lint
lint:
	.venv/bin/ruff check chat_server bench tests
	.venv/bin/mypy
