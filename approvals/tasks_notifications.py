"""Celery tasks of notifications: thin wrappers around approvals.notifications.

Not in approvals/tasks.py (the overrides' tasks): ApprovalsConfig.ready() imports this module, so
the worker registers these tasks too.
"""

import logging

from celery import shared_task
from django.db import OperationalError

from approvals.notifications import delivery_attempt, notifications_retry_stalled
from costswitch.jobs import job_task

logger = logging.getLogger(__name__)


@shared_task(
    bind=True, acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True
)
def deliver_notification(self, delivery_id: int) -> None:
    """Try one email or webhook delivery; on failure, schedule the next try with exponential
    back-off (the delivery row counts attempts and decides when to give up).

    Idempotent: the attempt locks the delivery row and does nothing once it is sent or given up,
    so a redelivered or duplicated message never sends twice."""
    retry_in = delivery_attempt(delivery_id=delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in, max_retries=None)


@job_task
def retry_stalled_notifications() -> dict:
    """Notify alerts nobody was told about and hand overdue deliveries to Celery again (beat runs
    this every 5 minutes). Safe to run twice: notify is keyed by alert and attempts lock rows."""
    return notifications_retry_stalled().as_dict()
