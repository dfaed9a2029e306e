"""Celery tasks of the budgets app: thin wrappers that call a service."""

import logging
from datetime import datetime

from budgets.services.alerts import alerts_forecast, alerts_sweep
from budgets.services.ledger import reservations_expire
from budgets.services.periods import periods_roll_over
from costswitch.jobs import job_task

logger = logging.getLogger(__name__)


@job_task
def expire_reservations() -> int:
    """Release pending reservations past their TTL (beat runs this every minute).

    Idempotent: an expired reservation is no longer pending, so a redelivered or overlapping run
    releases nothing twice; a transient database error (lock timeout, lost connection) retries.
    """
    expired = reservations_expire()
    # Every minute even when idle: keep the worker log quiet unless something was released.
    logger.log(
        logging.INFO if expired else logging.DEBUG,
        "expired %d reservation(s)",
        expired,
        extra={"expired": expired},
    )
    return expired


@job_task
def roll_over_periods(now: str | None = None) -> dict:
    """Close ended budget periods and open the current ones, with carry-over (beat: every 5 minutes).

    `now` (ISO 8601 with an offset) runs it as of that moment; tests pass it, because a frozen clock
    does not reach a worker process. Idempotent and safe to overlap (see `periods_roll_over`).
    """
    moment = datetime.fromisoformat(now) if now else None
    if moment is not None and moment.tzinfo is None:
        raise ValueError(f"now must carry a UTC offset, got {now!r}")
    summary = periods_roll_over(now=moment).as_dict()
    logger.log(
        logging.INFO if summary["closed"] or summary["opened"] else logging.DEBUG,
        "rolled over budget periods: %d closed, %d opened, %s carried over",
        summary["closed"],
        summary["opened"],
        summary["carried"],
        extra={"rollover": summary},
    )
    return summary


@job_task
def raise_threshold_alerts() -> dict:
    """Raise threshold and exhausted alerts the ledger did not see (beat: every 5 minutes).
    Idempotent: an alert is unique per period and threshold, so a second run raises nothing."""
    return alerts_sweep().as_dict()


@job_task
def raise_forecast_alerts() -> dict:
    """Raise a forecast alert, once per period, for budgets projected to exceed their limit before
    the period ends (beat: every 15 minutes). Idempotent like the threshold sweep."""
    return alerts_forecast().as_dict()
