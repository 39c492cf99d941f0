"""A warm page's permissions and key, cached per user and checked against the access
generation read with the user (models_admin/access.py): no permission or key query on
a warm list page, and a role change, a permission change, a removed or replaced key
takes effect on the very next request, even though nothing drops the cached entry."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from models_admin import access, roles, services
from models_admin.audit import Actor
from models_admin.models import AccessGeneration, ApiCredential
from tests.conftest import BOB_KEY
from tests.helpers import url

pytestmark = pytest.mark.django_db


def queried_tables(client, path: str) -> str:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return " ".join(q["sql"] for q in captured.captured_queries)


def generation() -> int:
    return AccessGeneration.objects.get(pk=1).value


def cached_entry(user: User) -> dict:
    entry = cache.get(f"{access.PREFIX}{user.pk}")
    assert isinstance(entry, dict)
    return entry


class TestWarmPage:
    def test_a_warm_list_page_reads_neither_permissions_nor_the_key(self, as_alice, alice):
        as_alice.get(url("model_list"))

        sql = queried_tables(as_alice, url("model_list"))

        assert "auth_permission" not in sql
        assert "apicredential" not in sql
        assert "auth_user" in sql  # the user, with the generation in the same query
        assert "accessgeneration" in sql

    def test_the_cached_entry_names_the_inventory_not_the_key(self, as_alice, alice):
        as_alice.get(url("model_list"))

        entry = cached_entry(alice)
        assert entry["generation"] == generation()
        assert "models_admin.delete_models" in entry["permissions"]
        assert entry["inventory_key"].startswith("inventory:")
        assert "sandbox-alice" not in repr(entry)

    def test_turned_off_it_asks_the_database_every_time(self, as_alice, alice, settings):
        settings.ACCESS_CACHE_SECONDS = 0
        as_alice.get(url("model_list"))

        sql = queried_tables(as_alice, url("model_list"))

        assert "auth_permission" in sql and "apicredential" in sql
        assert cache.get(f"{access.PREFIX}{alice.pk}") is None


class TestChangesTakeEffectOnTheNextRequest:
    def test_a_role_taken_away(self, as_alice, alice):
        assert as_alice.get(url("audit_list")).status_code == 200
        assert as_alice.get(url("audit_list")).status_code == 200
        stale = cached_entry(alice)

        roles.set_role(alice, roles.Role.MEMBER)

        assert as_alice.get(url("audit_list")).status_code == 403
        # Nothing dropped the old entry: the generation it carries is what rules it out.
        assert stale["generation"] < generation()

    def test_a_role_given(self, as_bob, bob):
        assert as_bob.get(url("audit_list")).status_code == 403
        assert as_bob.get(url("audit_list")).status_code == 403

        roles.set_role(bob, roles.Role.AUDITOR)

        assert as_bob.get(url("audit_list")).status_code == 200

    def test_a_permission_taken_from_the_role_group(self, as_carol, carol):
        assert as_carol.get(url("audit_list")).status_code == 200
        assert as_carol.get(url("audit_list")).status_code == 200

        group = Group.objects.get(name=roles.GROUP_NAMES[roles.Role.AUDITOR])
        group.permissions.remove(Permission.objects.get(codename="view_auditentry"))

        assert as_carol.get(url("audit_list")).status_code == 403

    def test_a_deactivated_user_is_signed_out(self, as_alice, alice):
        assert as_alice.get(url("model_list")).status_code == 200
        alice.is_active = False
        alice.save()

        assert as_alice.get(url("model_list")).status_code == 302

    def test_a_removed_key(self, as_alice, alice):
        as_alice.get(url("model_list"))
        assert b"data-model-id=" in as_alice.get(url("model_list")).content

        ApiCredential.objects.filter(user=alice).delete()

        page = as_alice.get(url("model_list")).content
        assert b"data-model-id=" not in page
        assert b"Add your Mistral API key" in page

    def test_a_replaced_key(self, as_alice, alice):
        as_alice.get(url("model_list"))
        before = as_alice.get(url("model_list")).content

        services.credential_save(actor=Actor(user=alice), api_key=BOB_KEY, verify=False)

        after = as_alice.get(url("model_list")).content
        masked = ApiCredential.objects.get(user=alice).key_masked
        assert masked.encode() in after and masked.encode() not in before


class TestGeneration:
    def test_a_sign_in_does_not_bump_it(self, alice, client):
        before = generation()

        signed_in = client.post(
            reverse("login"), {"username": "alice", "password": "alice-password"}
        )

        assert signed_in.status_code == 302

        assert generation() == before

    def test_a_missing_row_is_made_again_above_every_old_number(self, alice):
        old = generation()
        AccessGeneration.objects.all().delete()

        access.bump()

        assert generation() > old

    def test_without_the_row_nothing_is_cached(self, alice):
        AccessGeneration.objects.all().delete()
        user = access.users().get(pk=alice.pk)

        assert user.has_perm("models_admin.browse_models")
        access.remember(user, "inventory_key", "x")

        assert cache.get(f"{access.PREFIX}{alice.pk}") is None
