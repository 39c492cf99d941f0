"""The "Background work" page: scheduled upkeep and the queue, for team admins."""

from __future__ import annotations

from django.urls import reverse
from pytest_django.asserts import assertContains, assertTemplateUsed

from models_admin import tasks, upkeep
from models_admin.models import ScheduledRun

URL = reverse("models_admin:background")


class TestBackgroundPage:
    def test_it_shows_each_task_last_run_and_next_run_and_the_queue(self, as_alice):
        tasks.schedule_due()
        run = ScheduledRun.objects.get(name="expire_drafts")
        upkeep.run(run.name, run.period_start)

        response = as_alice.get(URL)

        assertTemplateUsed(response, "models_admin/background.html")
        for item in upkeep.SCHEDULE.values():
            assertContains(response, item.title)
        assertContains(response, "0 row(s) of unconfirmed bulk jobs")
        assertContains(response, "never")  # reconcile_audit is queued, not run yet
        # every scheduled task queued, none run by a worker
        assertContains(response, f"{len(upkeep.SCHEDULE)} tasks waiting, 0 running")
        assertContains(response, 'aria-current="page">Background work</a>', html=False)

    def test_it_requires_permission(self, as_bob):
        assert as_bob.get(URL).status_code == 403

    def test_it_requires_login(self, client, db):
        assert client.get(URL).status_code == 302

    def test_it_rejects_post(self, as_alice):
        assert as_alice.post(URL).status_code == 405
