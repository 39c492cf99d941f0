# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Everything runs from .venv, installed from the pinned lock files in requirements/;
# the tests of the mistralai 3.x SDK run from .venv-sdk3 (requirements/sdk3.txt), as
# 3.x and the 2.x in .venv are one distribution and cannot share an environment.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/dev.txt
# The stamp's name carries the lock's checksum, so editing the lock reinstalls.
STAMP := $(VENV)/.installed-$(shell cksum $(LOCK) | cut -d' ' -f1)
SDK3_VENV := .venv-sdk3
SDK3_LOCK := requirements/sdk3.txt
SDK3_STAMP := $(SDK3_VENV)/.installed-$(shell cksum $(SDK3_LOCK) | cut -d' ' -f1)
# uv installs the locks (pip bootstraps it, at the version the dev lock pins).
UV_PIN := $(shell grep '^uv==' $(LOCK))
UV := $(VENV)/bin/uv
# pytest: WORKERS is pytest-xdist's -n (auto: one per core; 0: no workers, one process),
# COVERAGE the coverage options (empty: none), PYTEST_ARGS anything else, e.g.
#   make pytest WORKERS=0 COVERAGE= PYTEST_ARGS='tests/test_remote.py -k timeout'
WORKERS ?= auto
# xdist schedules with "worksteal": an idle worker takes tests queued for a busy one, so a
# slow test near the end of a worker's share leaves no core idle.
COVERAGE ?= --cov --cov-report=term
PYTEST_ARGS ?=
DEMO_ENV := DJANGO_DEBUG=true
# axe-core for the accessibility browser tests, pinned in tests/browser/package-lock.json.
NODE_MODULES := tests/browser/node_modules/.package-lock.json

.PHONY: help install venv venv-sdk3 demo test pytest test-sdk3 lint format typecheck lock bench \
	deploy-check clean

help:
	@echo "make demo      - install, migrate, seed, start the dashboard + sandbox API (http://127.0.0.1:8000)"
	@echo "make test      - lint, type-check, the whole suite with branch coverage, the SDK 3.x tests"
	@echo "make pytest    - the whole suite only (WORKERS=, COVERAGE=, PYTEST_ARGS= adjust it)"
	@echo "make test-sdk3 - tests/test_sandbox_sdk.py against mistralai 3.x, in .venv-sdk3"
	@echo "make bench     - run the benchmarks (bench/), print a table, write bench/results.json"
	@echo "make lock      - re-pin requirements/*.txt from pyproject.toml"
	@echo "make format    - ruff format + autofix"

$(STAMP): $(LOCK)
	@rm -f $(VENV)/.installed-*
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "$(UV_PIN)"
	$(UV) pip install --quiet --python $(PY) -r $(LOCK)
	@touch $@

venv: $(STAMP)

$(SDK3_STAMP): $(SDK3_LOCK) | $(STAMP)
	@rm -f $(SDK3_VENV)/.installed-*
	@test -x $(SDK3_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(SDK3_VENV)
	$(UV) pip install --quiet --python $(SDK3_VENV)/bin/python -r $(SDK3_LOCK)
	@touch $@

venv-sdk3: $(SDK3_STAMP)

# Everything the tests need, installed (what make test does first anyway).
install: venv venv-sdk3 $(NODE_MODULES)

demo: venv
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py seed_demo
	$(DEMO_ENV) $(PY) manage.py demo

test: lint typecheck pytest test-sdk3

$(NODE_MODULES): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	@touch $@

pytest: venv $(NODE_MODULES)
	$(VENV)/bin/pytest -n $(WORKERS) --dist worksteal $(COVERAGE) $(PYTEST_ARGS)

# SDK_LOCK tells the tests which lock's mistralai they must find installed.
test-sdk3: venv-sdk3
	SDK_LOCK=$(SDK3_LOCK) $(SDK3_VENV)/bin/pytest -q tests/test_sandbox_sdk.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: venv
	$(PY) -m bench.run

# Universal locks (markers included) for every Python that requires-python allows.
# sdk3.txt takes the app's versions from base.txt, so both environments run the same app.
lock: venv
	$(UV) pip compile pyproject.toml --universal --python-version 3.11 -o requirements/base.txt
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		-o requirements/dev.txt
	$(UV) pip compile pyproject.toml --extra sdk3 --universal --python-version 3.11 \
		-c requirements/base.txt -o requirements/sdk3.txt

clean:
	rm -rf $(VENV) $(SDK3_VENV) tests/browser/node_modules .mypy_cache .ruff_cache .coverage .coverage.* staticfiles
