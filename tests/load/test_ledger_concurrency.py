"""Several OS processes spend from one small budget chain at once on real PostgreSQL.

The promise under test: no budget is ever overspent by reserved traffic, the period aggregates equal
the ledger, nothing is left reserved, and the fixed lock order means no deadlocks.
"""

import multiprocessing
import random
import traceback
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from budgets.choices import ReservationState
from budgets.models import ApiKey, BudgetPeriod, Reservation, ReservationHold, UsageCharge
from budgets.principals import principal_for_api_key
from budgets.selectors import ledger_drift
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_release,
    reservation_settle,
)
from costswitch.errors import BudgetExceeded
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget

PROCESSES = 4
CLIENTS_PER_PROCESS = 50
THREADS_PER_PROCESS = 8

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


def _client(api_key_id: int, seed: int) -> str:
    """One client: authorize a random maximum, then settle below it (or release one time in five)."""
    rng = random.Random(seed)
    try:
        principal = principal_for_api_key(
            ApiKey.objects.select_related("organization", "team").get(pk=api_key_id)
        )
        amount = Decimal(rng.randint(10, 40)) / 100
        try:
            reservation = reservation_authorize(
                principal=principal, request_id=f"req-{seed}", amount=amount
            ).reservation
        except BudgetExceeded:
            return "refused"
        if rng.random() < 0.2:
            reservation_release(principal=principal, reservation_id=reservation.pk)
            return "released"
        actual = (amount * Decimal(rng.randint(50, 100)) / 100).quantize(Decimal("0.000000001"))
        report = UsageReport(request_id=reservation.request_id, cost=actual, model="m")
        reservation_settle(principal=principal, reservation_id=reservation.pk, report=report)
        if rng.random() < 0.2:  # a client retry must not charge twice
            reservation_settle(principal=principal, reservation_id=reservation.pk, report=report)
        return "settled"
    except Exception:
        return "error: " + traceback.format_exc()
    finally:
        connection.close()


def _process(api_key_id: int, process_index: int, results) -> None:
    seeds = [process_index * 1000 + n for n in range(CLIENTS_PER_PROCESS)]
    with ThreadPoolExecutor(max_workers=THREADS_PER_PROCESS) as pool:
        outcomes = list(pool.map(lambda seed: _client(api_key_id, seed), seeds))
    results.put(outcomes)


def test_concurrent_processes_never_overspend_and_aggregates_equal_the_ledger(world):
    org_budget = BudgetFactory(organization=world.org, limit=Decimal("8"))
    alpha_budget = team_budget(world.alpha, limit=Decimal("5"))
    beta_budget = team_budget(world.beta, limit=Decimal("5"))
    keys = [make_api_key(team=world.alpha)[0].pk, make_api_key(team=world.beta)[0].pk]

    connections.close_all()  # children must open their own connections
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_process, args=(keys[index % 2], index, results)) for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [outcome for _ in processes for outcome in results.get(timeout=240)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    errors = [outcome for outcome in outcomes if outcome.startswith("error")]
    assert not errors, f"{len(errors)} clients failed, first: {errors[0] if errors else None}"
    assert len(outcomes) == PROCESSES * CLIENTS_PER_PROCESS
    assert outcomes.count("refused") > 0, "the budgets should have been too small for every client"
    assert outcomes.count("settled") > 0

    for budget in (org_budget, alpha_budget, beta_budget):
        period = BudgetPeriod.objects.get(budget=budget)
        charged = UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))["total"]
        assert period.spent <= period.limit
        assert period.spent == charged
        assert period.reserved == 0
    assert not Reservation.objects.filter(state=ReservationState.PENDING).exists()
    assert ledger_drift() == []
    settled_holds = ReservationHold.objects.filter(reservation__state=ReservationState.SETTLED).count()
    assert settled_holds == 2 * outcomes.count("settled")
