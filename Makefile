# tgsip developer commands. `make help` lists them; the README's two commands are `make run` and
# `make test`, and CI (.ci/run) calls `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help setup run test lint lint-python lint-rust test-rust test-python test-calls bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -e 's/:.*## /\t/' | expand -t 16

setup: ## install Debian packages, create .venv, build the media core (release)
	@scripts/setup

run: setup ## set up, then run the gateway on embedded defaults
	$(VENV)/bin/tgsip run

test: setup lint test-rust test-python test-calls ## set up, then run every lint and test (what CI runs)

lint: lint-rust lint-python ## all lints

lint-rust: ## rustfmt and clippy -D warnings
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --no-default-features -- -D warnings
	cargo clippy --workspace --all-targets -- -D warnings

lint-python: ## ruff and mypy --strict
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy --strict python/tgsip
	$(PY) -m mypy.stubtest tgsip._media_core

test-rust: ## the crate's own tests, pure Rust (no Python), optimised
	cargo test --workspace --no-default-features --release

test-python: ## pytest: unit, integration with real peers, benchmarks run once as smoke tests
	$(PY) -m pytest $(PYTEST_ARGS)

test-calls: ## Telegram call media between real ntgcalls peers, in a network namespace (root)
	@if unshare -n true 2>/dev/null; then \
	  timeout 480 scripts/netns-run $(PY) -m pytest tests/telegram/calls tests/calls tests/test_demo.py -m netns -p no:cacheprovider $(PYTEST_ARGS); \
	else \
	  echo "test-calls: cannot create a network namespace (needs root): the netns tests skip"; \
	  $(PY) -m pytest tests/telegram/calls tests/calls tests/test_demo.py -m netns $(PYTEST_ARGS); \
	fi

bench: setup ## pytest-benchmark timings and the capacity benchmark
	$(PY) -m pytest benches --benchmark-enable --benchmark-only
	$(VENV)/bin/tgsip bench media

clean: ## remove build products and the virtualenv
	cargo clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
