"""Celery tasks of the registry: thin wrappers that call a service."""

import logging

from celery import shared_task
from django.db import OperationalError

from models_registry.services import price_changes_apply_due

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def apply_due_price_changes() -> int:
    """Apply scheduled price changes whose time has come (beat runs this every minute).

    Idempotent: an applied change is no longer pending, and rows are locked with SKIP LOCKED, so a
    redelivered or overlapping run applies nothing twice.
    """
    applied = price_changes_apply_due()
    logger.log(logging.INFO if applied else logging.DEBUG, "applied %d scheduled price change(s)", applied)
    return applied
