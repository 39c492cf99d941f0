# syntax=docker/dockerfile:1
# The dashboard behind gunicorn. Build: docker build -t mistral-models-dashboard .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# Dependencies first, from the lock file, so code changes don't reinstall them.
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir -r requirements/base.txt

COPY . .

# collectstatic needs settings that load; these placeholders never leave the build.
RUN DJANGO_SECRET_KEY=collectstatic-only \
    FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXJlYWxrZXk= \
    AUDIT_HMAC_KEY=collectstatic-only \
    python manage.py collectstatic --noinput \
    && chown -R 10001:10001 /app/staticfiles

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["docker/entrypoint.sh"]
CMD ["gunicorn", "dashboard.wsgi", "--config", "gunicorn.conf.py"]
