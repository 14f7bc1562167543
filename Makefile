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
# The scanners' own environment: checkov's pinned dependencies conflict with AWS SAM CLI's.
SCAN_VENV := .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.tools-installed
LAYERS := infrastructure platform application data network
# AWS's tools check the template offline; they still want credentials and a region to exist.
OFFLINE_AWS := AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(TOOLS_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

.PHONY: tools
tools: $(TOOLS_STAMP) ## Install the emulator and AWS's deployment tools into .venv

$(SCAN_STAMP): tools/scan-requirements.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/scan-requirements.txt
	touch $@

.PHONY: build
build: ## Build the functions, the CLI and the demo
	cargo build --workspace --bins

.PHONY: lint
lint: ## Formatting and clippy (warnings are errors)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: template
template: tools ## AWS's own checks of template.yaml: cfn-lint and sam validate --lint
	cfn-lint template.yaml
	$(OFFLINE_AWS) sam validate --lint

.PHONY: scan
scan: tools $(SCAN_STAMP) ## Security scans: checkov on template.yaml, parliament on each function's IAM policy
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet
	set -o pipefail; $(VENV)/bin/python tools/template_to_json.py template.yaml | $(SCAN_VENV)/bin/python tools/scan_policies.py -

.PHONY: lambda
lambda: tools ## Release Lambda artifacts (x86_64: arm64 cannot be built here), with sizes
	cargo lambda build --release --x86-64 $(addprefix -p autoheal-,$(LAYERS))
	@for layer in $(LAYERS); do ls -l $(CARGO_TARGET_DIR)/lambda/autoheal-$$layer/bootstrap; done

.PHONY: sam-build
sam-build: tools ## sam build of the five functions for x86_64 (into .aws-sam/build)
	$(OFFLINE_AWS) sam build --parameter-overrides Architecture=x86_64
	@for layer in Infrastructure Platform Application Data Network; do ls -l .aws-sam/build/$${layer}Function/bootstrap; done

.PHONY: test
test: tools lint template scan ## Every check and test (what CI runs)
	# One build of every target first: the CLI binary the tests run, with the same
	# feature set as the tests, so nothing is compiled twice.
	cargo build --workspace --all-targets
	cargo test --workspace --no-fail-fast
	$(MAKE) --no-print-directory lambda

.PHONY: demo
demo: tools ## The local end-to-end healing demo on the embedded emulator
	cargo build -p autoheal-cli -p autoheal-demo
	$(CARGO_TARGET_DIR)/debug/autoheal-demo

.PHONY: clean
clean: ## Remove the Python tools (the build cache in $(CARGO_TARGET_DIR) stays)
	rm -rf $(VENV) $(SCAN_VENV)
