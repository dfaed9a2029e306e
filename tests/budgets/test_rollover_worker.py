"""The rollover task on a real Celery worker (prefork, two processes) and a real Redis broker: two
runs at once at the April 1st boundary in Europe/Berlin open each budget's April period once, with
the carry-over computed from March.

A frozen clock cannot reach the worker processes, so the task gets the moment as its `now`
argument (ISO 8601); the test process freezes its own clock only to write March's spend.
"""

import ast
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery import Celery
from django.db import connection

from budgets.choices import CarryOver
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_api_key
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from budgets.services.periods import period_get_or_open
from tests.budgets.factories import make_api_key, team_budget
from tests.processes import CeleryWorker

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]

BERLIN = ZoneInfo("Europe/Berlin")
MIDNIGHT = datetime(2026, 4, 1, tzinfo=BERLIN)  # 2026-03-31T22:00Z
AFTER_MIDNIGHT = MIDNIGHT + timedelta(minutes=1)
TASK = "budgets.tasks.roll_over_periods"
BUDGETS = 60


def task_results(log: Path, task: str) -> list:
    """Return values of the runs of `task` that succeeded, from the worker's JSON log."""
    results = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        data = entry.get("data") or {}
        if entry.get("logger") == "celery.app.trace" and data.get("name") == task and "return_value" in data:
            results.append(ast.literal_eval(data["return_value"]))
    return results


def wait_for_results(worker: CeleryWorker, task: str, count: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while len(results := task_results(worker.log_path, task)) < count:
        assert time.monotonic() < deadline, f"{count} runs of {task} did not finish:\n{worker.log_tail()}"
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log_tail()}"
        time.sleep(0.1)
    return results


def test_two_rollovers_at_once_open_each_period_once_with_its_carry_over(world, redis_server, tmp_path):
    world.org.timezone = "Europe/Berlin"
    world.org.save()
    # Every budget spends 30 and holds 10 in March (one chain: they are all alpha's); their caps
    # differ, so each April period must carry its own min(cap, 60).
    caps = [None if n % 7 == 0 else Decimal(n) for n in range(BUDGETS)]
    budgets = [
        team_budget(
            world.alpha,
            limit=Decimal("100"),
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            carry_over=CarryOver.UNUSED,
            carry_over_cap=cap,
            thresholds=[],
        )
        for cap in caps
    ]
    api_key, _ = make_api_key(team=world.alpha)
    principal = principal_for_api_key(api_key)
    with time_machine.travel(MIDNIGHT - timedelta(seconds=1), tick=False):
        report = UsageReport(
            request_id="march", cost=Decimal("30"), model="m", occurred_at=MIDNIGHT - timedelta(days=9)
        )
        usage_record_many(principal=principal, reports=[report])
        reservation_authorize(principal=principal, request_id="held", amount=Decimal("10"), ttl_seconds=3600)
    march = {b.pk: period_get_or_open(budget=b, moment=MIDNIGHT - timedelta(seconds=1)) for b in budgets}
    assert {(p.spent, p.reserved) for p in march.values()} == {(Decimal("30"), Decimal("10"))}

    worker = CeleryWorker(tmp_path, "roller", concurrency=2, REDIS_URL=redis_server.url)
    producer = Celery("rollover-tests", broker=redis_server.url, set_as_current=False)
    try:
        worker.start()
        for _ in range(2):
            producer.send_task(TASK, kwargs={"now": AFTER_MIDNIGHT.isoformat()})
        results = wait_for_results(worker, TASK, 2)
    finally:
        worker.kill_everything()
        producer.close()

    assert sum(r["opened"] for r in results) == BUDGETS
    assert sum(r["closed"] for r in results) == BUDGETS
    opened = [pk for r in results for pk in r["opened_periods"]]
    assert len(opened) == len(set(opened)) == BUDGETS
    expected = {
        b.pk: Decimal("60") if cap is None else min(cap, Decimal("60"))
        for b, cap in zip(budgets, caps, strict=True)
    }
    assert sum(Decimal(r["carried"]) for r in results) == sum(expected.values())
    for budget in budgets:
        periods = list(BudgetPeriod.objects.filter(budget=budget).order_by("starts_at"))
        assert [p.starts_at for p in periods] == [march[budget.pk].starts_at, MIDNIGHT]
        old, new = periods
        assert old.closed_at == AFTER_MIDNIGHT and new.closed_at is None
        assert (new.carried_over, new.limit) == (expected[budget.pk], Decimal("100") + expected[budget.pk])
    assert ledger_drift() == []
