# The two commands: `make run` (set up, then start the app) and `make test` (set up, then run
# every check and test). Everything else here is a step of those two.
.PHONY: run test setup lint bench clean

HOST ?= 127.0.0.1
PORT ?= 8000
THREADS ?= 32

run:
	@bash scripts/setup.sh
	.venv/bin/ipc-explorer --host $(HOST) --port $(PORT) --threads $(THREADS)

test:
	@bash scripts/setup.sh --browser
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest

lint:
	@bash scripts/setup.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench:
	@bash scripts/setup.sh
	.venv/bin/python bench/ipc_bench.py

clean:
	rm -rf .venv test-artifacts .pytest_cache .ruff_cache .hypothesis
