"""Celery tasks of the budgets app: thin wrappers that call a service."""

import logging

from celery import shared_task
from django.db import OperationalError

from budgets.services.ledger import reservations_expire

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def expire_reservations() -> int:
    """Release pending reservations past their TTL (beat runs this every minute).

    Idempotent: an expired reservation is no longer pending, so a redelivered or overlapping run
    releases nothing twice; a transient database error (lock timeout, lost connection) retries.
    """
    expired = reservations_expire()
    # Every minute even when idle: keep the worker log quiet unless something was released.
    logger.log(logging.INFO if expired else logging.DEBUG, "expired %d reservation(s)", expired)
    return expired
