"""Running a background job once by hand: the base of the operator commands (`manage.py <job>`).

A job is a service function that does its work in the database and returns a summary. With
`--dry-run` it runs exactly as it would, in one transaction that is then rolled back, so the
operator sees what it would have done and nothing is changed.
"""

import json
from collections.abc import Mapping
from typing import Any

from celery import shared_task
from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, transaction

# The policy of a periodic job's Celery task: acknowledged after it ran (a killed worker's job is
# delivered again; jobs are idempotent), no result kept, and a transient database error (lock
# timeout, lost connection) retried with back-off.
job_task = shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)


class JobCommand(BaseCommand):
    """Subclasses implement `run_job(**options)` and return a JSON-able summary of what was done."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Do everything, report it, then roll it back: nothing is changed.",
        )

    def run_job(self, **options: Any) -> Mapping[str, Any] | int:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        with transaction.atomic():
            summary = self.run_job(**options)
            if dry_run:
                transaction.set_rollback(True)
        prefix = "dry run, nothing changed: " if dry_run else ""
        self.stdout.write(prefix + json.dumps(summary, cls=DjangoJSONEncoder, sort_keys=True))
