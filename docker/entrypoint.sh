#!/bin/sh
# Container entry point: optionally migrate, then run the command (gunicorn by default).
# With several app containers, run migrations once (DJANGO_MIGRATE_ON_START=true on one
# of them, or `docker compose run --rm migrate`), not on every container.
set -eu

if [ "${DJANGO_MIGRATE_ON_START:-false}" = "true" ]; then
    echo "entrypoint: applying migrations" >&2
    python manage.py migrate --noinput
fi

exec "$@"
