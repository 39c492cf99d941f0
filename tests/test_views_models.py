"""The model pages, driven through Django's test client against the sandbox over HTTP."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from pytest_django.asserts import (
    assertContains,
    assertNotContains,
    assertTemplateNotUsed,
    assertTemplateUsed,
)

from models_admin.inventory import PAGE_SIZE
from tests.conftest import ALICE_KEY, CAROL_KEY
from tests.helpers import HTMX, fine_tuned, url

# What htmx sends from the detail page's name-and-description section.
IN_FIELDS = {**HTMX, "HX-Target": "model-fields"}
IN_TABLE = {"HX-Target": "model-table"}


def workspace(sandbox, key=ALICE_KEY):
    return sandbox.state.workspace(key)


def base_card(sandbox, key=ALICE_KEY) -> dict:
    return next(c for c in workspace(sandbox, key).models.values() if c["type"] == "base")


def change(sandbox, card: dict, key=ALICE_KEY, **fields) -> dict:
    """Change a model upstream, behind the dashboard's back."""
    updated = dict(card, **fields)
    workspace(sandbox, key).put(updated)
    return updated


def expected(card: dict) -> str:
    """The edit form's hidden ``expected`` value for this card."""
    return json.dumps({"name": card.get("name"), "description": card.get("description")})


def calls(sandbox, method: str | None = None) -> list:
    return [r for r in sandbox.state.requests if method is None or r.method == method]


