"""A test-only Celery task for tests/load/test_failures.py; the worker loads it with `--include`."""

import os
import time
from decimal import Decimal
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.load.celery_tasks.charge_usage")
def charge_usage(*, api_key_id: int, request_id: str, cost: str, journal: str, hold_seconds: float) -> None:
    """Charge one usage report through the ledger (idempotent by request id), then, on the first
    delivery only, hold for `hold_seconds`: a worker killed during the hold has done the work but
    not acknowledged the task. `journal` gets a "start <pid>" and a "done <pid>" line per delivery."""
    from budgets.models import ApiKey
    from budgets.principals import principal_for_api_key
    from budgets.services.ledger import UsageReport, usage_record_many

    path = Path(journal)
    with path.open("a") as lines:
        lines.write(f"start {os.getpid()}\n")
    first_delivery = path.read_text().count("start ") == 1
    api_key = ApiKey.objects.select_related("organization", "team", "user").get(pk=api_key_id)
    report = UsageReport(request_id=request_id, cost=Decimal(cost), model="m")
    usage_record_many(principal=principal_for_api_key(api_key), reports=[report])
    if first_delivery:
        time.sleep(hold_seconds)
    with path.open("a") as lines:
        lines.write(f"done {os.getpid()}\n")
