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
LAMBDA_TOOLS_STAMP := $(VENV)/.lambda-tools-installed
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

$(LAMBDA_TOOLS_STAMP): tools/lambda-requirements.txt $(TOOLS_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/lambda-requirements.txt
	touch $@

# The template's default architecture is arm64: its artifacts link against the aarch64
# standard library, which rustup installs. Where rustup cannot fetch it, tools/arm64-std says so
# in one line (bounded in time) and the x86_64 path, which needs nothing more, still works.
.PHONY: lambda-tools arm64-std
lambda-tools: $(LAMBDA_TOOLS_STAMP) arm64-std ## Install cargo-lambda and zig into .venv, and the arm64 standard library (for make lambda and sam build)

arm64-std:
	@tools/arm64-std

$(SCAN_STAMP): tools/scan-requirements.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/scan-requirements.txt
	touch $@

.PHONY: build
build: ## Build the functions, the CLI and the demo
	cargo build --workspace --bins

.PHONY: lint fmt-check
lint: fmt-check ## Formatting and clippy (warnings are errors)
	cargo clippy --workspace --all-targets -- -D warnings

fmt-check:
	cargo fmt --all -- --check

.PHONY: template member-template
template: tools ## AWS's own checks of template.yaml and member.yaml: cfn-lint and sam validate --lint
	cfn-lint template.yaml member.yaml
	$(OFFLINE_AWS) sam validate --lint
	$(VENV)/bin/python tools/member_template.py --check

member-template: tools ## Write member.yaml again from template.yaml's healing statements and tools/member.in.yaml
	$(VENV)/bin/python tools/member_template.py

.PHONY: scan
scan: tools $(SCAN_STAMP) ## Security scans: checkov on both templates, parliament on each function's and member.yaml's roles' IAM policies
	$(SCAN_VENV)/bin/checkov --file template.yaml --file member.yaml --framework cloudformation --skip-download --compact --quiet
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	$(VENV)/bin/python tools/template_to_json.py template.yaml > "$$scratch/template.json" && \
	$(VENV)/bin/python tools/template_to_json.py member.yaml > "$$scratch/member.json" && \
	$(SCAN_VENV)/bin/python tools/scan_policies.py "$$scratch/template.json" "$$scratch/member.json"

BENCH_ARGS ?=
.PHONY: bench bench-core bench-functions
bench: bench-core bench-functions ## Both benchmarks: the core's pure path, and the release functions against a boto3 baseline

bench-core: ## criterion: parse, select and decide with 10 to 10,000 rules (reports in $(CARGO_TARGET_DIR)/criterion)
	cargo bench -p autoheal-core --bench pure_path -- --warm-up-time 1 --measurement-time 2

bench-functions: lambda tools ## Release functions against a boto3 baseline, a bare lambda_runtime and the SDK's floor, under a local Lambda Runtime API (results in $(CARGO_TARGET_DIR)/bench)
	cargo lambda build --release --target $(LAMBDA_TARGET) --lambda-dir $(LAMBDA_DIR) -p autoheal-bare-runtime
	# The SDK's floor is built with the six, so that it shares their features: nothing but its
	# own crate is compiled again.
	cargo lambda build --release --target $(LAMBDA_TARGET) --lambda-dir $(LAMBDA_DIR) $(addprefix -p ,$(LAMBDA_PACKAGES)) -p autoheal-sdk-floor
	$(VENV)/bin/python bench/run.py --binaries $(LAMBDA_DIR) --results $(CARGO_TARGET_DIR)/bench $(BENCH_ARGS)

# `make lambda` builds this machine's architecture (what `make bench` runs); ARCH=arm64 or
# ARCH=x86_64 chooses. Each architecture's artifacts go to a directory of their own.
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
ARCH ?= $(HOST_ARCH)
LAMBDA_TARGET_arm64 := aarch64-unknown-linux-gnu
LAMBDA_TARGET_x86_64 := x86_64-unknown-linux-gnu
LAMBDA_TARGET = $(LAMBDA_TARGET_$(ARCH))
LAMBDA_DIR = $(CARGO_TARGET_DIR)/lambda/$(ARCH)
# The stack's six functions: one per layer, and the detection function.
LAMBDA_PACKAGES = $(addprefix autoheal-,$(LAYERS) detection)

.PHONY: lambda
lambda: lambda-tools ## Release Lambda artifacts of ARCH (default: this machine's), with their sizes and zipped sizes
	@test -n "$(LAMBDA_TARGET)" || { echo "ARCH=$(ARCH): expected arm64 or x86_64"; exit 2; }
	@test -d "$$(rustc --print sysroot)/lib/rustlib/$(LAMBDA_TARGET)/lib" || { echo "ARCH=$(ARCH): the $(LAMBDA_TARGET) standard library is not installed: make lambda-tools installs it where rustup can fetch it"; exit 1; }
	# The six in one build, with the features `sam build` gives them (the workspace's default
	# members: Cargo.toml), linked two at a time.
	cargo lambda build --release --target $(LAMBDA_TARGET) --lambda-dir $(LAMBDA_DIR) $(addprefix -p ,$(LAMBDA_PACKAGES))
	@$(VENV)/bin/python tools/artifact_sizes.py $(addprefix $(LAMBDA_DIR)/,$(addsuffix /bootstrap,$(LAMBDA_PACKAGES)))

# The functions a release function runs from its start to its first answers, which the link
# lays out together (functions/release-link/hot-functions.txt): written again from this
# machine's architecture's release functions, built with their symbols and run under valgrind
# as `make bench` runs them. They must be the code that ships, with the same symbols: the
# symbols are kept by a compiler flag, not by the profile, whose settings are part of every
# crate's hash and so of the symbols' names (rustc takes a flag's last value; Cargo leaves
# RUSTFLAGS out of the hash). cargo-lambda chooses the processor only where no flags are set
# (`haswell`, `neoverse-n1`): given flags, it must be given too. Their own build, beside
# `make lambda`'s.
HOT_FUNCTIONS_DIR := $(CARGO_TARGET_DIR)/lambda/$(HOST_ARCH)-symbols
LAMBDA_CPU_x86_64 := haswell
LAMBDA_CPU_arm64 := neoverse-n1
#
# The same build keeps each function's object (bench/capture_link.sh, given to Cargo as the
# target's linker) for the order of its code at the link (functions/release-link/order/ARCH:
# the linker's balanced partitioning for compression, bench/link_order.py), and is linked
# without the order it replaces (AUTOHEAL_LINK_ORDER=none: the code is the same either way).
# `make link-order ARCH=arm64` writes another architecture's order without profiling it (its
# hot part from this machine's profile, by name: the hashes differ).
symbols_build = AUTOHEAL_LINK_ORDER=none LINK_CAPTURE_DIR=$(CARGO_TARGET_DIR)/lambda/$(1)-objects LINK_CAPTURE_TRIPLE=$(LAMBDA_TARGET_$(1)) RUSTFLAGS="-C target-cpu=$(LAMBDA_CPU_$(1)) -C strip=none" cargo lambda build --release --target $(LAMBDA_TARGET_$(1)) --lambda-dir $(CARGO_TARGET_DIR)/lambda/$(1)-symbols --config 'target.$(LAMBDA_TARGET_$(1)).linker="$(CURDIR)/bench/capture_link.sh"' $(addprefix -p ,$(LAMBDA_PACKAGES))
link_order = $(VENV)/bin/python bench/link_order.py --objects $(CARGO_TARGET_DIR)/lambda/$(1)-objects --arch $(1) $(2)

.PHONY: hot-functions
hot-functions: lambda-tools tools ## Profile the release functions, write the functions their start-up runs and the order of their code (for the link's layout; needs valgrind)
	$(call symbols_build,$(HOST_ARCH))
	$(VENV)/bin/python bench/hot_functions.py --binaries $(HOT_FUNCTIONS_DIR) --ran $(CARGO_TARGET_DIR)/lambda/$(HOST_ARCH)-ran
	$(call link_order,$(HOST_ARCH),--ran $(CARGO_TARGET_DIR)/lambda/$(HOST_ARCH)-ran)

.PHONY: link-order
link-order: lambda-tools tools ## Write the order of ARCH's release functions' code at the link (hot-functions does this machine's)
	@test -d "$$(rustc --print sysroot)/lib/rustlib/$(LAMBDA_TARGET)/lib" || { echo "ARCH=$(ARCH): the $(LAMBDA_TARGET) standard library is not installed: make lambda-tools installs it where rustup can fetch it"; exit 1; }
	$(call symbols_build,$(ARCH))
	$(call link_order,$(ARCH),$(if $(wildcard $(CARGO_TARGET_DIR)/lambda/$(HOST_ARCH)-ran),--ran $(CARGO_TARGET_DIR)/lambda/$(HOST_ARCH)-ran --ran-by-name))

.PHONY: sam-build
sam-build: lambda-tools ## sam build of the stack's functions for ARCH (default: this machine's; into .aws-sam/build)
	$(OFFLINE_AWS) sam build --parameter-overrides Architecture=$(ARCH)
	@$(VENV)/bin/python tools/artifact_sizes.py $(foreach function,Infrastructure Platform Application Data Network Detection,.aws-sam/build/$(function)Function/bootstrap)

# `make test` lints while it builds: clippy's driver compiles the workspace's own crates (and
# lints them, as `make lint` does), and rustc compiles the dependencies once for both, where
# `cargo clippy` then `cargo build` would compile the SDK crates twice (in check mode, then
# for real): a cold run's longest step. The wrapper's path is part of those crates' build
# hashes, so `make test` keeps its own copies of them beside a plain `cargo build`'s.
LINTING := RUSTC_WORKSPACE_WRAPPER=$(CURDIR)/tools/clippy-compile
# A recipe's cargo runs its own jobs: under `make -j`, it would otherwise take its job slots
# from make's, and compile one crate at a time while the other recipes wait on the network.
OWN_JOBS := MAKEFLAGS= MFLAGS=

.PHONY: test test-build
test: ## Every check and test (what CI runs)
	# The build of every target, linted, the Python tools with AWS's template checks and the
	# scanners, and the fuzz targets' build, side by side: most of a cold build is one crate
	# (aws-sdk-ec2) on one core, and most of the tools' time is downloads. One build serves
	# every test (the CLI binary they run included), in the dev profile: the release
	# artifacts (`make lambda`) would compile the SDK crates a second time. Their output is
	# not held back per recipe: a cold build would keep the log silent for a quarter of an hour.
	$(MAKE) --no-print-directory -j4 fmt-check test-build template scan fuzz-build
	$(OWN_JOBS) $(LINTING) cargo test --workspace --no-fail-fast
	$(MAKE) --no-print-directory fuzz-smoke

test-build:
	$(OWN_JOBS) $(LINTING) cargo build --workspace --all-targets

# Fuzzing with cargo-fuzz (libFuzzer). The targets in fuzz/ are a workspace of their own; their
# builds go under $(CARGO_TARGET_DIR)/fuzz, their working corpus to fuzz/corpus (seeded at every
# run from events/ and tests/hostile/, which hold the committed seeds), crashes to
# fuzz/artifacts. cargo-fuzz asks for nightly flags: RUSTC_BOOTSTRAP lets stable accept them.
CARGO_FUZZ := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/cargo-fuzz
FUZZ_TARGETS := alarm_event rules_file
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 30
FUZZ := RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_DIRS := --fuzz-dir fuzz --target-dir $(CARGO_TARGET_DIR)/fuzz
# Alarm payloads go past EventBridge's 256 KiB limit, to reach the parser's refusal of them;
# rules files stay small, so that each run is fast.
FUZZ_MAX_LEN_alarm_event := 300000
FUZZ_MAX_LEN_rules_file := 65536

# Built in a directory of its own: the workspace's build may hold the lock of its own meanwhile.
$(CARGO_FUZZ):
	$(OWN_JOBS) CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/cargo-install cargo install cargo-fuzz --locked

.PHONY: fuzz-build
fuzz-build: $(CARGO_FUZZ)
	$(OWN_JOBS) $(FUZZ) build $(FUZZ_DIRS)

.PHONY: fuzz-seed
fuzz-seed:
	mkdir -p fuzz/corpus/alarm_event fuzz/corpus/rules_file
	cp events/*.json events/aws-samples/*.json tests/hostile/events/* fuzz/corpus/alarm_event/
	cp rules/*.toml tests/hostile/rules/* fuzz/corpus/rules_file/

# Every target, side by side (one per core), each with its output kept together.
FUZZ_EACH := $(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix fuzz-run-,$(FUZZ_TARGETS))

# One target for FUZZ_RUN_SECONDS; a crash fails the run and is kept in fuzz/artifacts/<target>.
fuzz-run-%:
	$(FUZZ) run $(FUZZ_DIRS) $* -- -max_total_time=$(FUZZ_RUN_SECONDS) \
		-max_len=$(FUZZ_MAX_LEN_$*) -timeout=20 -print_final_stats=1

.PHONY: fuzz-smoke
fuzz-smoke: fuzz-build fuzz-seed ## Fuzz each parser for 30 s (part of make test)
	$(FUZZ_EACH) FUZZ_RUN_SECONDS=$(FUZZ_SMOKE_SECONDS)

.PHONY: fuzz
fuzz: fuzz-build fuzz-seed ## Fuzz each parser for FUZZ_SECONDS (default 600 s)
	$(FUZZ_EACH) FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

.PHONY: reliability
reliability: tools ## Long reliability runs: a burst of 1,000 events, then FUZZ_SECONDS of fuzzing per parser
	cargo build --workspace --all-targets
	cargo test --workspace --test e2e -- --ignored --nocapture --test-threads 1 load::
	$(MAKE) --no-print-directory fuzz

.PHONY: demo
demo: tools ## The local end-to-end healing demo on the embedded emulator
	cargo build -p autoheal-cli -p autoheal-demo
	$(CARGO_TARGET_DIR)/debug/autoheal-demo

.PHONY: clean
clean: ## Remove the Python tools (the build cache in $(CARGO_TARGET_DIR) stays)
	rm -rf $(VENV) $(SCAN_VENV)
