"""`manage.py run_job NAME [--dry-run]`: run any job of the beat schedule once, now, in this process.

The jobs with options of their own also have a command each (roll_over_periods, reconcile_ledger,
raise_alerts, sync_prices...); this one covers every entry of CELERY_BEAT_SCHEDULE by its name.
"""

from collections.abc import Mapping
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = "Run one job of the Celery beat schedule once, now (`--list` names them)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("job", nargs="?", help="A name from the beat schedule, e.g. expire-overrides.")
        parser.add_argument("--list", action="store_true", help="List the jobs and their tasks.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for name, entry in sorted(settings.CELERY_BEAT_SCHEDULE.items()):
                self.stdout.write(f"{name:<30} {entry['task']}  every {entry['schedule']:g} s")
            return
        super().handle(*args, **options)

    def run_job(self, **options: Any) -> Mapping[str, Any]:
        name = options["job"]
        entry = settings.CELERY_BEAT_SCHEDULE.get(name or "")
        if entry is None:
            known = ", ".join(sorted(settings.CELERY_BEAT_SCHEDULE))
            raise CommandError(f"Unknown job {name!r}; the beat schedule has: {known}.")
        current_app.loader.import_default_modules()  # the tasks of every app, as a worker has them
        task = current_app.tasks[entry["task"]]
        # Called as a function: no broker, no retries; a failure is raised here for the operator.
        return {"job": name, "task": entry["task"], "result": task(*entry.get("args", ()))}
