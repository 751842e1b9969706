# invite-edge: make install | make run | make test | make check | make bench-edge
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test check browser bench-edge bench-pipeline bench-queries bench-hooks bench-events \
	bench-commissions clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[embedded,analytics,test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	INVITE_COOKIE_SECURE=$${INVITE_COOKIE_SECURE:-0} $(BIN)/invite run --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: install browser
	$(BIN)/python -m pytest -q

# Debian's Chromium for the browser tests (Playwright drives it; no browser download). Where it
# cannot be installed, those tests skip and say why.
browser:
	@command -v chromium >/dev/null || (command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1) || \
	  echo "note: chromium could not be installed; the browser tests will skip"

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

# The commissions ledger on a month of 10M trades (long: the first run generates the data;
# DATA_DIR=dir keeps it for the next run; ARGS="--trades 1000000 --users 20000" is a quick try).
bench-commissions: install
	$(BIN)/python -m loadtests.bench_commissions $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

# Funnel events: POST /api/events, the events batcher, the funnel questions on 10M clicks + 5M
# events (about 15 minutes; DATA_DIR=dir keeps the generated data for the next run).
bench-events: install
	$(BIN)/python -m loadtests.bench_events $(if $(DATA_DIR),--data-dir $(DATA_DIR))

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
