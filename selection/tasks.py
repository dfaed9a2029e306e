"""Celery tasks of the selection app: thin wrappers that call a service."""

import logging

from costswitch.jobs import job_task
from selection.outcome_learning import outcome_models_train

logger = logging.getLogger(__name__)


@job_task
def learn_from_outcomes(organization_id: int | None = None) -> dict:
    """Rebuild the per-request outcome models that outcomes reported since the last run concern, from
    each model's newest COSTSWITCH_LEARNING_WINDOW outcomes (beat: every minute). Idempotent and
    safe to overlap: the watermark moves with the weights under a row lock, and a rebuild is a pure
    function of the ledger window."""
    summary = outcome_models_train(organization_id=organization_id)
    learned = sum(result["learned"] for result in summary.values())
    logger.log(
        logging.INFO if summary else logging.DEBUG,
        "learned %d new outcome(s) for %d organization(s)",
        learned,
        len(summary),
        extra={"learned": learned, "organizations": len(summary)},
    )
    return summary
