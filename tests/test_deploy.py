"""Production serving: deploy checks, security headers, login throttling, health checks,
logs, gunicorn, and the Docker image's steps (linted and run without a Docker engine)."""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from django.urls import reverse
from pytest_django.asserts import assertContains

from models_admin.http import client_ip
from models_admin.logging import JsonFormatter, RequestIdFilter
from tests import servers
from tests.conftest import make_user

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, every secret given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "LOG_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        DJANGO_SECRET_KEY="pr0duction-S3cret-" + "k9Xv!q2#Lm7$Wz4&Rt8^Yb1*Hn5(Jd3)" * 2,
        DJANGO_ALLOWED_HOSTS="models.example.com,127.0.0.1",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        AUDIT_HMAC_KEY="audit-" + "x" * 40,
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
    )
    # The image's `python` is the one with the dependencies: here, the virtualenv's.
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(
    args: list[str], env: dict[str, str], timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


class TestDeployCheck:
    @pytest.mark.parametrize("redis", [False, True])
    def test_check_deploy_passes_at_warning_level(self, tmp_path, redis):
        env = production_env(
            tmp_path, **({"REDIS_URL": "redis://127.0.0.1:6379/0"} if redis else {})
        )

        result = run([PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "no issues" in result.stdout

    @pytest.mark.parametrize(
        "missing", ["DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY"]
    )
    def test_a_missing_secret_stops_start_up(self, tmp_path, missing):
        env = production_env(tmp_path)
        del env[missing]

        result = run([PYTHON, "manage.py", "check"], env)

        assert result.returncode != 0
        assert f"{missing} is not set" in result.stderr

    def test_every_setting_is_in_env_example(self):
        settings_source = (ROOT / "dashboard" / "settings.py").read_text()
        example = (ROOT / ".env.example").read_text()

        names = set(
            re.findall(r'env_(?:str|bool|int|float|list|secret)\(\s*"([A-Z_]+)"', settings_source)
        )

        assert names, "no settings found: the pattern is out of date"
        missing = sorted(
            name
            for name in names
            if name != "DJANGO_DEV_SECRETS_FILE" and f"{name}=" not in example
        )
        assert missing == []


class TestSecurityHeaders:
    def test_content_security_policy_without_unsafe_inline(self, client, alice):
        client.force_login(alice)

        response = client.get(reverse("models_admin:api_key"))

        policy = response["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        scripts = re.findall(r"<script[^>]*>", response.content.decode())
        assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
        assert "<style" not in response.content.decode()
        assert ' style="' not in response.content.decode()

    def test_other_headers(self, client, db):
        response = client.get(reverse("login"), secure=True)

        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert (
            response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        )
        assert response["X-Request-ID"]

    def test_cookies_are_secure_httponly_and_samesite(self, client, db, settings):
        settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
        make_user("sam", None)
        login_page = client.get(reverse("login"), secure=True)

        response = client.post(
            reverse("login"), {"username": "sam", "password": "sam-password"}, secure=True
        )

        for cookie in (login_page.cookies["csrftoken"], response.cookies["sessionid"]):
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
        assert (
            response.cookies["sessionid"]["max-age"] == ""
            or int(response.cookies["sessionid"]["max-age"]) <= 12 * 3600
        )

    def test_production_redirects_to_https(self, client, db, settings):
        settings.SECURE_SSL_REDIRECT = True

        response = client.get(reverse("login"))

        assert response.status_code == 301
        assert response["Location"].startswith("https://")


class TestLoginThrottling:
    def _login(self, client, password: str, ip: str = "10.1.1.1"):
        return client.post(
            reverse("login"), {"username": "sam", "password": password}, REMOTE_ADDR=ip
        )

    def test_repeated_failures_lock_the_account_for_that_address(self, client, db):
        make_user("sam", None)

        failures = [self._login(client, "wrong") for _ in range(5)]
        locked = self._login(client, "sam-password")
        elsewhere = self._login(client, "sam-password", ip="10.2.2.2")

        assert [r.status_code for r in failures[:4]] == [200] * 4
        assertContains(failures[0], "Please enter a correct username and password")
        assert locked.status_code == 429
        assertContains(locked, "Too many failed sign-ins", status_code=429)
        assert elsewhere.status_code == 302  # only that username from that address is locked

    def test_a_success_resets_the_count(self, client, db):
        make_user("sam", None)

        for _ in range(4):
            self._login(client, "wrong")
        assert self._login(client, "sam-password").status_code == 302
        client.logout()

        assert all(self._login(client, "wrong").status_code == 200 for _ in range(4))


class TestHealthChecks:
    def test_liveness_and_readiness_need_no_login_and_no_host(self, client, db):
        live = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
        ready = client.get("/readyz", HTTP_HOST="10.0.0.7:8000")

        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert ready.status_code == 200 and ready.json() == {
            "status": "ok",
            "database": "ok",
            "cache": "ok",
        }
        assert client.get("/models/", HTTP_HOST="10.0.0.7:8000").status_code == 400

    def test_readiness_reports_an_unreachable_cache_as_degraded(self, client, db, settings):
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{servers.free_port()}/0",
            }
        }

        response = client.get("/readyz")

        # Still ready: a shared Redis down must not take every host out of the balancer.
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "cache": "degraded"}


class TestLogs:
    def test_one_json_line_per_request_with_the_request_id(self, client, db, caplog):
        caplog.set_level(logging.INFO, logger="models_admin.requests")

        response = client.get(reverse("login"), HTTP_X_REQUEST_ID="lb-assigned-1234")

        (record,) = [r for r in caplog.records if r.name == "models_admin.requests"]
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
        assert response["X-Request-ID"] == "lb-assigned-1234"
        assert (line["method"], line["path"], line["status"]) == ("GET", "/accounts/login/", 200)
        assert "duration_ms" in line and line["level"] == "INFO"

    def test_a_malformed_incoming_request_id_is_replaced(self, client, db):
        response = client.get(reverse("login"), HTTP_X_REQUEST_ID="<script>")

        assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


class TestGunicorn:
    def test_it_serves_the_app_with_json_request_logs(self, tmp_path):
        env = production_env(
            tmp_path,
            GUNICORN_BIND=f"127.0.0.1:{servers.free_port()}",
            WEB_CONCURRENCY="2",
            LOG_FORMAT="json",
            DJANGO_SECURE_SSL_REDIRECT="false",
        )
        assert run([PYTHON, "manage.py", "migrate", "--noinput"], env).returncode == 0
        assert run([PYTHON, "manage.py", "collectstatic", "--noinput"], env).returncode == 0
        port = int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
        with servers.gunicorn(env, "--config", "gunicorn.conf.py", port=port) as (base, process):
            ready = httpx.get(f"{base}/readyz")
            login = httpx.get(f"{base}/accounts/login/", headers={"Host": "models.example.com"})
        out, err = process.communicate(timeout=15)

        assert ready.json()["database"] == "ok"
        assert login.status_code == 200
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        request_lines = [line for line in lines if line["logger"] == "models_admin.requests"]
        assert [line["path"] for line in request_lines] == ["/accounts/login/"]
        assert request_lines[0]["request_id"] == login.headers["X-Request-ID"]
        assert "Booting worker" in err

    def test_the_config_sizes_workers_from_the_cpus(self, monkeypatch):
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

        assert namespace["workers"] == os.cpu_count() * 2 + 1
        assert namespace["timeout"] > 20 + 10  # > the retry budget plus a read timeout


class TestDockerImage:
    def test_the_dockerfile_lints_clean(self):
        hadolint = Path(PYTHON).parent / "hadolint"

        result = run([str(hadolint), "Dockerfile"], dict(os.environ))

        assert result.returncode == 0, result.stdout + result.stderr

    def test_it_is_slim_non_root_locked_and_healthchecked(self):
        dockerfile = (ROOT / "Dockerfile").read_text()

        assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
        assert "pip install --no-cache-dir -r requirements/base.txt" in dockerfile
        assert re.search(r"^USER 10001", dockerfile, re.M)
        assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
        assert 'CMD ["gunicorn", "dashboard.wsgi", "--config", "gunicorn.conf.py"]' in dockerfile

    def test_the_build_step_collectstatic_runs_as_written(self, tmp_path):
        dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
        step = next(
            line
            for line in dockerfile.splitlines()
            if "collectstatic" in line and line.startswith("RUN")
        )
        command = shlex.split(step.removeprefix("RUN").split("&&")[0])
        assignments = dict(word.split("=", 1) for word in command if re.match(r"^[A-Z_]+=", word))
        argv = [word for word in command if not re.match(r"^[A-Z_]+=", word)]
        env = {**production_env(tmp_path), **assignments}
        env.pop("DJANGO_ALLOWED_HOSTS")

        result = run([PYTHON if argv[0] == "python" else argv[0], *argv[1:]], env)

        assert result.returncode == 0, result.stderr
        assert (tmp_path / "static" / "staticfiles.json").exists()
        assert list((tmp_path / "static" / "css").glob("app.*.css.gz"))

    def test_the_entrypoint_runs_the_command(self, tmp_path):
        result = run(["sh", "docker/entrypoint.sh", "echo", "started"], production_env(tmp_path))

        assert result.returncode == 0
        assert result.stdout.strip() == "started"
        assert not (tmp_path / "prod.sqlite3").exists()  # no migration unless asked

    def test_the_entrypoint_migrates_when_asked(self, tmp_path):
        env = production_env(tmp_path, DJANGO_MIGRATE_ON_START="true")

        result = run(
            ["sh", "docker/entrypoint.sh", PYTHON, "manage.py", "showmigrations", "models_admin"],
            env,
        )

        assert result.returncode == 0, result.stderr
        assert "[X] 0003_audit_triggers" in result.stdout

    def test_a_failed_migration_stops_the_container(self, tmp_path):
        env = production_env(
            tmp_path,
            DJANGO_MIGRATE_ON_START="true",
            DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        )

        result = run(["sh", "docker/entrypoint.sh", "echo", "must-not-run"], env)

        assert result.returncode != 0
        assert "must-not-run" not in result.stdout


class TestClientAddress:
    @pytest.mark.parametrize(
        ("proxies", "forwarded", "expected"),
        [
            (0, "203.0.113.9", "10.0.0.2"),  # no trusted proxy: the header is ignored
            (1, "203.0.113.9", "203.0.113.9"),
            (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left part could be forged
            (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
            (2, "203.0.113.9", "10.0.0.2"),  # fewer hops than proxies: don't trust it
        ],
    )
    def test_behind_trusted_proxies(self, rf, settings, proxies, forwarded, expected):
        settings.TRUSTED_PROXY_COUNT = proxies
        request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

        assert client_ip(request) == expected