class TestModelList:
    def test_it_requires_login(self, client, db):
        response = client.get(url("model_list"))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    def test_it_lists_every_model_with_one_upstream_call(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.get(url("model_list"), {"sort": "name"})

        assertTemplateUsed(response, "models_admin/model_list.html")
        assert len(calls(sandbox)) == 1
        page = response.context["page"]
        assert page.paginator.count == len(response.context["inventory"].rows)
        assertContains(response, 'id="model-table"')
        response = as_alice.get(url("model_list"), {"q": ft["id"]})
        assertContains(response, ft["id"])
        assertContains(response, ft["root"])

    def test_aliases_are_folded_into_one_row(self, as_alice, sandbox):
        aliased = next(
            c for c in workspace(sandbox).models.values() if c["type"] == "base" and c["aliases"]
        )
        family = {aliased["id"], *aliased["aliases"]}

        response = as_alice.get(url("model_list"), {"type": "base", "q": aliased["name"]})

        rows = [
            r
            for r in response.context["page"].object_list
            if r.id in family or set(r.aliases) & family
        ]
        assert len(rows) == 1
        assert set(rows[0].aliases) | {rows[0].id} == family
        assertContains(response, "also:")

    def test_search_filters_sort_and_page_live_in_the_query_string(self, as_alice, sandbox):
        archived = fine_tuned(sandbox, archived=True)

        response = as_alice.get(
            url("model_list"), {"archived": "yes", "type": "fine-tuned", "sort": "id"}, headers=HTMX
        )

        assertTemplateUsed(response, "models_admin/_model_table.html")
        assertNotContains(response, "<html")
        ids = [row.id for row in response.context["page"].object_list]
        assert archived["id"] in ids
        assert ids == sorted(ids)
        assert all(row.card.archived for row in response.context["page"].object_list)

    def test_search_matches_name_and_description(self, as_alice, sandbox):
        target = change(
            sandbox,
            fine_tuned(sandbox),
            name="zebra-classifier",
            description="Finds striped horses",
        )

        by_name = as_alice.get(url("model_list"), {"q": "ZEBRA"})
        by_description = as_alice.get(url("model_list"), {"q": "striped"})

        assert [r.id for r in by_name.context["page"].object_list] == [target["id"]]
        assert [r.id for r in by_description.context["page"].object_list] == [target["id"]]

    def test_root_and_capability_filters(self, as_alice, sandbox):
        classifier = next(
            c for c in workspace(sandbox).models.values() if c["id"].startswith("ft:classifier:")
        )

        response = as_alice.get(
            url("model_list"), {"root": classifier["root"], "capability": "classification"}
        )

        rows = response.context["page"].object_list
        assert rows and all(
            r.card.root == classifier["root"] and "classification" in r.card.capabilities
            for r in rows
        )

    def test_bad_query_values_fall_back_to_defaults(self, as_alice):
        response = as_alice.get(url("model_list"), {"sort": "evil", "page": "-3", "type": "nope"})

        assert response.status_code == 200
        assert response.context["query"].sort == "-created"

    def test_only_the_visible_page_is_rendered(
        self, as_alice, sandbox, django_assert_max_num_queries
    ):
        template = fine_tuned(sandbox)
        for i in range(2000):
            workspace(sandbox).put(
                dict(template, id=f"ft:open-mistral-7b:aaaaaaaa:20250101:{i:08x}", name=f"bulk-{i}")
            )

        with django_assert_max_num_queries(8):
            response = as_alice.get(url("model_list"), {"page": 3})

        assert response.content.count(b"<tr data-model-id=") == PAGE_SIZE
        assert response.context["page"].number == 3
        assertContains(response, 'rel="next"')

    def test_the_inventory_is_cached_until_the_user_changes_something(self, as_alice, sandbox):
        as_alice.get(url("model_list"))
        as_alice.get(url("model_list"), {"q": "x"})
        assert len(calls(sandbox, "GET")) == 1

        as_alice.post(url("model_row_archive", fine_tuned(sandbox)["id"]), headers=HTMX)
        as_alice.get(url("model_list"))

        assert [r.path for r in calls(sandbox, "GET")][-1] == "/v1/models"
        assert len([r for r in calls(sandbox, "GET") if r.path == "/v1/models"]) == 2

    def test_refresh_bypasses_the_cache(self, as_alice, sandbox):
        as_alice.get(url("model_list"))
        as_alice.get(url("model_list"), {"refresh": "1"})

        assert len(calls(sandbox)) == 2

    def test_no_key_yet(self, as_charlie, sandbox):
        response = as_charlie.get(url("model_list"))

        assertContains(response, "Add your Mistral API key to see your models")
        assertContains(response, url("api_key"))
        assert calls(sandbox) == []

    def test_no_models_yet(self, as_alice, sandbox):
        workspace(sandbox).models.clear()

        assertContains(as_alice.get(url("model_list")), "No models yet")

    def test_nothing_matches(self, as_alice):
        assertContains(
            as_alice.get(url("model_list"), {"q": "no-such-model-anywhere"}), "Nothing matches"
        )

    @pytest.mark.parametrize(
        ("fault", "says"),
        [
            ({"fail_status": 503, "fail_times": 10}, "Mistral is having trouble (HTTP 503)"),
            ({"fail_status": 401, "fail_times": 2}, "Mistral rejected your API key"),
            ({"fail_status": 429, "fail_times": 10, "retry_after": "30"}, "Try again in 30 s"),
            ({"malformed_times": 2, "malformed_kind": "html"}, "could not read"),
            ({"hang_s": 3, "hang_times": 10}, "did not answer in time"),
        ],
    )
    def test_upstream_failures_are_messages(self, as_alice, sandbox, fault, says):
        sandbox.state.faults.set(**fault)

        response = as_alice.get(url("model_list"))
        partial = as_alice.get(url("model_list"), headers=HTMX)

        assert response.status_code == partial.status_code == 200
        assertContains(response, says)
        assertContains(partial, says)

    def test_a_rejected_key_links_to_the_key_page(self, as_alice, sandbox):
        sandbox.state.faults.set(fail_status=401, fail_times=1)

        assertContains(as_alice.get(url("model_list")), f'href="{url("api_key")}"')

    def test_it_rejects_post(self, as_alice):
        assert as_alice.post(url("model_list")).status_code == 405

    def test_the_filters_are_the_forms_fields(self, as_alice, sandbox):
        root = fine_tuned(sandbox)["root"]

        response = as_alice.get(url("model_list"), {"root": root, "archived": "yes"})

        assertContains(response, '<select name="root" id="id_root">')
        assertContains(response, f'<option value="{root}" selected>{root}</option>', html=True)
        assertContains(response, '<option value="yes" selected>Archived</option>', html=True)
        assertContains(response, '<option value="completion_fim">fill-in-the-middle</option>')
        assertContains(response, '<label for="id_q">Search</label>')

    def test_the_bulk_form_carries_the_filters_as_they_were_given(self, as_alice, sandbox):
        query = {"q": 'a"<b>', "type": "fine-tuned", "sort": "name", "page": "1"}

        response = as_alice.get(f"{url('model_list')}?{urlencode(query)}&q=sql")
        bulk_form = response.content.decode().split('id="bulk-form"', 1)[1].split("</form>")[0]
        carried = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', bulk_form)
        assert [name for name, _ in carried[:2]] == ["csrfmiddlewaretoken", "back"]

        # What each visible field's value renders: the last value given, escaped, or "".
        assert carried[2:] == [
            ("q", "sql"),
            ("type", "fine-tuned"),
            ("archived", ""),
            ("root", ""),
            ("capability", ""),
            ("sort", "name"),
        ]
        # An invalid sort falls back to the default, and is carried along as given.
        hostile = as_alice.get(url("model_list"), {"sort": 'a"<b>'}).content.decode()
        assert '<input type="hidden" name="sort" value="a&quot;&lt;b&gt;">' in hostile

    def test_sort_links_keep_the_filters_and_toggle(self, as_alice):
        response = as_alice.get(url("model_list"), {"q": "sql", "sort": "name", "page": "1"})

        assertContains(response, 'href="?q=sql&amp;sort=-name">Name and id ↑</a>')
        assertContains(response, 'href="?q=sql&amp;sort=-created">Created</a>')

    def test_the_table_is_a_boosted_region(self, as_alice, sandbox):
        boosted = {**HTMX, "HX-Boosted": "true"}

        region = as_alice.get(url("model_list"), {"page": 1}, headers=boosted | IN_TABLE)
        whole = as_alice.get(url("model_list"), headers=boosted)

        assertTemplateUsed(region, "models_admin/_model_table.html")
        assertNotContains(region, "<html")
        assertContains(whole, "<html")


class TestModelDetail:
    def test_it_shows_every_field(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.get(url("model_detail", ft["id"]))

        assertTemplateUsed(response, "models_admin/model_detail.html")
        for value in (ft["id"], ft["job"], ft["root"], ft["owned_by"], "max_context_length"):
            assertContains(response, value)
        assertContains(response, f'data-copy="{ft["id"]}"')
        assertContains(response, f'data-copy="{ft["job"]}"')
        assert len(calls(sandbox)) == 1

    def test_a_deprecated_model_links_its_replacement(self, as_alice, sandbox):
        deprecated = next(
            c for c in workspace(sandbox).models.values() if c.get("deprecation_replacement_model")
        )

        response = as_alice.get(url("model_detail", deprecated["id"]))

        assertContains(response, "Deprecated")
        assertContains(response, url("model_detail", deprecated["deprecation_replacement_model"]))

    def test_base_models_say_why_they_cannot_be_changed(self, as_alice, sandbox):
        response = as_alice.get(url("model_detail", base_card(sandbox)["id"]))

        assertContains(response, "Base models belong to Mistral")
        assertNotContains(response, "Archive</button>")

    def test_upstream_names_render_as_text(self, as_alice, sandbox):
        ft = change(sandbox, fine_tuned(sandbox), name="<img src=x onerror=alert(1)>")

        response = as_alice.get(url("model_detail", ft["id"]))

        assertContains(response, "&lt;img src=x onerror=alert(1)&gt;")
        assertNotContains(response, "<img src=x")

    def test_a_gone_model_is_a_readable_404(self, as_alice):
        response = as_alice.get(
            url("model_detail", "ft:open-mistral-7b:00000000:20240101:00000000")
        )

        assert response.status_code == 404
        assertContains(response, "does not exist", status_code=404)

    def test_a_timeout_is_a_message(self, as_alice, sandbox):
        sandbox.state.faults.set(hang_s=3, hang_times=10)

        response = as_alice.get(url("model_detail", fine_tuned(sandbox)["id"]))

        assertContains(response, "did not answer in time")

    @pytest.mark.parametrize("bad", ["a%2Fb", "..", "x%3Fy", "%2E%2E", "a%23b"])
    def test_unsafe_ids_never_reach_a_view(self, as_alice, sandbox, bad):
        response = as_alice.get(f"/models/{bad}/")

        assert response.status_code == 404
        assert calls(sandbox) == []

    def test_cancel_gets_the_name_and_description_alone(self, as_alice, sandbox):
        response = as_alice.get(url("model_detail", fine_tuned(sandbox)["id"]), headers=IN_FIELDS)

        assertTemplateUsed(response, "models_admin/_model_fields.html")
        assertTemplateNotUsed(response, "models_admin/_model_detail.html")
        assertContains(response, ">Edit</a>")

    def test_no_key_leads_to_the_key_form(self, as_charlie, sandbox):
        response = as_charlie.get(url("model_detail", "mistral-small-latest"))

        assert response.status_code == 302
        assert response["Location"].startswith(url("api_key"))


class TestModelEdit:
    def test_the_form_is_filled_from_a_fresh_retrieve(self, as_alice, sandbox):
        ft = change(sandbox, fine_tuned(sandbox), name="changed-just-now")

        response = as_alice.get(url("model_edit", ft["id"]), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_model_fields.html")
        assertContains(response, 'value="changed-just-now"')
        assert [r.method for r in calls(sandbox)] == ["GET"]

    def _post(self, client, ft, headers=None, **data):
        payload = {
            "name": ft["name"] or "",
            "description": ft["description"] or "",
            "expected": expected(ft),
        }
        payload.update(data)
        return client.post(url("model_edit", ft["id"]), payload, headers=headers or {})

    def test_it_renames_in_place(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = self._post(
            as_alice, ft, IN_FIELDS, name="support-triage-v4", description="New\ndata"
        )

        assertTemplateUsed(response, "models_admin/_model_detail.html")
        assertContains(response, "support-triage-v4")
        assert response["HX-Retarget"] == "#model-detail"
        patch = calls(sandbox, "PATCH")[-1]
        assert patch.json == {"name": "support-triage-v4", "description": "New\ndata"}
        assert workspace(sandbox).get(ft["id"])["name"] == "support-triage-v4"

    def test_it_sends_only_what_changed(self, as_alice, sandbox):
        ft = change(sandbox, fine_tuned(sandbox), description="keep me")

        self._post(as_alice, ft, IN_FIELDS, name="only-the-name")

        assert calls(sandbox, "PATCH")[-1].json == {"name": "only-the-name"}

    def test_a_change_costs_two_upstream_calls(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        self._post(as_alice, ft, IN_FIELDS, name="two-calls")

        assert [r.method for r in calls(sandbox)] == ["GET", "PATCH"]

    def test_without_javascript_it_redirects(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = self._post(as_alice, ft, name="plain-post")

        assert response.status_code == 302
        assert response["Location"] == url("model_detail", ft["id"])

    def test_form_errors_come_back_with_the_form(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = self._post(as_alice, ft, IN_FIELDS, name="x" * 129)

        assert response.status_code == 200
        assertContains(response, "at most 128 characters")
        assert calls(sandbox, "PATCH") == []

    def test_control_characters_are_refused(self, as_alice, sandbox):
        response = self._post(as_alice, fine_tuned(sandbox), IN_FIELDS, name="bad\x07name")

        assertContains(response, "control characters")

    def test_an_upstream_422_becomes_a_field_error(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        body = {
            "detail": [
                {
                    "type": "value_error",
                    "loc": ["body", "name"],
                    "msg": "Name already used by another model",
                }
            ]
        }
        sandbox.state.faults.set(fail_status=422, fail_times=1, fail_body=body, match="PATCH")

        response = self._post(as_alice, ft, IN_FIELDS, name="taken")

        assertContains(response, "Name already used by another model")
        assert response.context["form"].errors["name"] == ["Name already used by another model"]

    def test_a_change_made_meanwhile_is_not_overwritten(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        seen = expected(ft)
        change(sandbox, ft, name="renamed-by-someone-else")

        response = as_alice.post(
            url("model_edit", ft["id"]),
            {"name": "mine", "description": "", "expected": seen},
            headers=IN_FIELDS,
        )

        assertTemplateUsed(response, "models_admin/_model_fields.html")
        assertNotContains(response, "<html")
        assertContains(response, "Someone changed this model")
        assertContains(response, 'value="renamed-by-someone-else"')
        assert calls(sandbox, "PATCH") == []

    def test_it_needs_a_key(self, as_charlie, sandbox):
        response = as_charlie.post(
            url("model_edit", "ft:a:b:c:d"),
            {"name": "x", "description": "", "expected": '{"name": null, "description": null}'},
            headers=HTMX,
        )

        assert response["HX-Redirect"].startswith(url("api_key"))

    def test_it_rejects_put(self, as_alice):
        assert as_alice.put(url("model_edit", "ft:a:b:c:d")).status_code == 405

    def test_base_models_cannot_be_renamed(self, as_alice, sandbox):
        base = base_card(sandbox)

        response = as_alice.post(
            url("model_edit", base["id"]),
            {"name": "mine", "description": "", "expected": expected(base)},
            headers=HTMX,
        )

        assert response["HX-Reswap"] == "none"
        assertContains(response, "Only fine-tuned models can be changed")
        assert calls(sandbox, "PATCH") == []


class TestArchive:
    def test_archive_from_a_row_swaps_the_row(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_model_row.html")
        assertContains(response, "Archived")
        assertContains(response, "Unarchive")
        assert workspace(sandbox).get(ft["id"])["archived"] is True
        assert [r.method for r in calls(sandbox)] == ["GET", "POST"]

    def test_each_form_posts_to_the_url_of_its_answer(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        listed = as_alice.get(url("model_list"), {"q": ft["id"]})
        detail = as_alice.get(url("model_detail", ft["id"]))

        assertContains(listed, f'hx-post="{url("model_row_archive", ft["id"])}"')
        assertContains(detail, f'hx-post="{url("model_archive", ft["id"])}"')
        for page in (listed, detail):
            assertNotContains(page, 'name="view"')

    def test_unarchive_from_the_row_swaps_the_row(self, as_alice, sandbox):
        ft = fine_tuned(sandbox, archived=True)

        response = as_alice.post(url("model_row_unarchive", ft["id"]), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_model_row.html")
        assertContains(response, ">Archive</button>")
        assert workspace(sandbox).get(ft["id"])["archived"] is False

    def test_unarchive_from_the_detail_page_swaps_the_detail(self, as_alice, sandbox):
        ft = fine_tuned(sandbox, archived=True)

        response = as_alice.post(url("model_unarchive", ft["id"]), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_model_detail.html")
        assert workspace(sandbox).get(ft["id"])["archived"] is False
        assertContains(response, "Unarchived")  # the success alert, out of band

    def test_without_javascript_it_redirects_back(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(url("model_archive", ft["id"]), {"next": "/models/?archived=no"})

        assert response.status_code == 302
        assert response["Location"] == "/models/?archived=no"

    def test_an_offsite_next_is_ignored(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(url("model_archive", ft["id"]), {"next": "https://evil.example/"})

        assert response["Location"] == url("model_detail", ft["id"])

    def test_base_models_are_refused_with_a_reason(self, as_alice, sandbox):
        response = as_alice.post(url("model_row_archive", base_card(sandbox)["id"]), headers=HTMX)

        assert response["HX-Reswap"] == "none"
        assertContains(response, "Only fine-tuned models can be changed")
        assert calls(sandbox, "POST") == []

    def test_a_gone_model_leaves_the_list_with_a_note(self, as_alice, sandbox):
        response = as_alice.post(
            url("model_row_archive", "ft:open-mistral-7b:00000000:20240101:00000000"),
            headers=HTMX,
        )

        assert "HX-Reswap" not in response
        assert response.content.startswith(
            b'\n<div id="alerts"'
        ) or response.content.lstrip().startswith(b'<div id="alerts"')
        assertContains(response, "no longer exists on Mistral")

    @pytest.mark.parametrize(
        ("fault", "says"),
        [
            # Every call hangs, the read-back too: the outcome stays unknown.
            ({"hang_s": 3, "hang_times": 10}, "did not answer in time"),
            ({"fail_status": 503, "fail_times": 10, "match": "POST"}, "HTTP 503"),
            (
                {"fail_status": 429, "fail_times": 10, "retry_after": "12", "match": "POST"},
                "Try again in 12 s",
            ),
            ({"fail_status": 401, "fail_times": 1}, "Mistral rejected your API key"),
            (
                {"malformed_times": 1, "malformed_kind": "wrong_shape", "match": "POST"},
                "could not read",
            ),
        ],
    )
    def test_upstream_failures_are_alerts_and_nothing_is_swapped(
        self, as_alice, sandbox, fault, says
    ):
        ft = fine_tuned(sandbox)
        sandbox.state.faults.set(**fault)

        response = as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)

        assert response.status_code == 200
        assert response["HX-Reswap"] == "none"
        assertContains(response, says)
        assertContains(response, 'hx-swap-oob="true"')

    def test_it_needs_a_key(self, as_charlie):
        response = as_charlie.post(url("model_archive", "ft:a:b:c:d"))

        assert response.status_code == 302
        assert response["Location"].startswith(url("api_key"))

    def test_it_rejects_get(self, as_alice):
        assert as_alice.get(url("model_archive", "ft:a:b:c:d")).status_code == 405
        assert as_alice.get(url("model_unarchive", "ft:a:b:c:d")).status_code == 405


class TestDelete:
    def test_the_dialog_says_what_will_be_lost(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.get(url("model_delete", ft["id"]), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_delete_dialog.html")
        assertContains(response, "for good")
        assertContains(response, "Archive instead")
        assertContains(response, ft["job"])

    def test_without_javascript_it_is_a_page(self, as_alice, sandbox):
        response = as_alice.get(url("model_delete", fine_tuned(sandbox)["id"]))

        assertTemplateUsed(response, "models_admin/model_delete.html")

    @pytest.mark.parametrize("name", ["model_delete", "model_row_delete"])
    def test_the_dialog_posts_back_to_its_own_url(self, as_alice, sandbox, name):
        ft = fine_tuned(sandbox)

        response = as_alice.get(url(name, ft["id"]), headers=HTMX)

        assertContains(response, f'hx-post="{url(name, ft["id"])}"')
        assertNotContains(response, 'name="view"')

    def test_archive_instead_posts_plainly_back_to_the_page_behind(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        behind = {**HTMX, "HX-Current-URL": "http://testserver/models/?q=sql"}

        dialog = as_alice.get(url("model_row_delete", ft["id"]), headers=behind)
        response = as_alice.post(url("model_archive", ft["id"]), {"next": "/models/?q=sql"})

        assertContains(dialog, f'<form method="post" action="{url("model_archive", ft["id"])}">')
        assertContains(dialog, '<input type="hidden" name="next" value="/models/?q=sql">')
        assert response["Location"] == "/models/?q=sql"
        assert workspace(sandbox).get(ft["id"])["archived"] is True

    def test_it_deletes_after_confirmation(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(
            url("model_row_delete", ft["id"]),
            {"confirm_id": ft["id"], "reason": "obsolete"},
            headers=HTMX,
        )

        assert response.status_code == 200
        assert '"modelDeleted"' in response["HX-Trigger"]
        assert ft["id"] not in workspace(sandbox).models
        assertContains(response, f"Deleted {ft['id']}")

    def test_the_id_must_be_typed_exactly(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(
            url("model_delete", ft["id"]),
            {"confirm_id": ft["id"].upper(), "reason": "obsolete"},
            headers=HTMX,
        )

        assertContains(response, "Type it exactly")
        assert ft["id"] in workspace(sandbox).models
        assert calls(sandbox, "DELETE") == []

    def test_a_reason_is_required(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(
            url("model_delete", ft["id"]), {"confirm_id": ft["id"], "reason": ""}, headers=HTMX
        )

        assertContains(response, "This field is required")
        assert ft["id"] in workspace(sandbox).models

    def test_on_failure_the_dialog_stays_and_says_why(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=503, fail_times=10, match="DELETE")

        response = as_alice.post(
            url("model_delete", ft["id"]),
            {"confirm_id": ft["id"], "reason": "obsolete"},
            headers=HTMX,
        )

        assertTemplateUsed(response, "models_admin/_delete_dialog.html")
        assertContains(response, "HTTP 503")
        assert "HX-Trigger" not in response
        assert ft["id"] in workspace(sandbox).models

    def test_an_already_gone_model_is_removed_with_a_note(self, as_alice, sandbox):
        gone = "ft:open-mistral-7b:00000000:20240101:00000000"

        response = as_alice.post(
            url("model_row_delete", gone), {"confirm_id": gone, "reason": "cleanup"}, headers=HTMX
        )

        assert '"modelDeleted"' in response["HX-Trigger"]
        assertContains(response, "already gone")

    def test_from_the_detail_page_it_goes_back_to_the_list(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(
            url("model_delete", ft["id"]),
            {"confirm_id": ft["id"], "reason": "x" * 5},
            headers=HTMX,
        )

        assert response["HX-Redirect"] == url("model_list")

    def test_without_javascript_a_failure_keeps_the_page_and_says_why(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=503, fail_times=10, match="DELETE")

        response = as_alice.post(
            url("model_delete", ft["id"]), {"confirm_id": ft["id"], "reason": "obsolete"}
        )

        assertTemplateUsed(response, "models_admin/model_delete.html")
        assertContains(response, "HTTP 503")
        assert ft["id"] in workspace(sandbox).models

    def test_without_javascript_it_redirects_to_the_list(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = as_alice.post(
            url("model_delete", ft["id"]), {"confirm_id": ft["id"], "reason": "obsolete"}
        )

        assert response.status_code == 302
        assert response["Location"] == url("model_list")

    def test_base_models_cannot_be_deleted(self, as_alice, sandbox):
        base = base_card(sandbox)

        response = as_alice.post(
            url("model_delete", base["id"]),
            {"confirm_id": base["id"], "reason": "tidy"},
            headers=HTMX,
        )

        assertContains(response, "Only fine-tuned models can be changed")
        assert calls(sandbox, "DELETE") == []

    def test_it_needs_login(self, client, db):
        response = client.post(url("model_delete", "ft:a:b:c:d"))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


class TestSafety:
    def test_posts_need_the_csrf_token(self, alice, sandbox):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        client.force_login(alice)

        response = client.post(url("model_archive", fine_tuned(sandbox)["id"]))

        assert response.status_code == 403
        assert calls(sandbox) == []

    def test_the_page_sends_the_token_with_htmx_requests(self, as_alice):
        assertContains(as_alice.get(url("model_list")), 'hx-headers=\'{"x-csrftoken": "')


class TestRenameFromTheList:
    def test_the_row_becomes_a_form_and_saving_returns_the_row(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        form = as_alice.get(url("model_row_rename", ft["id"]), headers=HTMX)
        assertTemplateUsed(form, "models_admin/_model_row_rename.html")
        assertContains(form, f'<tr data-model-id="{ft["id"]}" class="renaming">')
        assertContains(form, "autofocus")

        saved = as_alice.post(
            url("model_row_rename", ft["id"]),
            {"name": "renamed-from-the-list", "expected": expected(ft)},
            headers=HTMX,
        )

        assertTemplateUsed(saved, "models_admin/_model_row.html")
        assertContains(saved, "Rename renamed-from-the-list")
        assertContains(saved, "Renamed to renamed-from-the-list.")
        card = workspace(sandbox).get(ft["id"])
        assert card["name"] == "renamed-from-the-list"
        assert card["description"] == ft["description"]  # the description is untouched

    def test_a_change_made_meanwhile_is_never_overwritten(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        seen = expected(ft)
        change(sandbox, ft, description="changed elsewhere")

        response = as_alice.post(
            url("model_row_rename", ft["id"]),
            {"name": "mine", "expected": seen},
            headers=HTMX,
        )

        assertTemplateUsed(response, "models_admin/_model_row_rename.html")
        assert workspace(sandbox).get(ft["id"])["name"] == ft["name"]
        assert workspace(sandbox).get(ft["id"])["description"] == "changed elsewhere"
        assert not calls(sandbox, "PATCH")

    def test_cancel_fetches_the_row(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        response = as_alice.get(url("model_row", ft["id"]), headers=HTMX)
        assertTemplateUsed(response, "models_admin/_model_row.html")

    def test_an_auditor_can_not_rename(self, as_carol, sandbox):
        ft = fine_tuned(sandbox, CAROL_KEY)
        response = as_carol.post(
            url("model_row_rename", ft["id"]), {"name": "x", "expected": expected(ft)}
        )
        assert response.status_code == 403
        assert workspace(sandbox, CAROL_KEY).get(ft["id"])["name"] == ft["name"]

    def test_without_javascript_the_form_is_the_edit_page(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        response = as_alice.get(url("model_row_rename", ft["id"]))
        assert response.status_code == 302
        assert response["Location"] == url("model_edit", ft["id"])


class TestIssue15Markup:
    """What the accessibility walk found, in the markup (issue 15)."""

    def test_the_caption_reads_in_words(self, as_alice, sandbox):
        response = as_alice.get(url("model_list"), {"sort": "-name"})
        assertContains(response, "Models, name z–a</caption>")
        assertNotContains(response, "sorted by -")

    def test_a_mistyped_id_keeps_the_summary(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        response = as_alice.post(
            url("model_row_delete", ft["id"]),
            {"confirm_id": "ft:wrong", "reason": "obsolete"},
            headers=HTMX,
        )
        assertContains(response, "That is not this model")
        assertContains(response, f'<code class="target">{ft["id"]}</code>')
        assertContains(response, "Archive instead")

    def test_the_delete_message_names_the_model(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        response = as_alice.post(
            url("model_row_delete", ft["id"]),
            {"confirm_id": ft["id"], "reason": "obsolete", "name": ft["name"]},
            headers=HTMX,
        )
        assertContains(response, f"Deleted {ft['name']}.")

    def test_an_auditor_is_told_why_there_are_no_actions(self, as_carol, sandbox):
        ft = fine_tuned(sandbox, CAROL_KEY)
        response = as_carol.get(url("model_detail", ft["id"]))
        assertContains(response, "Your role can only look at models")

    def test_copy_id_is_named_by_its_label(self, as_alice, sandbox):
        response = as_alice.get(url("model_detail", fine_tuned(sandbox)["id"]))
        assertNotContains(response, 'aria-label="Copy the model id"')

    def test_team_rows_name_their_member_and_no_self_deactivation(self, as_alice, bob, carol):
        response = as_alice.get(url("team"))
        assertContains(response, 'Change<span class="visually-hidden"> the role of bob</span>')
        assertContains(response, 'Deactivate<span class="visually-hidden"> carol</span>')
        assertNotContains(response, 'Deactivate<span class="visually-hidden"> alice</span>')
        assertContains(response, 'Set-password link<span class="visually-hidden"> for bob</span>')

    def test_the_bulk_job_page_has_a_heading(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        prepared = as_alice.post(
            url("bulk_prepare"),
            {"action": "archive", "ids": [ft["id"]], "back": "/models/?type=fine-tuned"},
        )
        assert prepared.status_code == 302
        assert "back=%2Fmodels%2F%3Ftype%3Dfine-tuned" in prepared["Location"]
        page = as_alice.get(prepared["Location"])
        assertContains(page, "<h1")
        assertContains(page, 'href="/models/?type=fine-tuned">Cancel</a>')

    def test_back_never_leaves_the_list(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        prepared = as_alice.post(
            url("bulk_prepare"),
            {"action": "archive", "ids": [ft["id"]], "back": "https://evil.example/models/"},
        )
        page = as_alice.get(prepared["Location"])
        assertContains(page, 'href="/models/">Cancel</a>')
