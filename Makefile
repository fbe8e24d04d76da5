# Every entry point installs what it needs first; see README for the two commands that matter.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Scenarios to run, all by default: `make molecule SCENARIOS="swap preflight"`.
# (`default` is an empty stub that only answers Molecule's own lookup: see its molecule.yml.)
SCENARIOS ?= $(filter-out default,$(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))))
# Debian suites of the simulated NAS images (OMV 7 is bookworm-based, OMV 8 trixie-based).
export NAS_SUITES ?= bookworm trixie

.PHONY: machine setup images lint unit sanity molecule build test demo demo-down changelog

# Missing Debian packages and a Docker engine (tests/setup-machine.sh, also run by .ci/run). The
# tests add headless Chromium for the browser test (a target-specific variable: it reaches every
# prerequisite of `test` and `molecule`).
MACHINE_OPTS ?=
test molecule: MACHINE_OPTS = --browser
machine:
	tests/setup-machine.sh $(MACHINE_OPTS)

$(VENV)/.installed: requirements.txt | machine
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

setup: machine $(VENV)/.installed

images:
	tests/images/build-all.sh

lint: setup
	yamllint --strict .
	ansible-lint
	antsibull-changelog lint

# promtool and amtool (from Debian's packages, not installed) check the observability role's rules.
unit: setup
	tests/tools/prometheus-tools.sh
	pytest tests/unit

# ansible-test sanity on the collection, offline, with requirements.txt's pins (see
# tests/sanity/run.py); ignores with their reasons in tests/sanity/ignore-2.19.txt. shellcheck
# comes from the Debian package the machine set-up installs.
sanity: setup
	python tests/sanity/run.py

molecule: setup images
	tests/run-scenarios.sh $(SCENARIOS)

build: setup
	ansible-galaxy collection build --force --output-path .cache/

test: lint unit sanity build molecule

demo: setup images
	tests/demo/run.sh

demo-down: setup
	tests/demo/down.sh

changelog: setup
	antsibull-changelog release
