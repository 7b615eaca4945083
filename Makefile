# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
STAGE  ?= dev

.PHONY: install run token test lint format docs corpus clean
.PHONY: deploy teardown package

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 packages with pip < 26.3
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Run the whole system locally (moto's server as AWS) on http://127.0.0.1:$${PORT:-8000}
run: $(STAMP)
	$(BIN)/python -m devstack

## Print a JWT for USER (default: you) that the local stack run with `API_AUTH=jwt make run` accepts; ADMIN=1, GROUPS=a,b, TTL=seconds
token: $(STAMP)
	@$(BIN)/python -m devstack.token "$(USER)" $(if $(filter 1 yes true,$(ADMIN)),--admin) $(if $(GROUPS),--groups "$(GROUPS)") $(if $(TTL),--ttl $(TTL))

## Run the test suite: every tier (what CI runs), a module per pytest-xdist worker at a time, the
## longest modules first (tests/conftest.py); TEST_WORKERS=0 runs it in one process
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## One tier of it (pytest.ini): unit (under 30 s, run it on every save), integration, e2e, reference, slow.
## The unit tier runs on every core (pytest-xdist): its tests share nothing, not even a port.
.PHONY: test-unit test-integration test-e2e test-reference test-slow
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit -n auto $(PYTEST_ARGS)
test-integration test-e2e test-slow: $(STAMP)
	$(BIN)/python -m pytest -m $(patsubst test-%,%,$@) $(PYTEST_ARGS)
## The upload contract against LocalStack's S3 and the local stack (installs LocalStack on first use)
test-reference: $(STAMP)
	tools/install_localstack.sh
	$(BIN)/python -m pytest -m reference $(PYTEST_ARGS)

## Lint and check formatting (ruff, configured in pyproject.toml); `make format` rewrites
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Build the documentation site (mkdocs.yml, docs/) strictly into build/site/: open build/site/index.html
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

## Deploy stage $(STAGE) (default dev) to the AWS account of your credentials: resources stack, chalice deploy, handler stack
deploy: $(STAMP)
	$(BIN)/python -m infra deploy --stage $(STAGE)

## Delete everything `make deploy` made for $(STAGE), images included (needs CONFIRM=yes)
teardown: $(STAMP)
	$(BIN)/python -m infra teardown --stage $(STAGE) $(if $(filter yes,$(CONFIRM)),--yes)

## Terraform configuration and deployment zip for $(STAGE) in build/terraform-$(STAGE)/ (no AWS set-up needed)
package: $(STAMP)
	$(BIN)/python -m infra package --stage $(STAGE)

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

## Render every crafted hostile file and the worst file each structure guard accepts -> bench/HOSTILE.md (HOSTILE_ARGS=--help)
.PHONY: bench-hostile
HOSTILE_ARGS ?=
bench-hostile: $(STAMP)
	$(BIN)/python -m bench.hostile $(HOSTILE_ARGS)

## Fuzz the render (tests/fuzz.py) for FUZZ_SECONDS (default 600); findings, minimised, go to tests/fixtures/findings/
.PHONY: fuzz
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --seconds $(FUZZ_SECONDS) --save tests/fixtures/findings

## The same, guided by coverage (libFuzzer through Atheris); what it stops on is saved in build/fuzz/
.PHONY: fuzz-coverage
fuzz-coverage: $(STAMP)
	$(BIN)/python -m tests.fuzz --coverage --seconds $(FUZZ_SECONDS) --save build/fuzz

## Animated files through imgpress against gif2webp and libvips: bytes, SSIM per frame, time, memory -> bench/ANIMATION.md
.PHONY: bench-animation
bench-animation: $(BENCH_STAMP)
	$(BIN)/python -m bench.animation

## On-demand variants: first-render latency next to the upload-time render, cost per 1,000 -> bench/ONDEMAND.md
.PHONY: bench-ondemand
bench-ondemand: $(STAMP)
	$(BIN)/python -m bench.ondemand $(BENCH_ARGS)

## Time the front-end placeholders over the corpus (results in bench/PLACEHOLDERS.md)
.PHONY: bench-placeholders
bench-placeholders: $(STAMP)
	$(BIN)/python -m bench.placeholders_bench

## What an image costs on AWS, per corpus class, and parallel encodes on two vCPUs (results in bench/COST.md)
.PHONY: bench-cost
bench-cost: $(STAMP)
	$(BIN)/python -m bench.cost

## What metrics and structured logs cost: cold start and per image, Powertools vs hand-written EMF (results in bench/TELEMETRY.md)
.PHONY: bench-telemetry
bench-telemetry: $(STAMP)
	$(BIN)/python -m bench.telemetry

clean:
	rm -rf $(VENV) .pytest_cache
