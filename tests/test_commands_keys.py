"""Management commands around keys: ``rotate_encryption_keys`` and ``seed_demo``."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from models_admin import crypto, roles, services
from models_admin.audit import Actor
from models_admin.models import ApiCredential
from models_admin.sandbox import fingerprint
from tests.conftest import make_user

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
GONE = Fernet.generate_key().decode()


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def signs_in(username: str, password: str) -> bool:
    """Whether the login form accepts these credentials (as a browser would use it)."""
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def tokens() -> dict[str, str]:
    return dict(ApiCredential.objects.values_list("user__username", "key_encrypted"))


def keys() -> dict[str, str]:
    return {c.user.username: c.get_key() for c in ApiCredential.objects.select_related("user")}


@pytest.fixture
def stored_with_old_key(db, settings) -> dict[str, str]:
    """Three users whose keys were encrypted with OLD; NEW is now first in the setting."""
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    plain = {f"user{i}": f"sandbox-user{i}-key-{i:04d}abcd" for i in range(3)}
    for username, key in plain.items():
        make_user(username, roles.Role.MEMBER, key)
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    return plain


class TestRotateEncryptionKeys:
    def test_it_re_encrypts_every_key_with_the_first_key(self, stored_with_old_key):
        before = tokens()

        out, err = run("rotate_encryption_keys")

        assert out.strip() == "re-encrypted 3, already current 0, undecryptable 0, total 3"
        assert err == ""
        after = tokens()
        assert all(after[name] != before[name] for name in before)
        assert all(crypto.is_current(token) for token in after.values())
        assert keys() == stored_with_old_key

    def test_the_old_key_can_be_dropped_afterwards(self, stored_with_old_key, settings):
        run("rotate_encryption_keys")

        settings.FIELD_ENCRYPTION_KEYS = [NEW]

        assert keys() == stored_with_old_key
        assert all(c.is_decryptable for c in ApiCredential.objects.all())

    def test_without_it_the_old_key_could_not_be_dropped(self, stored_with_old_key, settings):
        settings.FIELD_ENCRYPTION_KEYS = [NEW]

        assert not any(c.is_decryptable for c in ApiCredential.objects.all())

    def test_dry_run_writes_nothing(self, stored_with_old_key):
        before = tokens()

        out, _ = run("rotate_encryption_keys", "--dry-run")

        assert "would re-encrypt 3, already current 0, undecryptable 0, total 3" in out
        assert "Dry run: nothing was written." in out
        assert tokens() == before
        assert not any(crypto.is_current(token) for token in before.values())

    def test_current_keys_are_left_alone(self, stored_with_old_key):
        run("rotate_encryption_keys")
        before = tokens()

        out, _ = run("rotate_encryption_keys")

        assert out.strip() == "re-encrypted 0, already current 3, undecryptable 0, total 3"
        assert tokens() == before

    def test_undecryptable_keys_are_counted_and_fail_the_command(
        self, stored_with_old_key, settings
    ):
        settings.FIELD_ENCRYPTION_KEYS = [GONE]
        lost = make_user("lost", roles.Role.MEMBER, "sandbox-lost-key-00000000")
        settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
        out, err = StringIO(), StringIO()

        with pytest.raises(CommandError, match="1 key\\(s\\) could not be decrypted") as failed:
            call_command("rotate_encryption_keys", stdout=out, stderr=err)

        assert failed.value.returncode == 1
        assert "re-encrypted 3, already current 0, undecryptable 1, total 4" in out.getvalue()
        assert f"user {lost.pk}" in err.getvalue()
        assert "sandbox-lost-key" not in out.getvalue() + err.getvalue()
        assert all(crypto.is_current(token) for name, token in tokens().items() if name != "lost")

    def test_a_dry_run_with_undecryptable_keys_fails_too(self, stored_with_old_key, settings):
        settings.FIELD_ENCRYPTION_KEYS = [GONE]
        make_user("lost", roles.Role.MEMBER, "sandbox-lost-key-00000000")
        settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
        before = tokens()
        out = StringIO()

        with pytest.raises(CommandError, match="could not be decrypted"):
            call_command("rotate_encryption_keys", "--dry-run", stdout=out, stderr=StringIO())

        assert "would re-encrypt 3, already current 0, undecryptable 1, total 4" in out.getvalue()
        assert tokens() == before

    def test_it_is_one_transaction(self, stored_with_old_key, monkeypatch):
        before = tokens()
        real_rotate = crypto.rotate
        rotated: list[str] = []

        def rotate_then_fail(token: str) -> str:
            if rotated:
                raise RuntimeError("disk full")
            rotated.append(token)
            return real_rotate(token)

        monkeypatch.setattr(crypto, "rotate", rotate_then_fail)

        with pytest.raises(RuntimeError, match="disk full"):
            run("rotate_encryption_keys")

        assert rotated
        assert tokens() == before

    def test_no_keys_at_all(self, db):
        out, _ = run("rotate_encryption_keys")

        assert out.strip() == "re-encrypted 0, already current 0, undecryptable 0, total 0"


class TestSeedDemo:
    def test_it_creates_the_team_with_roles_and_keys(self, db):
        run("seed_demo")

        users = {u.username: u for u in User.objects.all()}
        assert set(users) == {"alice", "bob", "carol"}
        assert roles.role_of(users["alice"]) == roles.Role.TEAM_ADMIN
        assert roles.role_of(users["bob"]) == roles.Role.MEMBER
        assert roles.role_of(users["carol"]) == roles.Role.AUDITOR
        demo_keys = keys()
        assert all(key.startswith("sandbox-") for key in demo_keys.values())
        assert all(name in users[name].email for name in users)

    def test_alice_and_bob_have_different_workspaces(self, db, sandbox):
        run("seed_demo")
        demo_keys = keys()

        seen = {
            name: {
                row.id
                for row in services.models_inventory(
                    actor=Actor(user=User.objects.get(username=name))
                ).rows
                if row.card.type == "fine-tuned"
            }
            for name in ("alice", "bob")
        }

        assert demo_keys["alice"] != demo_keys["bob"]
        assert seen["alice"] and seen["bob"]
        assert not seen["alice"] & seen["bob"]
        assert [r.key_fingerprint for r in sandbox.state.requests] == [
            fingerprint(demo_keys["alice"]),
            fingerprint(demo_keys["bob"]),
        ]

    def test_it_prints_logins_that_work(self, db):
        out, _ = run("seed_demo")

        logins = re.findall(r"^\s+(\w+)\s+/\s+(\S+)\s+(.+)$", out, flags=re.MULTILINE)
        assert [(user, role.split(" (")[0]) for user, _, role in logins] == [
            ("alice", "Team admin"),
            ("bob", "Member"),
            ("carol", "Auditor"),
        ]
        for username, password, _ in logins:
            assert signs_in(username, password)

    def test_it_can_run_again(self, db):
        run("seed_demo")
        bob = User.objects.get(username="bob")
        bob.is_active = False
        bob.set_password("changed-by-bob")
        bob.save()
        roles.set_role(bob, roles.Role.AUDITOR)

        out, _ = run("seed_demo")

        assert User.objects.count() == 3
        assert ApiCredential.objects.count() == 3
        bob = User.objects.get(username="bob")
        assert bob.is_active
        assert roles.role_of(bob) == roles.Role.MEMBER
        assert "Demo users ready:" in out
        assert signs_in("bob", re.search(r"bob\s+/\s+(\S+)", out)[1])

    def test_the_demo_keys_are_stored_encrypted(self, db):
        run("seed_demo")

        for credential in ApiCredential.objects.all():
            assert credential.get_key() not in credential.key_encrypted
            assert crypto.is_current(credential.key_encrypted)
