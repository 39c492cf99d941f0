# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Everything runs from .venv, installed from the pinned lock files in requirements/.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/dev.txt
# The stamp's name carries the lock's checksum, so editing the lock reinstalls.
STAMP := $(VENV)/.installed-$(shell cksum $(LOCK) | cut -d' ' -f1)
DEMO_ENV := DJANGO_DEBUG=true

.PHONY: help venv demo test pytest lint format typecheck lock bench deploy-check clean

help:
	@echo "make demo    - install, migrate, seed, start the dashboard + sandbox API (http://127.0.0.1:8000)"
	@echo "make test    - lint, type-check and run the whole test suite"
	@echo "make bench   - run the benchmarks (bench/), print a table, write bench/results.json"
	@echo "make lock    - re-pin requirements/*.txt from pyproject.toml"
	@echo "make format  - ruff format + autofix"

$(STAMP): $(LOCK)
	@rm -f $(VENV)/.installed-*
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	@touch $@

venv: $(STAMP)

demo: venv
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py seed_demo
	$(DEMO_ENV) $(PY) manage.py demo

test: lint typecheck pytest

pytest: venv
	$(VENV)/bin/pytest

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

lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 -o requirements/base.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache staticfiles
