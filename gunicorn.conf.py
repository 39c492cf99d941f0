"""gunicorn settings: `gunicorn dashboard.wsgi --config gunicorn.conf.py`.

Every value can be overridden from the environment (GUNICORN_* or gunicorn's own
GUNICORN_CMD_ARGS). The access log is the app's own request line (models_admin.middleware:
one line per request on stdout with our request id, JSON with LOG_FORMAT=json); set
GUNICORN_ACCESS_LOG=true to have gunicorn write its own as well."""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or "0.0.0.0:8000"  # noqa: S104 (a container listens on all interfaces)
# Sync workers: each request makes at most a few upstream calls; two per core plus one
# keeps the cores busy while others wait on Mistral.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or "1")
# Longer than one upstream call with all its retries (MISTRAL_API_RETRY_BUDGET plus a
# read timeout), so gunicorn never kills a request that is still going to answer.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or "60")
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or "30")
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or "5")
# Recycle workers now and then, staggered, so a slow leak can't grow for ever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS") or "2000")
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER") or "200")
# Which proxies may set X-Forwarded-Proto / X-Forwarded-For.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
errorlog = "-"
accesslog = (
    "-" if os.environ.get("GUNICORN_ACCESS_LOG", "").lower() in {"1", "true", "yes"} else None
)
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
loglevel = os.environ.get("GUNICORN_LOG_LEVEL") or "info"
# The heartbeat file lives in memory (containers often have a slow or read-only /tmp).
if os.path.isdir("/dev/shm"):  # noqa: S108
    worker_tmp_dir = "/dev/shm"  # noqa: S108
