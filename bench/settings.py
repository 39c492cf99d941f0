"""Benchmark settings: the test suite's (DEBUG off, test-only secrets, plain HTTP, the
sandbox's URL from DASHBOARD_TEST_MISTRAL_API_URL), with production's upstream timeouts
and retries, a real database and a quiet log.

bench/run.py sets DATABASE_URL (a temporary SQLite file unless one is given) before
Django starts, and the gunicorn workers it starts get the same environment, so every
process of a run shares one database (and one Redis, with REDIS_URL).
"""

from __future__ import annotations

import importlib
import os
import warnings

os.environ.setdefault("LOG_LEVEL", "WARNING")

from tests.settings import *  # noqa: E402, F403
from tests.settings import DATABASES, LOGGING  # noqa: E402

# The test suite shortens these so that failure tests run fast; a benchmark wants what
# production runs with (dashboard.settings read them from the environment, with its
# defaults; tests.settings, which imported it, overrode them).
_production = importlib.import_module("dashboard.settings")
MISTRAL_API_TIMEOUT = _production.MISTRAL_API_TIMEOUT
MISTRAL_API_CONNECT_TIMEOUT = _production.MISTRAL_API_CONNECT_TIMEOUT
MISTRAL_API_RETRY_BACKOFF = _production.MISTRAL_API_RETRY_BACKOFF
MISTRAL_API_RETRY_MAX_BACKOFF = _production.MISTRAL_API_RETRY_MAX_BACKOFF
MISTRAL_API_RETRY_BUDGET = _production.MISTRAL_API_RETRY_BUDGET
# As in production: the list call's body is cached only where other processes read it.
MODEL_LIST_CACHE_BODIES = _production.MODEL_LIST_CACHE_BODIES

# tests.settings points the *test* database at a per-process file; the benchmark uses
# the database itself (DATABASE_URL), which gunicorn workers and bulk threads share.
DATABASES["default"].pop("TEST", None)
# One log line per request on stdout would drown the table and cost time per request.
LOGGING["root"] = {"handlers": ["console"], "level": "WARNING"}
# As in production: static files are indexed once at start-up, not looked up per request.
WHITENOISE_AUTOREFRESH = False
# tests.settings serves static files from the app folders; STATIC_ROOT (collectstatic's
# output) need not exist, and WhiteNoise's warning about it would only add noise.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
# The scheduled model sync runs once, when the first task worker starts (section 4,
# against the sandbox the keys' snapshots come from), and not again when a later
# section's worker starts in a new period: against that section's own sandbox, whose
# models are all different, it recorded every model as vanished and as new (thousands
# of audit entries) while the rate-limit section waited for an idle queue, and timed
# out. A period of 100 years never ends during a run (periods start at multiples of it
# since 1970).
MODEL_SYNC_MINUTES = 100 * 365 * 24 * 60
