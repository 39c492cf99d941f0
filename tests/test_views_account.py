"""Signing in and out, and the API key page, driven through Django's test client
against the sandbox over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import (
    assertContains,
    assertNotContains,
    assertRedirects,
    assertTemplateUsed,
)

from models_admin import roles
from models_admin.models import ApiCredential
from models_admin.sandbox import fingerprint
from tests.conftest import ALICE_KEY, make_user
from tests.helpers import HTMX, url

NEW_KEY = "sandbox-charlie-fresh-key-4d9b27e1"
SOME_MODEL = "ft:open-mistral-7b:0a1b2c3d:20250101:deadbeef"


def calls(sandbox) -> list:
    return list(sandbox.state.requests)


def login_target(response) -> tuple[int, str, dict[str, list[str]]]:
    """The status, and where a redirect to the login page would send the user back to."""
    location = urlsplit(response.get("Location", ""))
    return response.status_code, location.path, parse_qs(location.query)


def fine_tuned_id(sandbox, key: str) -> str:
    return next(
        c["id"] for c in sandbox.state.workspace(key).models.values() if c["type"] == "fine-tuned"
    )


@pytest.fixture
def fast_timeout(settings):
    """One short attempt per call, so a hanging sandbox costs a fifth of a second."""
    settings.MISTRAL_API_TIMEOUT = 0.2
    settings.MISTRAL_API_MAX_RETRIES = 0


@pytest.fixture
def retired_encryption_key(settings):
    """Stored keys were encrypted with keys that are no longer configured."""
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]


# Every page of the app, with the methods it answers; anonymous users never reach one.
APP_URLS = [
    ("GET", "/"),
    ("GET", url("model_list")),
    ("GET", url("model_detail", SOME_MODEL)),
    ("GET", url("model_edit", SOME_MODEL)),
    ("POST", url("model_edit", SOME_MODEL)),
    ("POST", url("model_archive", SOME_MODEL)),
    ("POST", url("model_unarchive", SOME_MODEL)),
    ("GET", url("model_delete", SOME_MODEL)),
    ("POST", url("model_delete", SOME_MODEL)),
    ("GET", url("api_key")),
    ("POST", url("api_key")),
    ("POST", url("api_key_remove")),
    ("GET", url("team")),
    ("POST", url("team_add")),
    ("POST", url("team_role", 1)),
    ("POST", url("team_active", 1)),
    ("POST", url("team_password_link", 1)),
]


class TestSignIn:
    def test_the_login_page_works(self, client, db):
        response = client.get(reverse("login"))

        assertTemplateUsed(response, "registration/login.html")
        assertContains(response, 'name="username"')
        assertContains(response, 'name="password"')

    def test_it_signs_in(self, client, alice):
        response = client.post(
            reverse("login"), {"username": "alice", "password": "alice-password"}
        )

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)
        assert client.get(url("api_key")).status_code == 200

    def test_it_goes_back_to_next(self, client, alice):
        response = client.post(
            reverse("login"),
            {"username": "alice", "password": "alice-password", "next": url("api_key")},
        )

        assertRedirects(response, url("api_key"), fetch_redirect_response=False)

    def test_it_ignores_a_next_on_another_site(self, client, alice):
        response = client.post(
            reverse("login"),
            {"username": "alice", "password": "alice-password", "next": "https://evil.example/"},
        )

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)

    def test_a_wrong_password_is_an_error(self, client, alice):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})

        assert response.status_code == 200
        assertContains(response, "Please enter a correct username and password")
        assert "_auth_user_id" not in client.session

    def test_an_unknown_user_is_the_same_error(self, client, db):
        response = client.post(reverse("login"), {"username": "nobody", "password": "whatever"})

        assertContains(response, "Please enter a correct username and password")

    def test_a_signed_in_user_skips_the_form(self, as_alice):
        response = as_alice.get(reverse("login"))

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)


class TestSignOut:
    def test_it_ends_the_session(self, as_alice):
        response = as_alice.post(reverse("logout"))

        assertRedirects(response, reverse("login"), fetch_redirect_response=False)
        assert "_auth_user_id" not in as_alice.session
        assert as_alice.get(url("model_list")).status_code == 302

    def test_it_rejects_get(self, as_alice):
        response = as_alice.get(reverse("logout"))

        assert response.status_code == 405
        assert as_alice.get(url("api_key")).status_code == 200

    def test_every_page_offers_it(self, as_alice):
        response = as_alice.get(url("api_key"))

        assertContains(response, f'action="{reverse("logout")}"')


class TestLoginRequired:
    def test_every_page_redirects_anonymous_users_to_login(self, client, db):
        targets = {
            (method, path): login_target(getattr(client, method.lower())(path))
            for method, path in APP_URLS
        }

        assert targets == {
            (method, path): (302, reverse("login"), {"next": [path]}) for method, path in APP_URLS
        }

    def test_the_admin_asks_for_its_own_login(self, client, db):
        response = client.get("/admin/")

        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    @pytest.mark.parametrize("path", ["/healthz", "/readyz"])
    def test_health_checks_answer_without_login(self, client, db, path):
        response = client.get(path)

        assert response.status_code == 200
        assert response.json()["status"] == "ok"


class TestApiKeyPage:
    def test_it_offers_to_add_a_key(self, as_charlie):
        response = as_charlie.get(url("api_key"))

        assertTemplateUsed(response, "models_admin/api_key.html")
        assertContains(response, "Add your key")
        assertContains(response, 'type="password"')
        assertNotContains(response, "Saved key")
        assertNotContains(response, "save_unverified")

    def test_it_shows_the_saved_key_masked(self, as_alice):
        credential = ApiCredential.objects.get(user__username="alice")

        response = as_alice.get(url("api_key"))

        assertContains(response, credential.key_masked)
        assertNotContains(response, ALICE_KEY)
        assertNotContains(response, ALICE_KEY[4:-4])
        assertContains(response, "Replace it")

    def test_it_shows_when_the_key_was_added_changed_checked_and_used(self, as_alice):
        ApiCredential.objects.filter(user__username="alice").update(
            created_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
            updated_at=datetime(2026, 2, 3, 4, 5, tzinfo=UTC),
            verified_at=datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
            last_used_at=datetime(2026, 4, 5, 6, 7, tzinfo=UTC),
        )

        response = as_alice.get(url("api_key"))

        for shown in (
            "2026-01-02 03:04",
            "2026-02-03 04:05",
            "2026-03-04 05:06",
            "2026-04-05 06:07",
        ):
            assertContains(response, shown)

    def test_it_says_when_a_key_was_never_checked_or_used(self, as_alice):
        ApiCredential.objects.filter(user__username="alice").update(
            verified_at=None, last_used_at=None
        )

        response = as_alice.get(url("api_key"))

        assertContains(response, "never (saved without checking)")
        assertContains(response, "not yet")

    def test_it_rejects_other_methods(self, as_alice):
        assert as_alice.put(url("api_key")).status_code == 405


class TestApiKeySave:
    def test_it_checks_and_saves_a_new_key(self, as_charlie, charlie, sandbox):
        response = as_charlie.post(url("api_key"), {"api_key": NEW_KEY})

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)
        credential = ApiCredential.objects.get(user=charlie)
        assert credential.get_key() == NEW_KEY
        assert NEW_KEY not in credential.key_encrypted
        assert credential.key_masked == "sand…27e1"
        assert credential.verified_at is not None
        assert [(r.method, r.path, r.key_fingerprint) for r in calls(sandbox)] == [
            ("GET", "/v1/models", fingerprint(NEW_KEY))
        ]

    def test_the_saved_key_is_never_shown_again(self, as_charlie, sandbox):
        response = as_charlie.post(
            url("api_key"), {"api_key": NEW_KEY, "next": url("api_key")}, follow=True
        )

        assertContains(response, "API key saved.")
        assertContains(response, "sand…27e1")
        assertNotContains(response, NEW_KEY)

    def test_the_check_primes_the_model_list(self, as_charlie, sandbox):
        as_charlie.post(url("api_key"), {"api_key": NEW_KEY})

        response = as_charlie.get(url("model_list"))

        assert response.context["inventory"].rows
        assert len(calls(sandbox)) == 1

    def test_it_goes_back_to_next(self, as_charlie, sandbox):
        back = url("model_detail", SOME_MODEL)

        response = as_charlie.post(url("api_key"), {"api_key": NEW_KEY, "next": back})

        assertRedirects(response, back, fetch_redirect_response=False)

    def test_it_ignores_a_next_on_another_site(self, as_charlie, sandbox):
        response = as_charlie.post(
            url("api_key"), {"api_key": NEW_KEY, "next": "https://evil.example/"}
        )

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)

    def test_surrounding_whitespace_is_trimmed(self, as_charlie, charlie, sandbox):
        as_charlie.post(url("api_key"), {"api_key": f"  {NEW_KEY}\n"})

        assert ApiCredential.objects.get(user=charlie).get_key() == NEW_KEY

    def test_it_replaces_a_key(self, as_alice, alice, sandbox):
        before = ApiCredential.objects.get(user=alice)

        as_alice.post(url("api_key"), {"api_key": NEW_KEY})

        after = ApiCredential.objects.get(user=alice)
        assert after.pk == before.pk
        assert after.get_key() == NEW_KEY
        assert after.created_at == before.created_at
        assert after.updated_at > before.updated_at
        assert after.key_masked != before.key_masked
        as_alice.get(url("model_list"), {"refresh": "1"})
        assert calls(sandbox)[-1].key_fingerprint == fingerprint(NEW_KEY)

    def test_an_htmx_save_redirects_the_page(self, as_charlie, sandbox):
        response = as_charlie.post(url("api_key"), {"api_key": NEW_KEY}, headers=HTMX)

        assert response.status_code == 200
        assert response["HX-Redirect"] == url("model_list")

    def test_a_rejected_key_is_not_stored(self, as_charlie, charlie, sandbox):
        response = as_charlie.post(url("api_key"), {"api_key": "not-a-sandbox-key-5e6f"})

        assert response.status_code == 200
        assertContains(response, "Mistral rejected this key")
        assertContains(response, "Nothing was saved.")
        assertNotContains(response, "not-a-sandbox-key-5e6f")
        assertNotContains(response, "save_unverified")
        assert not ApiCredential.objects.filter(user=charlie).exists()
        assert [r.path for r in calls(sandbox)] == ["/v1/models"]

    def test_a_rejected_replacement_keeps_the_old_key(self, as_alice, alice, sandbox):
        before = ApiCredential.objects.get(user=alice)

        response = as_alice.post(url("api_key"), {"api_key": "not-a-sandbox-key-5e6f"})

        assertContains(response, "Mistral rejected this key")
        after = ApiCredential.objects.get(user=alice)
        assert (after.key_encrypted, after.updated_at) == (before.key_encrypted, before.updated_at)
        assert after.get_key() == ALICE_KEY

    def test_a_rejected_key_comes_back_in_the_htmx_panel(self, as_charlie, sandbox):
        response = as_charlie.post(
            url("api_key"), {"api_key": "not-a-sandbox-key-5e6f"}, headers=HTMX
        )

        assertTemplateUsed(response, "models_admin/_api_key_panel.html")
        assertNotContains(response, "<html")
        assertContains(response, "Mistral rejected this key")

    @pytest.mark.parametrize(
        ("fault", "says"),
        [
            ({"fail_status": 503, "fail_times": 10}, "Mistral is having trouble"),
            ({"hang_s": 3, "hang_times": 10}, "did not answer in time"),
        ],
    )
    def test_an_unreachable_api_offers_to_save_without_checking(
        self, as_charlie, charlie, sandbox, fast_timeout, fault, says
    ):
        sandbox.state.faults.set(**fault)

        response = as_charlie.post(url("api_key"), {"api_key": NEW_KEY})

        assert response.status_code == 200
        assertContains(response, says)
        assertContains(response, "so it was not saved")
        assertContains(response, 'name="save_unverified"')
        assert not ApiCredential.objects.filter(user=charlie).exists()

    def test_save_without_checking_stores_it_unverified(self, as_charlie, charlie, sandbox):
        sandbox.state.faults.set(fail_status=503, fail_times=10)

        response = as_charlie.post(url("api_key"), {"api_key": NEW_KEY, "save_unverified": "on"})

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)
        credential = ApiCredential.objects.get(user=charlie)
        assert credential.get_key() == NEW_KEY
        assert credential.verified_at is None
        assert calls(sandbox) == []
        page = as_charlie.get(url("api_key"))
        assertContains(page, "never (saved without checking)")

    def test_a_checked_replacement_of_an_unverified_key_is_verified(
        self, as_charlie, charlie, sandbox
    ):
        as_charlie.post(url("api_key"), {"api_key": NEW_KEY, "save_unverified": "on"})

        as_charlie.post(url("api_key"), {"api_key": NEW_KEY})

        assert ApiCredential.objects.get(user=charlie).verified_at is not None

    @pytest.mark.parametrize(
        ("bad", "says"),
        [
            ("", "Enter your API key."),
            ("   \t ", "Enter your API key."),
            ("sandbox-has inner-space", "no spaces"),
            ("sandbox-nul\x00byte", "Null characters are not allowed."),
            ("sandbox-bell\x07char", "control characters"),
            ("sandbox-line\nbreak", "line breaks"),
            ("sandbox-del\x7fchar", "control characters"),
            ("sandbox-clé-ünïcode", "only has letters, digits and punctuation"),
            ("sandbox-" + "a" * 9992, "at most 200 characters"),
        ],
        ids=[
            "empty",
            "whitespace",
            "inner-space",
            "nul",
            "bell",
            "newline",
            "del",
            "non-ascii",
            "10000-chars",
        ],
    )
    def test_bad_input_is_a_form_error_and_nothing_is_stored(
        self, as_charlie, charlie, sandbox, bad, says
    ):
        response = as_charlie.post(url("api_key"), {"api_key": bad})

        assert response.status_code == 200
        assertContains(response, says)
        assert response.context["form"].errors["api_key"]
        assert not ApiCredential.objects.filter(user=charlie).exists()
        assert calls(sandbox) == []

    def test_bad_input_never_touches_a_stored_key(self, as_alice, alice, sandbox):
        before = ApiCredential.objects.get(user=alice).key_encrypted

        as_alice.post(url("api_key"), {"api_key": "sandbox-has inner-space"})

        assert ApiCredential.objects.get(user=alice).key_encrypted == before


class TestApiKeyRemove:
    def test_it_removes_the_key(self, as_alice, alice, sandbox):
        response = as_alice.post(url("api_key_remove"))

        assertRedirects(response, url("api_key"), fetch_redirect_response=False)
        assert not ApiCredential.objects.filter(user=alice).exists()
        assertContains(as_alice.get(url("model_list")), "Add your Mistral API key")
        assert calls(sandbox) == []

    def test_it_says_so(self, as_alice, sandbox):
        response = as_alice.post(url("api_key_remove"), follow=True)

        assertContains(response, "API key removed.")
        assertContains(response, "Add your key")

    def test_without_a_key_it_does_nothing(self, as_charlie, charlie):
        response = as_charlie.post(url("api_key_remove"))

        assert response.status_code == 302
        assert not ApiCredential.objects.filter(user=charlie).exists()

    def test_it_rejects_get(self, as_alice, alice):
        response = as_alice.get(url("api_key_remove"))

        assert response.status_code == 405
        assert ApiCredential.objects.filter(user=alice).exists()

    def test_it_removes_only_your_own_key(self, as_alice, alice, bob):
        as_alice.post(url("api_key_remove"))

        assert ApiCredential.objects.filter(user=bob).exists()


class TestNoKey:
    def test_a_model_page_leads_to_the_key_form(self, as_charlie, sandbox):
        detail = url("model_detail", "mistral-small-latest")

        response = as_charlie.get(detail, follow=True)

        assert response.redirect_chain == [(f"{url('api_key')}?next={detail}", 302)]
        assertTemplateUsed(response, "models_admin/api_key.html")
        assertContains(response, "Add your Mistral API key first.")
        assertContains(response, f'name="next" value="{detail}"')
        assert calls(sandbox) == []

    def test_the_edit_page_leads_there_too(self, as_charlie, sandbox):
        response = as_charlie.get(url("model_edit", SOME_MODEL))

        assert response.status_code == 302
        assert response["Location"].startswith(url("api_key"))

    def test_the_delete_page_leads_there_too(self, client, db, sandbox):
        client.force_login(make_user("dave", roles.Role.TEAM_ADMIN))

        response = client.get(url("model_delete", SOME_MODEL))

        assert response.status_code == 302
        assert response["Location"].startswith(url("api_key"))

    def test_the_model_list_invites_to_add_one(self, as_charlie, sandbox):
        response = as_charlie.get(url("model_list"))

        assert response.status_code == 200
        assertContains(response, "Add your Mistral API key to see your models")
        assertContains(response, f"{url('api_key')}?next=")

    def test_after_adding_one_the_model_page_works(self, as_charlie, sandbox):
        detail = url("model_detail", "mistral-small-latest")

        as_charlie.post(url("api_key"), {"api_key": NEW_KEY, "next": detail})
        response = as_charlie.get(detail)

        assert response.status_code == 200
        assertContains(response, "mistral-small-latest")


class TestUndecryptableKey:
    def test_the_key_page_asks_for_the_key_again(self, as_alice, retired_encryption_key):
        response = as_alice.get(url("api_key"))

        assert response.status_code == 200
        assertContains(response, "Your saved key can't be decrypted.")
        assertContains(response, "Enter your key again")
        assertContains(response, 'name="api_key"')

    def test_the_model_list_says_so(self, as_alice, sandbox, retired_encryption_key):
        response = as_alice.get(url("model_list"))

        assert response.status_code == 200
        assertContains(response, "can&#x27;t be decrypted any more")
        assertContains(response, "Enter your key again.")
        assertContains(response, f"{url('api_key')}?next=")
        assert calls(sandbox) == []

    def test_the_htmx_model_list_says_so(self, as_alice, sandbox, retired_encryption_key):
        response = as_alice.get(url("model_list"), headers=HTMX)

        assertTemplateUsed(response, "models_admin/_model_table.html")
        assertContains(response, "can&#x27;t be decrypted any more")

    def test_a_model_page_leads_to_the_key_form(self, as_alice, sandbox, retired_encryption_key):
        response = as_alice.get(url("model_detail", "mistral-small-latest"), follow=True)

        assertTemplateUsed(response, "models_admin/api_key.html")
        assertContains(response, "can&#x27;t be decrypted any more")
        assert calls(sandbox) == []

    def test_a_change_says_so_instead_of_failing(self, as_alice, sandbox, retired_encryption_key):
        model_id = fine_tuned_id(sandbox, ALICE_KEY)

        response = as_alice.post(url("model_archive", model_id), follow=True)

        assertTemplateUsed(response, "models_admin/api_key.html")
        assertContains(response, "can&#x27;t be decrypted any more")
        assert calls(sandbox) == []

    def test_saving_a_new_key_fixes_it(self, as_alice, alice, sandbox, retired_encryption_key):
        response = as_alice.post(url("api_key"), {"api_key": ALICE_KEY})

        assertRedirects(response, url("model_list"), fetch_redirect_response=False)
        assert ApiCredential.objects.get(user=alice).get_key() == ALICE_KEY
        page = as_alice.get(url("model_list"))
        assert page.context["inventory"].rows
        assertNotContains(as_alice.get(url("api_key")), "be decrypted")

    def test_it_can_be_removed(self, as_alice, alice, retired_encryption_key):
        as_alice.post(url("api_key_remove"))

        assert not ApiCredential.objects.filter(user=alice).exists()


class TestLastUsed:
    def test_using_the_key_records_it(self, as_alice, alice, sandbox):
        as_alice.get(url("model_list"))

        used = ApiCredential.objects.get(user=alice).last_used_at
        assert used is not None
        assert timezone.now() - used < timedelta(seconds=10)

    def test_it_is_written_at_most_once_a_minute(self, as_alice, alice, sandbox):
        as_alice.get(url("model_list"))
        first = ApiCredential.objects.get(user=alice).last_used_at

        as_alice.get(url("model_list"), {"refresh": "1"})
        as_alice.get(url("model_detail", "mistral-small-latest"))

        assert ApiCredential.objects.get(user=alice).last_used_at == first

    def test_it_is_written_again_after_a_minute(self, as_alice, alice, sandbox):
        earlier = timezone.now() - timedelta(minutes=2)
        ApiCredential.objects.filter(user=alice).update(last_used_at=earlier)

        as_alice.get(url("model_detail", "mistral-small-latest"))

        assert ApiCredential.objects.get(user=alice).last_used_at > earlier

    def test_saving_a_key_is_not_using_it(self, as_charlie, charlie, sandbox):
        as_charlie.post(url("api_key"), {"api_key": NEW_KEY})

        assert ApiCredential.objects.get(user=charlie).last_used_at is None
