"""The task worker (`worker:` in the Procfile): django-tasks-db's db_worker, plus a
scheduler thread and a graceful SIGTERM for bulk jobs."""

from __future__ import annotations

import logging
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django_tasks_db.management.commands import db_worker

from models_admin import bulk_run, tasks

logger = logging.getLogger("models_admin.worker")


class Worker(db_worker.Worker):
    """On the first SIGTERM/SIGINT, bulk threads finish the item in hand and claim no
    more (their job goes back to the queue); a second signal stops at once, and the
    items in hand are taken over by another worker when their lease expires."""

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        bulk_run.STOPPING.set()
        super().shutdown(signum, frame)


def scheduler(worker: str, stop: threading.Event) -> None:
    """Every WORKER_TICK_SECONDS: renew this worker's leases, enqueue due upkeep and
    rescue jobs whose worker died (tasks.tick). Errors are logged, never fatal."""
    while True:
        try:
            tasks.tick(worker)
        except Exception:
            logger.exception("Scheduler tick failed")
        finally:
            close_old_connections()
        if stop.wait(settings.WORKER_TICK_SECONDS):
            connections.close_all()
            return


class Command(db_worker.Command):
    help = (
        "Run a task worker: bulk jobs and scheduled upkeep. Run as many as you like, on "
        "any host; they share the work through the database."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        # A job waits at most this long for an idle worker to notice it (one indexed
        # query per interval per idle worker).
        parser.set_defaults(interval=0.2)

    def handle(self, *args: Any, **options: Any) -> None:
        self.configure_logging(options["verbosity"])
        worker = Worker(
            queue_names=options["queue_name"].split(","),
            interval=options["interval"],
            batch=options["batch"],
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            worker_id=bulk_run.worker_id(),
            excluded_queue_names=[],
        )
        stop = threading.Event()
        if options["batch"]:
            tasks.tick(worker.worker_id)  # one scheduler step, then the queue, then exit
        else:
            thread = threading.Thread(
                target=scheduler, args=(worker.worker_id, stop), name="scheduler", daemon=True
            )
            thread.start()
        self.stdout.write(f"Task worker {worker.worker_id} running (stop with SIGTERM).")
        self.stdout.flush()
        worker.configure_signals()
        try:
            worker.run()
        finally:
            stop.set()
