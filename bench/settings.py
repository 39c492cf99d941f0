"""Benchmark settings: the test suite's (DEBUG off, test-only secrets, the sandbox URL from
DASHBOARD_TEST_MISTRAL_API_URL) with a real database and a quiet log.

bench/run.py sets DATABASE_URL (a temporary SQLite file unless one is given) before
Django starts, and gunicorn workers get the same environment, so every process of a run
shares one database. Nothing here changes how the app behaves: only where it logs.
"""

from __future__ import annotations

import os

os.environ.setdefault("LOG_LEVEL", "WARNING")

from tests.settings import *  # noqa: E402, F403
from tests.settings import DATABASES, LOGGING  # noqa: E402

# tests.settings points the *test* database at a per-process file; the benchmark uses
# the real one (DATABASE_URL) so that gunicorn workers and background threads see it.
DATABASES["default"].pop("TEST", None)
# One line per request on stdout would drown the table (and cost time per request).
LOGGING["root"]["level"] = "WARNING"
LOGGING.setdefault("loggers", {})["models_admin.requests"] = {"level": "WARNING"}
