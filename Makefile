# livekit-drain: `make demo` runs the story on the local world, `make test` runs everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
# checkov pins its own boto3 (==1.35.x), older than the project's: it lives in its own virtualenv.
CHECKOV_VENV := .venv-checkov
DEMO_VENV := .venv-demo
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/$(SAM_VENV)/bin:$(PATH)
# Lambda-side tracing needs no X-Ray daemon locally.
export POWERTOOLS_TRACE_DISABLED := true

# Parameters that turn on the packaged worker service, so `make test` checks its timers too.
WORKER_SERVICE_EXAMPLE := WorkerImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-drain-worker:1 \
	WorkerSubnetIds=subnet-0123456789abcdef0 LiveKitUrl=wss://livekit.example.com \
	LiveKitSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf

.PHONY: dev demo test lint lint-template format build validate bench clean

dev: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## create .venv (project + dev tools), .venv-sam (SAM CLI), .venv-checkov; idempotent

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The SAM CLI pins its own boto3/pydantic ranges: it lives in its own virtualenv.
$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli>=1.120,<2'
	@touch $@

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	@touch $@

# The demo installs only what it needs (the `demo` extra), in its own virtualenv: no dev tools,
# no SAM CLI. Measured from a fresh clone in README.md ("make demo").
demo: $(DEMO_VENV)/.installed ## a fleet with live calls scales in; the coordinator drains it
	$(DEMO_VENV)/bin/drainctl demo

$(DEMO_VENV)/.installed: pyproject.toml
	@echo "make demo: installing livekit-drain[demo] into $(DEMO_VENV): boto3, moto (server mode), livekit-api,"
	@echo "  Powertools, pydantic, aiohttp: about 180 MB, 1-3 minutes on a fresh machine (once; no dev tools, no SAM CLI)"
	@echo "  creating the virtualenv $(DEMO_VENV) ..."
	@test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	@echo "  resolving and downloading with pip ..."
	@set -o pipefail; PYTHONUNBUFFERED=1 $(DEMO_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar off \
		-e '.[demo]' | awk '/^(Obtaining|  Installing build|  Preparing|Collecting|Successfully installed)/ { print substr($$0, 1, 110); fflush() }'
	@touch $@
	@echo "make demo: installed; the demo starts (about a minute)"

lint: dev ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# cfn-lint with the serverless rules (cfn-lint-serverless) and checkov on the template; every
# finding is fixed or suppressed in template.yaml's Metadata with its reason.
lint-template: dev ## cfn-lint + cfn-lint-serverless + drainctl check's template rules, and checkov on template.yaml
	$(VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules --append-rules drainctl.check.cfn_lint -- template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download

format: dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: dev lint lint-template ## lint, the template linters, the project's own timeout budget, then the whole test suite
	$(VENV)/bin/drainctl check --template template.yaml --config samconfig.toml
	$(VENV)/bin/drainctl check --template template.yaml --params $(WORKER_SERVICE_EXAMPLE)
	$(VENV)/bin/pytest

bench: dev ## figures, never assertions: drainctl simulate and drainctl bench (BENCHMARKS.md)
	$(VENV)/bin/drainctl simulate
	$(VENV)/bin/drainctl bench

validate: dev lint-template ## sam validate --lint, cfn-lint (+ serverless rules) and checkov on template.yaml
	$(SAM) validate --lint

build: dev ## sam build (no Docker: BuildMethod makefile)
	$(SAM) build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
