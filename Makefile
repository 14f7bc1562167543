# autoheal: `make demo` runs the local healing demo, `make test` runs every check and test.
# Both install what is missing first (Python tools into .venv) and stop what they start.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTHON ?= python3
# Builds are large (AWS SDK crates): keep them outside the clone so re-runs reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/autoheal-target
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Tests and the demo talk to 127.0.0.1 only: never to instance metadata.
export AWS_EC2_METADATA_DISABLED := true
export CARGO_TERM_COLOR ?= never

TOOLS_STAMP := $(VENV)/.tools-installed

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(TOOLS_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

.PHONY: tools
tools: $(TOOLS_STAMP) ## Install the emulator and AWS's deployment tools into .venv

.PHONY: build
build: ## Build the functions, the CLI and the demo
	cargo build --workspace --bins

.PHONY: lint
lint: ## Formatting and clippy (warnings are errors)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: tools lint ## Every check and test (what CI runs)
	cargo build -p autoheal-cli
	cargo test --workspace --no-fail-fast

.PHONY: demo
demo: tools ## The local end-to-end healing demo on the embedded emulator
	cargo build -p autoheal-cli -p autoheal-demo
	$(CARGO_TARGET_DIR)/debug/autoheal-demo

.PHONY: clean
clean: ## Remove the Python tools (the build cache in $(CARGO_TARGET_DIR) stays)
	rm -rf $(VENV)
