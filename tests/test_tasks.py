"""The "Background work" page: scheduled upkeep and the queue, for team admins."""

from __future__ import annotations

from django.urls import reverse
from django_tasks_db.models import DBTaskResult
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


class TestQueueOrder:
    def test_a_queued_bulk_job_goes_before_queued_upkeep(self, db):
        tasks.schedule_due()  # every upkeep task queued first
        tasks.enqueue_bulk_job("00000000-0000-0000-0000-000000000001")

        first = DBTaskResult.objects.ready().first()  # what a worker claims next

        assert first is not None and first.task_path == tasks.bulk_job_run.module_path
        assert DBTaskResult.objects.ready().count() == len(upkeep.SCHEDULE) + 1
