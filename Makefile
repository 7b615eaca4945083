# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test corpus clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Run the whole system locally (moto's server as AWS) on http://127.0.0.1:$${PORT:-8000}
run: $(STAMP)
	$(BIN)/python -m devstack

## Run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmark imgpress vs the naive seed recipe vs pyvips on the corpus -> bench/RESULTS.md (BENCH_ARGS=--help)
.PHONY: bench
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## Build the shared corpus of real images (needs apt; used by corpus tests and bench/)
corpus:
	bash ../shared/corpus/make_corpus.sh

clean:
	rm -rf $(VENV) .pytest_cache
