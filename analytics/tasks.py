"""Celery tasks of the analytics app: thin wrappers around the reconciliation and rollup services."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics.reconciliation.external import sync_batch_fail, sync_batch_process, sync_batches_requeue_stuck
from analytics.reconciliation.internal import ledger_reconcile_all
from analytics.rollup import RECENT_DAYS, daily_spend_build_all
from costswitch.errors import DomainError

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def reconcile_ledger(self) -> int:
    """Beat (hourly): recompute every open period from the ledger, fix and record drift; then send
    sync batches that were never processed to the worker again.

    Idempotent: each period is fixed under its row lock, so a second or concurrent run finds
    nothing left; a redelivered task (same task id) continues its own runs."""
    runs = ledger_reconcile_all(task_key=f"celery:{self.request.id}")
    drifted = sum(run.discrepancy_count for run in runs)
    requeued = sync_batches_requeue_stuck()
    logger.log(
        logging.WARNING if drifted else logging.INFO,
        "reconciled %d organization(s): %d drifted aggregate(s) fixed; %d stuck batch(es) re-enqueued",
        len(runs),
        drifted,
        requeued,
    )
    return drifted


@shared_task(acks_late=True, ignore_result=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def process_sync_batch(batch_id: int) -> None:
    """Reconcile one stored export (file, upload or cost-data webhook) against the ledger.

    Idempotent and safe to kill: each line is compared in its own transaction and each difference
    is written once (unique fingerprints), so a redelivery finishes what is left and a processed
    batch is left alone."""
    try:
        batch = sync_batch_process(batch_id=batch_id)
    except DomainError as exc:
        sync_batch_fail(batch_id=batch_id, error=f"{exc.code}: {exc.message}")
        logger.warning("sync batch %s failed: %s", batch_id, exc.message)
        return
    logger.info("sync batch %s is %s", batch_id, batch.status)


@shared_task(acks_late=True, ignore_result=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def rollup_spend(days: int = RECENT_DAYS) -> int:
    """Beat: rebuild the daily spend rollup of the last `days` ended days of every organization
    (every 10 minutes the last 2, daily the last 35), so late usage is picked up.

    Idempotent and safe to run concurrently: each organization's days are replaced in one
    transaction under its advisory lock."""
    results = daily_spend_build_all(days=days)
    rows = sum(result.rows for result in results)
    logger.info("rolled up the last %d day(s) of %d organization(s): %d row(s)", days, len(results), rows)
    return rows
