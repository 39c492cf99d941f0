"""What the inventory sync adds to the pages (issue 14): the audit log's Source filter,
outside deletions among the deleted models, search by name, each model's history, and
which key the list comes from."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.asserts import assertContains, assertNotContains

from models_admin import services
from models_admin.audit import Action, Actor, Kind
from models_admin.models import ApiCredential, AuditEntry
from tests.helpers import fine_tuned, fine_tuned_cards, url
from tests.test_sync import outside, rename, run_sync, upstream


class TestAuditLog:
    def test_the_source_filter(self, as_alice, alice, sandbox):
        run_sync()
        live = fine_tuned_cards(sandbox)
        rename(sandbox, live[0]["id"], "renamed-outside")
        services.model_archive(actor=Actor(user=alice), model_id=live[1]["id"])
        run_sync()

        response = as_alice.get(url("audit_list"), {"source": "outside"})
        assertContains(response, live[0]["id"])
        assertContains(response, "outside the dashboard")
        assertNotContains(response, live[1]["id"])
        response = as_alice.get(url("audit_list"), {"source": "dashboard"})
        assertContains(response, live[1]["id"])
        assertNotContains(response, live[0]["id"])
        response = as_alice.get(url("audit_list"), {"source": "elsewhere"})  # ignored
        assertContains(response, live[0]["id"])
        assertContains(response, live[1]["id"])

    def test_outside_deletions_are_among_the_deleted_models(self, as_alice, sandbox):
        run_sync()
        card = fine_tuned(sandbox)
        upstream(sandbox, "DELETE", f"/v1/models/{card['id']}")
        run_sync()
        response = as_alice.get(url("audit_deleted"))
        assertContains(response, card["id"])
        assertContains(response, "Deleted <strong>outside the dashboard</strong>")
        assertContains(response, "seen by the inventory sync with key")
        assertContains(response, "Last known card")

    def test_every_model_entry_carries_the_name_and_search_finds_it(self, as_alice, alice, sandbox):
        run_sync()
        card = fine_tuned(sandbox)
        # A cold cache: the attempt knows no card, so it takes the name the sync saw.
        services.model_archive(actor=Actor(user=alice), model_id=card["id"])
        attempt = AuditEntry.objects.get(kind=Kind.ATTEMPT)
        assert attempt.target_name == card["name"]
        response = as_alice.get(url("audit_list"), {"q": card["name"][3:-2].upper()})
        assertContains(response, url("audit_detail", attempt.seq))

    def test_search_finds_an_attempt_by_the_name_its_outcome_carries(
        self, as_alice, alice, sandbox
    ):
        card = fine_tuned(sandbox)
        services.model_update(
            actor=Actor(user=alice),
            model_id=card["id"],
            name="a-brand-new-name",
            description=card["description"],
            expected_name=card["name"],
            expected_description=card["description"],
        )
        attempt = AuditEntry.objects.get(kind=Kind.ATTEMPT)
        response = as_alice.get(url("audit_list"), {"q": "brand-new"})
        assertContains(response, url("audit_detail", attempt.seq))
        response = as_alice.get(url("audit_list"), {"q": "no-such-name"})
        assertNotContains(response, url("audit_detail", attempt.seq))


class TestModelHistory:
    def test_dashboard_and_outside_entries_newest_first(self, as_alice, alice, sandbox):
        run_sync()
        card = fine_tuned(sandbox)
        services.model_archive(actor=Actor(user=alice), model_id=card["id"])
        rename(sandbox, card["id"], "renamed-outside")
        run_sync()
        (seen,) = outside()
        attempt = AuditEntry.objects.get(kind=Kind.ATTEMPT)

        response = as_alice.get(url("model_detail", card["id"]))
        assertContains(response, 'id="model-history"')
        html = response.content.decode()
        newest, older = url("audit_detail", seen.seq), url("audit_detail", attempt.seq)
        assert html.index(newest) < html.index(older)
        assertContains(response, "seen by the inventory sync with")
        assertContains(response, "renamed-outside")
        assertContains(response, f"?target={card['id'].replace(':', '%3A')}")

    def test_a_constant_number_of_queries(self, as_alice, alice, sandbox):
        card = fine_tuned(sandbox)
        path = url("model_detail", card["id"])
        as_alice.get(path)
        services.model_archive(actor=Actor(user=alice), model_id=card["id"])
        with CaptureQueriesContext(connection) as few:
            as_alice.get(path)
        actor = Actor(user=alice)
        for _ in range(5):
            services.model_unarchive(actor=actor, model_id=card["id"])
            services.model_archive(actor=actor, model_id=card["id"])
        with CaptureQueriesContext(connection) as many:
            response = as_alice.get(path)
        assert response.content.decode().count('class="badge outcome-succeeded"') == 11
        assert len(many) == len(few)

    def test_members_see_no_history(self, as_bob, sandbox):
        from tests.conftest import BOB_KEY

        response = as_bob.get(url("model_detail", fine_tuned(sandbox, BOB_KEY)["id"]))
        assert response.status_code == 200
        assertNotContains(response, 'id="model-history"')

    def test_a_model_deleted_outside_shows_its_history(self, as_alice, sandbox):
        run_sync()
        card = fine_tuned(sandbox)
        upstream(sandbox, "DELETE", f"/v1/models/{card['id']}")
        run_sync()
        response = as_alice.get(url("model_detail", card["id"]))
        assert response.status_code == 404
        assertContains(response, 'id="model-history"', status_code=404)
        assertContains(response, Action.MODEL_DELETE.label, status_code=404)

    def test_nothing_recorded_yet(self, as_alice, sandbox):
        response = as_alice.get(url("model_detail", fine_tuned(sandbox)["id"]))
        assertContains(response, "Nothing recorded for this model yet")


class TestWhichKey:
    def test_the_list_says_which_key_and_when(self, as_alice, alice, sandbox):
        masked = ApiCredential.objects.get(user=alice).key_masked
        response = as_alice.get(url("model_list"))
        assertContains(response, 'id="list-source"')
        assertContains(response, f"<code>{masked}</code>", html=False)
        assertContains(response, "listed by Mistral at")
