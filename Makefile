# invite-edge: make install | make run | make test | make check | make bench-edge
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test check bench-edge bench-pipeline bench-queries bench-hooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[embedded,analytics,test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	INVITE_COOKIE_SECURE=$${INVITE_COOKIE_SECURE:-0} $(BIN)/invite run --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: install
	$(BIN)/python -m pytest -q

check: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench-edge: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
	  { echo "wrk is needed: install it with 'apt-get install wrk'"; exit 2; }
	$(BIN)/python -m loadtests.bench_edge

bench-pipeline: install
	$(BIN)/python -m loadtests.bench_pipeline

bench-queries: install
	$(BIN)/python -m loadtests.bench_queries

bench-hooks: install
	$(BIN)/python -m loadtests.bench_hooks

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
