"""Encryption of stored API keys (MultiFernet from FIELD_ENCRYPTION_KEYS), and the
settings that provide the encryption keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from dashboard import settings as project_settings
from models_admin import crypto
from models_admin.models import ApiCredential, mask_key
from models_admin.services.upstream import _inventory_cache_key
from tests.conftest import make_user

KEY = "sandbox-crypto-test-key-0123456789"
FIRST = Fernet.generate_key().decode()
SECOND = Fernet.generate_key().decode()


class TestEncrypt:
    def test_it_round_trips(self):
        assert crypto.decrypt(crypto.encrypt(KEY)) == KEY

    def test_the_token_does_not_contain_the_key(self):
        token = crypto.encrypt(KEY)

        assert KEY not in token
        assert KEY[8:20] not in token

    def test_each_encryption_is_different(self):
        assert crypto.encrypt(KEY) != crypto.encrypt(KEY)

    def test_the_first_key_encrypts(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = [FIRST, SECOND]

        token = crypto.encrypt(KEY)

        assert Fernet(FIRST.encode()).decrypt(token.encode()).decode() == KEY
        assert crypto.is_current(token)

    def test_any_configured_key_decrypts(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = [SECOND]
        token = crypto.encrypt(KEY)

        settings.FIELD_ENCRYPTION_KEYS = [FIRST, SECOND]

        assert crypto.decrypt(token) == KEY
        assert not crypto.is_current(token)

    def test_a_removed_key_leaves_its_tokens_undecryptable(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = [FIRST]
        token = crypto.encrypt(KEY)

        settings.FIELD_ENCRYPTION_KEYS = [SECOND]

        with pytest.raises(crypto.UndecryptableError):
            crypto.decrypt(token)

    @pytest.mark.parametrize(
        "token",
        ["", "not a token", "gAAAAAB" + "A" * 80],
        ids=["empty", "text", "fernet-shaped"],
    )
    def test_garbage_is_undecryptable(self, token):
        with pytest.raises(crypto.UndecryptableError):
            crypto.decrypt(token)

    def test_a_tampered_token_is_undecryptable(self):
        token = crypto.encrypt(KEY)
        flipped = token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]

        with pytest.raises(crypto.UndecryptableError):
            crypto.decrypt(flipped)

    def test_the_error_says_nothing_about_the_token(self):
        with pytest.raises(crypto.UndecryptableError) as failed:
            crypto.decrypt("some-token-value")

        assert "some-token-value" not in str(failed.value)
        assert failed.value.__cause__ is None


class TestRotate:
    def test_it_re_encrypts_with_the_first_key(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = [SECOND]
        old = crypto.encrypt(KEY)
        settings.FIELD_ENCRYPTION_KEYS = [FIRST, SECOND]

        new = crypto.rotate(old)

        assert crypto.is_current(new)
        settings.FIELD_ENCRYPTION_KEYS = [FIRST]
        assert crypto.decrypt(new) == KEY

    def test_it_refuses_an_undecryptable_token(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = [SECOND]
        old = crypto.encrypt(KEY)
        settings.FIELD_ENCRYPTION_KEYS = [FIRST]

        with pytest.raises(crypto.UndecryptableError):
            crypto.rotate(old)


class TestKeysSetting:
    def test_the_test_keys_are_usable(self):
        crypto.check_keys()

        assert len(django_settings.FIELD_ENCRYPTION_KEYS) == 2

    @pytest.mark.parametrize(
        "keys",
        [["not-a-fernet-key"], [FIRST, "short"], ["x" * 44]],
        ids=["nonsense", "second-bad", "not-base64"],
    )
    def test_an_invalid_key_is_improperly_configured(self, settings, keys):
        settings.FIELD_ENCRYPTION_KEYS = keys

        with pytest.raises(
            ImproperlyConfigured, match="must be comma-separated Fernet keys"
        ) as bad:
            crypto.check_keys()

        assert "Fernet.generate_key()" in str(bad.value)
        assert keys[-1] not in str(bad.value)

    def test_no_key_is_improperly_configured(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = []

        with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
            crypto.encrypt(KEY)

    def test_encrypting_with_an_invalid_key_says_so(self, settings):
        settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]

        with pytest.raises(ImproperlyConfigured):
            crypto.encrypt(KEY)


class TestApiCredential:
    def test_it_stores_the_key_encrypted_and_masked(self, db):
        user = make_user("dave", None, KEY)

        credential = ApiCredential.objects.get(user=user)

        assert credential.get_key() == KEY
        assert KEY not in credential.key_encrypted
        assert credential.key_masked == "sand…6789"
        assert KEY not in str(credential)
        assert KEY not in repr(credential)
        assert credential.is_decryptable

    def test_it_knows_when_it_cannot_be_decrypted(self, db, settings):
        user = make_user("dave", None, KEY)
        settings.FIELD_ENCRYPTION_KEYS = [FIRST]

        credential = ApiCredential.objects.get(user=user)

        assert not credential.is_decryptable
        with pytest.raises(crypto.UndecryptableError):
            credential.get_key()

    @pytest.mark.parametrize(
        ("key", "masked"),
        [
            ("sandbox-abcdefghijklmnop", "sand…mnop"),
            ("sandbox-abcd", "sa…cd"),
            ("sandbox-abc", "…"),
            ("short", "…"),
        ],
    )
    def test_the_mask_shows_less_of_shorter_keys(self, key, masked):
        assert mask_key(key) == masked

    def test_the_mask_never_shows_even_half_of_a_key(self):
        keys = ["".join(chr(ord("a") + i % 26) for i in range(n)) for n in range(1, 60)]

        shown = {key: mask_key(key).replace("…", "") for key in keys}

        assert all(len(part) * 2 < len(key) for key, part in shown.items())


def launch(code: str, home: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh Python with the project's own settings and only ``env``:
    nothing leaks in from this process (tests/settings.py sets FIELD_ENCRYPTION_KEYS)."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_DEV_SECRETS_FILE": str(home / "dev-secrets.json"),
        "DATABASE_URL": f"sqlite:///{home / 'db.sqlite3'}",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=project_settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Started:
    returncode: int
    stdout: str
    stderr: str
    secrets_file: Path  # where development settings would keep generated secrets


def finish(process: subprocess.Popen[str], home: Path) -> Started:
    stdout, stderr = process.communicate(timeout=60)
    return Started(process.returncode, stdout, stderr, home / "dev-secrets.json")


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "start-up-test-secret-key-" + "y" * 30,
    "DJANGO_ALLOWED_HOSTS": "localhost",
    "AUDIT_HMAC_KEY": "start-up-test-audit-key",
}
SET_UP = "import django; django.setup()"
STARTED_THEN_CHECK_KEYS = (
    SET_UP + "\nprint('started', flush=True)\nfrom models_admin import crypto; crypto.check_keys()"
)
ROUND_TRIP = (
    SET_UP + "\nimport json; from django.conf import settings; from models_admin import crypto"
    "\nassert crypto.decrypt(crypto.encrypt('sandbox-x')) == 'sandbox-x'"
    "\nprint(json.dumps(settings.FIELD_ENCRYPTION_KEYS))"
)
# name: (code, environment); each runs in a home (and dev-secrets file) of its own.
SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "production-without-keys": (SET_UP, PRODUCTION),
    "production-with-keys": (
        ROUND_TRIP,
        {**PRODUCTION, "FIELD_ENCRYPTION_KEYS": f" {FIRST}, {SECOND} "},
    ),
    "production-invalid-key": (
        STARTED_THEN_CHECK_KEYS,
        {**PRODUCTION, "FIELD_ENCRYPTION_KEYS": "not-a-fernet-key"},
    ),
    "development": (ROUND_TRIP, {"DJANGO_DEBUG": "true"}),
}


@pytest.fixture(scope="module")
def started(tmp_path_factory) -> dict[str, Started]:
    """Every scenario, started at once (each interpreter takes about half a second), then
    ``development-again``: a second start with the file the first development start wrote."""
    homes = {name: tmp_path_factory.mktemp(name) for name in SCENARIOS}
    running = {name: launch(code, homes[name], **env) for name, (code, env) in SCENARIOS.items()}
    results = {name: finish(process, homes[name]) for name, process in running.items()}
    code, env = SCENARIOS["development"]
    home = homes["development"]
    results["development-again"] = finish(launch(code, home, **env), home)
    return results


class TestStartUp:
    def test_production_refuses_to_start_without_encryption_keys(self, started):
        result = started["production-without-keys"]

        assert result.returncode != 0
        assert "ImproperlyConfigured: FIELD_ENCRYPTION_KEYS is not set." in result.stderr
        assert "required when DJANGO_DEBUG is off" in result.stderr
        assert not result.secrets_file.exists()

    def test_production_starts_with_encryption_keys(self, started):
        result = started["production-with-keys"]

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [FIRST, SECOND]
        assert not result.secrets_file.exists()

    def test_an_invalid_key_is_a_clear_error(self, started):
        result = started["production-invalid-key"]

        assert result.returncode != 0
        assert (
            "ImproperlyConfigured: FIELD_ENCRYPTION_KEYS must be comma-separated Fernet keys"
            in result.stderr
        )
        assert "not-a-fernet-key" not in result.stderr.splitlines()[-1]

    def test_an_invalid_key_stops_start_up(self, started):
        result = started["production-invalid-key"]

        assert "started" not in result.stdout

    def test_development_generates_keys_once_into_a_local_file(self, started):
        first, again = started["development"], started["development-again"]

        assert first.returncode == 0, first.stderr
        assert again.returncode == 0, again.stderr
        generated = json.loads(first.stdout)
        assert len(generated) == 1
        Fernet(generated[0].encode())
        assert json.loads(again.stdout) == generated
        assert json.loads(first.secrets_file.read_text())["FIELD_ENCRYPTION_KEYS"] == generated[0]
        assert first.secrets_file.stat().st_mode & 0o777 == 0o600

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
    def test_the_default_local_file_is_ignored_by_git(self):
        default = project_settings.BASE_DIR / ".local" / "dev-secrets.json"

        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "--quiet", ".local/dev-secrets.json"],
            cwd=project_settings.BASE_DIR,
            check=False,
        )

        assert ignored.returncode == 0
        if "DJANGO_DEV_SECRETS_FILE" not in os.environ:
            assert default == project_settings._DEV_SECRETS_FILE


class TestKeyDigest:
    def test_it_is_the_key_s_hmac_under_the_secret_key(self, settings):
        expected = hmac.new(settings.SECRET_KEY.encode(), KEY.encode(), hashlib.sha256)
        assert crypto.key_digest(KEY) == expected.hexdigest()
        settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
        assert crypto.key_digest(KEY) != expected.hexdigest()

    def test_the_inventory_cache_key_keeps_its_format(self):
        assert _inventory_cache_key(KEY) == f"inventory:v4:{crypto.key_digest(KEY)[:40]}"
