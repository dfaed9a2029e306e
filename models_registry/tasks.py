"""Celery tasks of the registry: thin wrappers that call a service."""

import logging

import httpx
from celery import shared_task
from django.db import OperationalError

from costswitch.jobs import job_task
from models_registry.catalog import CatalogError
from models_registry.services import price_changes_apply_due
from models_registry.sync import prices_sync

logger = logging.getLogger(__name__)


@job_task
def apply_due_price_changes() -> int:
    """Apply scheduled price changes whose time has come (beat runs this every minute).

    Idempotent: an applied change is no longer pending, and rows are locked with SKIP LOCKED, so a
    redelivered or overlapping run applies nothing twice.
    """
    applied = price_changes_apply_due()
    logger.log(logging.INFO if applied else logging.DEBUG, "applied %d scheduled price change(s)", applied)
    return applied


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, httpx.TransportError),
    retry_backoff=True,
    max_retries=3,
)
def sync_prices() -> dict | None:
    """Import the price catalog of COSTSWITCH_PRICE_CATALOG (beat runs this hourly; off when unset).

    Idempotent: an unchanged catalog changes nothing, and overlapping runs are serialized by a lock
    (see `models_registry.sync`). Network errors retry; a catalog that cannot be imported fails the
    run with every problem logged, and the registry is left as it was.
    """
    try:
        result = prices_sync()
    except CatalogError as exc:
        logger.error("price sync failed: %s", exc, extra={"problems": exc.problems[:50]})
        raise
    if result is None:
        logger.debug("price sync is off: COSTSWITCH_PRICE_CATALOG is not set")
        return None
    summary = result.as_dict()
    changed = summary["created"] or summary["updated"] or summary["providers_created"]
    logger.log(
        logging.INFO if changed else logging.DEBUG,
        "synced prices from %s: %d created, %d updated (%d with new prices), %d unchanged",
        summary["source"],
        len(summary["created"]),
        len(summary["updated"]),
        len(summary["price_changes"]),
        summary["unchanged"],
        extra={"price_sync": summary},
    )
    return summary
