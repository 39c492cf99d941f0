"""Settings for the test suite: production settings with test-only secrets and fast parts."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# Fixed, test-only Fernet keys: the first encrypts, both decrypt.
os.environ.setdefault(
    "FIELD_ENCRYPTION_KEYS",
    "dGVzdC1lbmNyeXB0aW9uLWtleS0xLWZvci10ZXN0cy0=,dGVzdC1lbmNyeXB0aW9uLWtleS0yLWZvci10ZXN0cy0=",
)
os.environ.setdefault("AUDIT_HMAC_KEY", "test-audit-hmac-key")

from dashboard.settings import *  # noqa: E402, F403
from dashboard.settings import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: background threads (bulk jobs) and live servers then use
    # ordinary connections to it, with SQLite's normal locking.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"mistral-dashboard-tests-{os.getpid()}.sqlite3"
        )
    }

# The suite checks the shared cache's bodies on local memory too (production keeps them
# only with Redis: MODEL_LIST_CACHE_BODIES); tests of the other way override it.
MODEL_LIST_CACHE_BODIES = True

# Plain-HTTP test clients and browsers (production redirects to HTTPS, secures cookies).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The sandbox fixture points this at a live sandbox; servers started by tests in other
# processes (gunicorn) get theirs through the environment.
MISTRAL_API_URL = os.environ.get("DASHBOARD_TEST_MISTRAL_API_URL", "http://127.0.0.1:9")
MISTRAL_API_TIMEOUT = 0.5
MISTRAL_API_CONNECT_TIMEOUT = 0.5
MISTRAL_API_RETRY_BACKOFF = 0.01
MISTRAL_API_RETRY_MAX_BACKOFF = 0.05
MISTRAL_API_RETRY_BUDGET = 2.0
# Serve static files straight from the app folders (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
