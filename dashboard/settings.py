"""Settings, all read from the environment (see .env.example for every variable).

With DJANGO_DEBUG off (the default), every secret must be given explicitly and a
missing one stops start-up with ImproperlyConfigured. With DJANGO_DEBUG on, missing
secrets are generated once into .local/dev-secrets.json (git-ignored), so a fresh
clone runs without any set-up.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if not value:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}.")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default=False)

_DEV_SECRETS_FILE = Path(
    env_str("DJANGO_DEV_SECRETS_FILE") or BASE_DIR / ".local" / "dev-secrets.json"
)


def _generate_dev_secret(name: str) -> str:
    if name == "FIELD_ENCRYPTION_KEYS":
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(50)


def env_secret(name: str) -> str:
    """A secret from the environment; in development, a generated one kept in .local/."""
    value = env_str(name)
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"{name} is not set. It is required when DJANGO_DEBUG is off; "
            "see .env.example and the README's deployment section."
        )
    stored: dict[str, str] = {}
    if _DEV_SECRETS_FILE.exists():
        stored = json.loads(_DEV_SECRETS_FILE.read_text())
    if name not in stored:
        stored[name] = _generate_dev_secret(name)
        _DEV_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
        _DEV_SECRETS_FILE.write_text(json.dumps(stored, indent=2))
        _DEV_SECRETS_FILE.chmod(0o600)
    return stored[name]


SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "models_admin",
]

MIDDLEWARE = [
    # Health checks answer before host validation, HTTPS redirects and login.
    "models_admin.middleware.HealthCheckMiddleware",
    "models_admin.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # With Redis: a session copy older than the last change of access is read again.
    "models_admin.sessions.SessionCopyCheck",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "models_admin.middleware.HtmxMessagesMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "models_admin.context_processors.abilities",
                "models_admin.context_processors.csp_nonce",
            ],
        },
    },
]

# Databases: SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL says so.
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock up front, so concurrent writers
    # queue instead of failing with "database is locked" halfway through.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: Redis when REDIS_URL is set (shared by every worker and host), else per-process memory.
# It is an accelerator, never a dependency (inventory.SharedInventories): a Redis that
# refuses or hangs costs at most REDIS_TIMEOUT_SECONDS, then counts as a miss.
REDIS_URL = env_str("REDIS_URL")
REDIS_TIMEOUT_SECONDS = env_float("REDIS_TIMEOUT_SECONDS", 0.25)
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "models_admin.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# After a cache call fails, this process leaves the cache alone for this long.
CACHE_PAUSE_SECONDS = env_float("CACHE_PAUSE_SECONDS", 5.0)
# With Redis, sessions are read from a copy there (no query per request); the database
# stays the truth (models_admin/sessions.py). Per-process memory would keep a copy
# that other workers could not drop at sign-out, so without Redis: the database.
SESSION_ENGINE = "models_admin.sessions" if REDIS_URL else "django.contrib.sessions.backends.db"
SESSION_CACHE_SECONDS = env_int("SESSION_CACHE_SECONDS", 300)
# A user's permissions and their key's inventory key are cached this long, checked on
# every request against the access generation read with the user (models_admin/access.py);
# 0 turns the cache off.
ACCESS_CACHE_SECONDS = env_int("ACCESS_CACHE_SECONDS", 300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Refuses sign-ins while a username/address is locked out, then the usual backend.
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend whose permissions are cached (models_admin/access.py).
    "models_admin.access.Backend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "models_admin:model_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security. Production defaults; a developer machine (DJANGO_DEBUG=true) relaxes them.
# Behind a load balancer that terminates TLS, set DJANGO_TRUSTED_PROXY_COUNT (how many
# proxies append to X-Forwarded-For) so client addresses and HTTPS are read from it.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the page (hx-headers), not the cookie
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_HOURS", 12) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Content-Security-Policy (django-csp): no inline script or style; htmx is loaded with
# the request's nonce, and its indicator styles are switched off (base.html) so it
# injects no <style> either.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# Login throttling (django-axes): after 5 failures for a username from one address,
# that pair is locked out for 15 minutes. The state lives in the database, shared by
# every worker and host: sign-in then works while Redis is down, and an outage can
# neither lift a lockout (fail open) nor refuse every sign-in.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",)
)
AXES_VERBOSE = False

# Sign-in with the company's identity provider (OpenID Connect, mozilla-django-oidc;
# models_admin/oidc.py, docs/oidc.md). Off unless OIDC_ISSUER is set. The provider's
# endpoints and keys come from its discovery document, fetched when first needed.
OIDC_ISSUER = env_str("OIDC_ISSUER").rstrip("/")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = env_str("OIDC_SIGN_ALGO", "RS256")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
# role=group pairs, first match wins: "team_admin=ml-platform-admins,member=ml-users".
OIDC_ROLE_GROUPS = [
    (role.strip().replace("-", "_"), group.strip())
    for role, _, group in (pair.partition("=") for pair in env_list("OIDC_ROLE_GROUPS"))
]
# Local accounts that keep password sign-in while OIDC is on (break-glass); none by default.
OIDC_BREAK_GLASS_USERS = env_list("OIDC_BREAK_GLASS_USERS")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 10.0)  # seconds, for each call to the provider
# django-axes throttles password sign-in; the provider's callback is left to the provider.
AXES_WHITELIST_CALLABLE = "models_admin.oidc.exempt_from_axes"
if OIDC_ISSUER:
    if not OIDC_RP_CLIENT_ID:
        raise ImproperlyConfigured("OIDC_ISSUER is set: OIDC_CLIENT_ID is required too.")
    for _role, _group in OIDC_ROLE_GROUPS:
        if _role not in {"member", "team_admin", "auditor"} or not _group:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_GROUPS: {_role}={_group} is not role=group "
                "(roles: member, team_admin, auditor)."
            )
    if not OIDC_ROLE_GROUPS:
        raise ImproperlyConfigured("OIDC_ISSUER is set: OIDC_ROLE_GROUPS is required too.")
    AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "models_admin.oidc.ProviderBackend",
        "models_admin.oidc.LocalPasswordBackend",
    ]

# The Mistral API.
MISTRAL_API_URL = env_str("MISTRAL_API_URL", "https://api.mistral.ai").rstrip("/")
MISTRAL_API_TIMEOUT = env_float("MISTRAL_API_TIMEOUT", 10.0)  # seconds to wait for a response
MISTRAL_API_CONNECT_TIMEOUT = env_float("MISTRAL_API_CONNECT_TIMEOUT", 3.0)
MISTRAL_API_MAX_RETRIES = env_int("MISTRAL_API_MAX_RETRIES", 3)
MISTRAL_API_RETRY_BACKOFF = env_float("MISTRAL_API_RETRY_BACKOFF", 0.5)  # first wait, seconds
MISTRAL_API_RETRY_MAX_BACKOFF = env_float("MISTRAL_API_RETRY_MAX_BACKOFF", 8.0)
MISTRAL_API_RETRY_BUDGET = env_float("MISTRAL_API_RETRY_BUDGET", 20.0)  # total seconds per call
# Egress proxy for Mistral (http://user:pass@host:port). Empty: HTTPS_PROXY / HTTP_PROXY /
# NO_PROXY and SSL_CERT_FILE from the environment apply (see models_admin/remote/transport.py).
MISTRAL_API_PROXY = env_str("MISTRAL_API_PROXY")

# Stored API keys are encrypted with these Fernet keys: the first encrypts, all decrypt.
FIELD_ENCRYPTION_KEYS = [
    k.strip() for k in env_secret("FIELD_ENCRYPTION_KEYS").split(",") if k.strip()
]
# Keys the audit log's hash chain (HMAC-SHA256). Every app host must share it.
AUDIT_HMAC_KEY = env_secret("AUDIT_HMAC_KEY")
# Set-password links (Team page) work once, for this many hours.
PASSWORD_LINK_HOURS = env_int("PASSWORD_LINK_HOURS", 24)
PASSWORD_RESET_TIMEOUT = PASSWORD_LINK_HOURS * 3600
# Signs the audit checkpoints (checkpoints.py); AUDIT_HMAC_KEY when empty.
AUDIT_CHECKPOINT_KEY = env_str("AUDIT_CHECKPOINT_KEY")
# Checkpoints are also written here as files when set (e.g. a mount the app can't delete from).
AUDIT_CHECKPOINT_DIR = env_str("AUDIT_CHECKPOINT_DIR")
AUDIT_CHECKPOINT_EVERY_MINUTES = env_int("AUDIT_CHECKPOINT_EVERY_MINUTES", 60)
# Bulk actions run this many upstream calls at once.
BULK_CONCURRENCY = env_int("BULK_CONCURRENCY", 8)

# --- Background work: Django's Tasks API (the django-tasks backport) on the database
# backend. `manage.py run_worker` processes (any number, on any host) claim tasks from
# the database; bulk jobs and scheduled upkeep run there, never in a web process.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A bulk item's claim lasts this long; a live worker renews it, so only the item of a
# worker that died (killed, recycled, host lost) is taken over by another after this.
BULK_LEASE_SECONDS = env_float("BULK_LEASE_SECONDS", 60.0)
# A bulk item Mistral keeps rate-limiting (429) waits and is tried again until this long
# after its first try; only then does it fail. Other errors fail it at once.
BULK_ITEM_DEADLINE_SECONDS = env_float("BULK_ITEM_DEADLINE_SECONDS", 600.0)
# Threads one worker process gives a job (BULK_CONCURRENCY still bounds the job as a
# whole, across every worker that shares it).
BULK_WORKER_THREADS = env_int("BULK_WORKER_THREADS", BULK_CONCURRENCY)
# How often each worker's scheduler looks for due upkeep and jobs left without a worker.
WORKER_TICK_SECONDS = env_float("WORKER_TICK_SECONDS", 5.0)
# Upkeep periods: reconciling audit attempts whose outcome is unknown, expiring drafts.
RECONCILE_EVERY_MINUTES = env_int("RECONCILE_EVERY_MINUTES", 5)
# How often the task workers list each stored key's models and record outside changes.
MODEL_SYNC_MINUTES = max(1, env_int("MODEL_SYNC_MINUTES", 15))
# Cached model inventories (per API key) live this long; the user's own changes drop them.
MODEL_LIST_CACHE_SECONDS = env_int("MODEL_LIST_CACHE_SECONDS", 30)
# Whether the cache keeps each list call's body for other processes to read (Redis); a
# per-process cache keeps only a version token next to the process's own inventory.
MODEL_LIST_CACHE_BODIES = env_bool("MODEL_LIST_CACHE_BODIES", default=bool(REDIS_URL))

# Error reports (and the DEBUG page) never show sensitive variables or POST fields.
DEFAULT_EXCEPTION_REPORTER_FILTER = "models_admin.logging.SecretsExceptionReporterFilter"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "models_admin.logging.RequestIdFilter"}},
    "formatters": {
        "text": {
            "()": "models_admin.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "models_admin.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["request_id"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # httpx logs every request line at INFO; our client logs its own summary.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
