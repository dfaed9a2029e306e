"""Celery tasks of the approvals app: thin wrappers that call a service."""

import logging

from approvals.services import overrides_expire
from costswitch.jobs import job_task

logger = logging.getLogger(__name__)


@job_task
def expire_overrides() -> int:
    """Expire overrides past their end and requests nobody decided in time (beat: every minute).

    Idempotent and safe to run concurrently: each override is taken with SKIP LOCKED and moved only
    while it is still due, so a redelivered or overlapping run expires nothing twice and takes no
    extension back twice; a transient database error retries.
    """
    expired = overrides_expire()
    logger.log(logging.INFO if expired else logging.DEBUG, "expired %d override(s)", expired)
    return expired
