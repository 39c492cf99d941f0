"""Settings for the test suite: production settings with test-only secrets and fast parts."""

from __future__ import annotations

import os

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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MISTRAL_API_URL = "http://127.0.0.1:9"  # the sandbox fixture points this at a live sandbox
MISTRAL_API_TIMEOUT = 0.5
MISTRAL_API_CONNECT_TIMEOUT = 0.5
MISTRAL_API_RETRY_BACKOFF = 0.01
MISTRAL_API_RETRY_MAX_BACKOFF = 0.05
MISTRAL_API_RETRY_BUDGET = 2.0
# Serve static files straight from the app folders (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
