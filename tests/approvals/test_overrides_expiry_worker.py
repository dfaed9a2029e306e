"""The expiry sweep in a real Celery worker (prefork, two pool processes) on the test database:
two deliveries of `approvals.tasks.expire_overrides` at once expire each due override once and take
an expired extension's money back once."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from approvals.models import AuditEntry, OverrideState
from approvals.services import override_approve, override_request
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_user
from tests.approvals.factories import extension_ask
from tests.budgets.factories import team_budget
from tests.processes import CeleryWorker

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


def test_two_sweeps_at_once_in_a_worker_expire_each_override_once(world, redis_server, tmp_path):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    started = timezone.now() - timedelta(minutes=2)
    overrides = []
    for amount in ("5", "7"):
        override = override_request(
            principal=principal_for_user(world.bob),
            budget_id=budget.pk,
            ask=extension_ask(Decimal(amount), minutes=1),
            now=started,
        )
        override_approve(principal=principal_for_user(world.alice), override_id=override.pk, now=started)
        overrides.append(override)
    period = BudgetPeriod.objects.get(budget=budget)
    assert period.limit == Decimal("112")

    worker = CeleryWorker(tmp_path, "sweeper", concurrency=2, REDIS_URL=redis_server.url)
    producer = Celery("expiry-tests", broker=redis_server.url, set_as_current=False)
    try:
        worker.start()
        for _ in range(2):
            producer.send_task("approvals.tasks.expire_overrides")
        deadline = time.monotonic() + 60
        while BudgetPeriod.objects.get(pk=period.pk).limit != Decimal("100"):
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.2)
        time.sleep(1)  # let a second, late delivery finish too
    finally:
        worker.kill_everything()
        producer.close()

    for override in overrides:
        override.refresh_from_db()
        assert override.state == OverrideState.EXPIRED
        assert AuditEntry.objects.filter(object_id=str(override.pk), action="override.expired").count() == 1
    assert BudgetPeriod.objects.get(pk=period.pk).limit == Decimal("100")
    assert (
        AuditEntry.objects.filter(action="budget_period.limit_withdrawn", object_id=str(period.pk)).count()
        == 2
    )
