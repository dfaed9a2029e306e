"""The reservation expiry sweep (`budgets.tasks.expire_reservations`) on a real Celery worker and a
real Redis broker: a reservation never settled is released once its TTL has passed, a late settle
still records the cost on the period it was held on, and two sweeps at once release nothing twice.
"""

import ast
import json
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from celery import Celery
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageCharge
from budgets.principals import principal_for_api_key
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, reservation_authorize, reservation_settle
from tests.budgets.factories import make_api_key, team_budget
from tests.processes import CeleryWorker

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]

TASK = "budgets.tasks.expire_reservations"


def task_results(log: Path) -> list:
    """Return values of the sweeps that succeeded, from the worker's JSON log."""
    results = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        data = entry.get("data") or {}
        if entry.get("logger") == "celery.app.trace" and data.get("name") == TASK and "return_value" in data:
            results.append(ast.literal_eval(data["return_value"]))
    return results


def sweep(producer: Celery, worker: CeleryWorker, times: int = 1) -> list[int]:
    """Send `times` sweeps at once; the counts of all sweeps so far, once these have finished."""
    expected = len(task_results(worker.log_path)) + times
    for _ in range(times):
        producer.send_task(TASK)
    deadline = time.monotonic() + 60
    while len(results := task_results(worker.log_path)) < expected:
        assert time.monotonic() < deadline, f"the sweep did not finish:\n{worker.log_tail()}"
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log_tail()}"
        time.sleep(0.1)
    return results


@pytest.fixture
def worker(tmp_path, redis_server):
    worker = CeleryWorker(tmp_path, "sweeper", concurrency=2, REDIS_URL=redis_server.url)
    producer = Celery("expiry-tests", broker=redis_server.url, set_as_current=False)
    worker.start()
    try:
        yield worker, producer
    finally:
        worker.kill_everything()
        producer.close()


@pytest.fixture
def alpha(world):
    budget = team_budget(world.alpha, limit=Decimal("1000"), thresholds=[])
    api_key, _ = make_api_key(team=world.alpha)
    return budget, principal_for_api_key(api_key)


def test_the_worker_releases_a_reservation_never_settled_and_a_late_settle_still_records(alpha, worker):
    budget, principal = alpha
    worker, producer = worker
    assert sweep(producer, worker) == [0]  # the worker is up (it may take seconds on a busy machine)
    reservation = reservation_authorize(
        principal=principal, request_id="forgotten", amount=Decimal("5"), ttl_seconds=5
    ).reservation
    period = BudgetPeriod.objects.get(budget=budget)
    assert period.reserved == Decimal("5")

    assert sweep(producer, worker) == [0, 0]  # not due yet: the hold stays
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.PENDING

    time.sleep(max((reservation.expires_at - timezone.now()).total_seconds(), 0) + 0.1)
    assert sweep(producer, worker)[-1] == 1
    reservation.refresh_from_db()
    period.refresh_from_db()
    assert reservation.state == ReservationState.EXPIRED and reservation.finished_at is not None
    assert (period.spent, period.reserved) == (Decimal("0"), Decimal("0"))

    # The call did happen after all: its cost is recorded and charged; nothing is released again.
    usage = reservation_settle(
        principal=principal,
        reservation_id=reservation.pk,
        report=UsageReport(request_id="forgotten", cost=Decimal("3.5"), model="m"),
    ).usage
    period.refresh_from_db()
    reservation.refresh_from_db()
    assert (period.spent, period.reserved) == (Decimal("3.5"), Decimal("0"))
    assert [c.period_id for c in UsageCharge.objects.filter(usage=usage)] == [period.pk]
    assert reservation.state == ReservationState.SETTLED
    assert sweep(producer, worker)[-1] == 0
    assert ledger_drift() == []


def test_two_sweeps_at_once_release_each_reservation_once(alpha, worker):
    budget, principal = alpha
    worker, producer = worker
    count = 300
    # Taken an hour ago with a one-minute TTL: all of them are due now.
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=False):
        for n in range(count):
            reservation_authorize(
                principal=principal, request_id=f"r{n}", amount=Decimal("1.5"), ttl_seconds=60
            )
    # One more, still within its TTL: neither sweep may touch it.
    keep = reservation_authorize(
        principal=principal, request_id="keep", amount=Decimal("2"), ttl_seconds=3600
    )

    results = sweep(producer, worker, times=2)

    assert len(results) == 2 and sum(results) == count
    assert Reservation.objects.filter(state=ReservationState.EXPIRED).count() == count
    keep.reservation.refresh_from_db()
    assert keep.reservation.state == ReservationState.PENDING
    # (Summed over periods: an hour ago may have been the previous month.)
    held = BudgetPeriod.objects.filter(budget=budget).aggregate(total=Sum("reserved"))["total"]
    assert held == Decimal("2")
    assert ledger_drift() == []
