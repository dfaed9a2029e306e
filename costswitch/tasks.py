"""Celery tasks of the shared base: the inbound webhook inbox (see costswitch/webhooks.py)."""

import logging

from celery import shared_task
from django.db import OperationalError

from costswitch.webhooks import webhook_process, webhooks_requeue_stuck

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=4,
)
def process_inbound_webhook(webhook_id: int) -> None:
    """Apply one stored delivery with its endpoint's processor. Idempotent: the delivery's row is
    locked while it is applied and a processed (or failed) delivery is left alone, so a redelivery
    or a second copy does nothing; a transient failure retries with back-off."""
    webhook = webhook_process(webhook_id=webhook_id)
    if webhook is None:
        logger.warning("inbound webhook %s does not exist", webhook_id)


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), max_retries=3)
def requeue_stuck_webhooks() -> int:
    """Beat: deliveries still `received` after a while go to the worker again (nothing is lost
    when the broker was down or a worker died after its retries)."""
    count = webhooks_requeue_stuck()
    logger.log(logging.INFO if count else logging.DEBUG, "re-enqueued %d stuck inbound webhook(s)", count)
    return count
