# The two commands of the README. Both install what they need first.
.PHONY: run test setup

run:
	scripts/setup.sh
	.venv/bin/python -m chat_server

test:
	scripts/setup.sh --test
	.venv/bin/python -m pytest

setup:
	scripts/setup.sh --test
