"""The per-request lookups compiled once (models_admin/compiled.py): the same instances
as the ORM's, one statement per call, and no compiling after the first."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from models_admin import access
from models_admin.compiled import PLACEHOLDER, CompiledLookup
from models_admin.models import ApiCredential
from models_admin.services import upstream

pytestmark = pytest.mark.django_db


def test_the_user_is_the_one_the_orm_reads_with_its_generation(alice):
    User.objects.filter(pk=alice.pk).update(last_login=timezone.now())
    expected = access.users().get(pk=alice.pk)

    found = access._user_by_id.first(alice.pk)

    assert isinstance(found, User)
    assert [getattr(found, f.attname) for f in User._meta.concrete_fields] == [
        getattr(expected, f.attname) for f in User._meta.concrete_fields
    ]
    assert found.last_login is not None and timezone.is_aware(found.last_login)
    assert getattr(found, access.GENERATION) == getattr(expected, access.GENERATION)
    assert found._state.adding is False and found._state.db == "default"


def test_the_credential_is_the_one_the_orm_reads(alice):
    expected = ApiCredential.objects.get(user=alice)

    found = upstream._credential_of.first(alice.pk)

    assert found is not None
    assert [getattr(found, f.attname) for f in ApiCredential._meta.concrete_fields] == [
        getattr(expected, f.attname) for f in ApiCredential._meta.concrete_fields
    ]
    assert found.get_key() == expected.get_key()


def test_nothing_found_is_none(alice):
    assert access._user_by_id.first(alice.pk + 1000) is None
    assert upstream._credential_of.first(alice.pk + 1000) is None


def test_each_call_is_one_statement_with_its_own_value(alice, bob):
    access._user_by_id.first(alice.pk)  # compiled

    with CaptureQueriesContext(connection) as captured:
        first = access._user_by_id.first(alice.pk)
        second = access._user_by_id.first(bob.pk)

    assert (first.username, second.username) == ("alice", "bob")
    assert len(captured.captured_queries) == 2
    assert str(PLACEHOLDER) not in captured.captured_queries[0]["sql"]


def test_the_queryset_is_built_once_per_database(alice, bob):
    built: list[int] = []

    def build(pk: int):
        built.append(pk)
        return User.objects.filter(pk=pk)

    lookup = CompiledLookup(User, build)

    assert lookup.first(alice.pk) == alice
    assert lookup.first(bob.pk) == bob
    assert built == [PLACEHOLDER]


def test_a_lookup_whose_value_is_not_in_its_sql_once_is_refused(alice):
    lookup = CompiledLookup(
        User, lambda pk: User.objects.filter(pk=pk) | User.objects.filter(id=pk)
    )

    with pytest.raises(ValueError, match="once"):
        lookup.first(alice.pk)


def test_a_session_with_a_user_id_that_is_not_a_number_is_anonymous(alice):
    assert access.CachedAccess().get_user("not-a-number") is None
    assert access.CachedAccess().get_user(None) is None
    assert access.CachedAccess().get_user(str(alice.pk)) == alice
