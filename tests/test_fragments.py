"""The list's rendered table is shared between requests (models_admin/fragments.py),
but never a user's CSRF token, their role's controls or their page's back link."""

from __future__ import annotations

import json
import re

import pytest
from django.middleware.csrf import _unmask_cipher_token  # type: ignore[attr-defined]
from django.test import Client
from pytest_django.asserts import assertTemplateNotUsed, assertTemplateUsed

from models_admin import fragments, remote, roles
from models_admin.inventory import Inventory
from tests.conftest import ALICE_KEY, make_user
from tests.helpers import url

# Included inside the shared table, above its rows: rendered only when the table is.
ROW = "models_admin/_list_source.html"
SELECT = "django/forms/widgets/select.html"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
NEXT = re.compile(r'name="next" value="([^"]+)"')


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def tokens(response) -> set[str]:
    return set(TOKEN.findall(response.content.decode()))


def csrf_secret(client: Client) -> str:
    return client.cookies["csrftoken"].value


@pytest.fixture
def same_key_users(alice):
    """Four people who share alice's key (so one inventory), in three roles."""
    return {
        "admin": alice,
        "admin2": make_user("dora", roles.Role.TEAM_ADMIN, ALICE_KEY),
        "member": make_user("eve", roles.Role.MEMBER, ALICE_KEY),
        "auditor": make_user("fay", roles.Role.AUDITOR, ALICE_KEY),
    }


class TestSharedTable:
    def test_two_users_of_one_role_share_the_rows_but_not_their_csrf_tokens(self, same_key_users):
        first, second = signed_in(same_key_users["admin"]), signed_in(same_key_users["admin2"])

        one = first.get(url("model_list"))
        two = second.get(url("model_list"))

        assertTemplateUsed(one, ROW)
        assertTemplateNotUsed(two, ROW)  # the rows came from the shared fragment
        assert two.content.count(b"data-model-id=") == one.content.count(b"data-model-id=") > 0
        for client, response in ((first, one), (second, two)):
            found = tokens(response)
            assert len(found) >= 1
            # Every token on the page is this user's own (it unmasks to their secret).
            assert {_unmask_cipher_token(t) for t in found} == {csrf_secret(client)}
        assert csrf_secret(first) != csrf_secret(second)
        assert fragments.holes()["csrf_token"].encode() not in two.content

    def test_each_role_gets_its_own_controls(self, same_key_users):
        pages = {
            role: signed_in(user).get(url("model_list")).content.decode()
            for role, user in same_key_users.items()
        }

        assert "danger" in pages["admin"] and 'id="bulk-form"' in pages["admin"]
        assert 'value="delete"' in pages["admin"]
        assert 'id="bulk-form"' in pages["member"] and "Rename" in pages["member"]
        assert 'value="delete"' not in pages["member"]
        assert ">Delete</a>" not in pages["member"]
        assert 'id="bulk-form"' not in pages["auditor"] and "Rename" not in pages["auditor"]
        assert "csrfmiddlewaretoken" not in pages["auditor"].split('id="model-table"')[1]

    def test_the_back_link_of_each_row_is_the_requests_own(self, same_key_users):
        first, second = signed_in(same_key_users["admin"]), signed_in(same_key_users["admin2"])
        first.get(url("model_list") + "?sort=name")

        page = second.get(
            url("model_list") + "?sort=name",
            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/models/?q=ft"},
        )

        assertTemplateNotUsed(page, ROW)
        assert set(NEXT.findall(page.content.decode())) == {"/models/?q=ft"}

    def test_a_new_list_is_rendered_again(self, same_key_users, sandbox):
        client = signed_in(same_key_users["admin"])
        client.get(url("model_list"))

        again = client.get(url("model_list") + "?refresh=1")

        assertTemplateUsed(again, ROW)
        assertTemplateNotUsed(client.get(url("model_list")), ROW)

    def test_the_filters_are_shared_by_list_calls_that_offer_the_same_choices(
        self, same_key_users, sandbox
    ):
        client = signed_in(same_key_users["admin"])
        first = client.get(url("model_list"))

        again = client.get(url("model_list") + "?refresh=1")

        assertTemplateUsed(first, SELECT)
        assertTemplateUsed(again, ROW)  # a new list: new rows
        assertTemplateNotUsed(again, SELECT)  # the same choices: the same form
        assert again.content.count(b"<option") == first.content.count(b"<option")

    def test_other_choices_are_another_filter_form(self):
        def inventory(*cards: dict) -> Inventory:
            return Inventory.build(remote.read_model_list(json.dumps({"data": cards}).encode()))

        card = {
            "id": "ft:a",
            "type": "fine-tuned",
            "capabilities": {"completion_chat": True},
            "job": "j",
            "root": "open-mistral-7b",
        }
        one = inventory(card)

        assert one.choices_version == inventory({**card, "id": "ft:b"}).choices_version
        assert one.choices_version != inventory({**card, "root": "other"}).choices_version
        assert (
            one.choices_version
            != inventory({**card, "capabilities": {"vision": True}}).choices_version
        )

    def test_another_query_string_is_another_fragment(self, same_key_users):
        client = signed_in(same_key_users["admin"])
        client.get(url("model_list") + "?sort=name")

        assertTemplateUsed(client.get(url("model_list") + "?sort=-name"), ROW)
        assertTemplateNotUsed(client.get(url("model_list") + "?sort=name"), ROW)


class TestKey:
    def test_the_query_string_is_read_unambiguously(self, rf):
        one = fragments.key("t", "v1", rf.get("/models/", {"a=b": "c"}), [True])
        two = fragments.key("t", "v1", rf.get("/models/", {"a": "b=c"}), [True])

        assert one != two

    def test_refresh_does_not_change_it_and_abilities_do(self, rf):
        plain = fragments.key("t", "v1", rf.get("/models/?sort=name"), [True, False])

        assert plain == fragments.key(
            "t", "v1", rf.get("/models/?sort=name&refresh=1"), [True, False]
        )
        assert plain != fragments.key("t", "v1", rf.get("/models/?sort=name"), [True, True])
        assert plain != fragments.key("t", "v2", rf.get("/models/?sort=name"), [True, False])

    def test_a_misused_tag_says_how_to_use_it(self):
        from django.template import Template, TemplateSyntaxError

        with pytest.raises(TemplateSyntaxError, match="usage"):
            Template(
                "{% load models_admin_tags %}{% shared_fragment name %}{% endshared_fragment %}"
            )
