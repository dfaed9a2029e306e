"""Batches that share request ids, sent at once from several OS processes in different orders (as
retrying ingestion jobs do), are charged once each, with no deadlock and exact aggregates."""

import multiprocessing
import random
import traceback
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from budgets.models import ApiKey, BudgetPeriod, UsageCharge, UsageRecord
from budgets.principals import principal_for_api_key
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget

PROCESSES = 4
BATCHES = 8
BATCH_SIZE = 25

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


def _cost(number: int) -> Decimal:
    return Decimal(number % 97 + 1) / 1000


def _batch(index: int) -> list[UsageReport]:
    """Batch i overlaps half of batch i+1, so every process conflicts with every other."""
    first = index * BATCH_SIZE // 2
    return [
        UsageReport(request_id=f"job-{n:04d}", cost=_cost(n), model="m", input_tokens=n)
        for n in range(first, first + BATCH_SIZE)
    ]


def _process(api_key_id: int, seed: int, results) -> None:
    try:
        principal = principal_for_api_key(
            ApiKey.objects.select_related("organization", "team").get(pk=api_key_id)
        )
        order = list(range(BATCHES))
        random.Random(seed).shuffle(order)
        for index in order:
            usage_record_many(principal=principal, reports=_batch(index))
        results.put("ok")
    except Exception:
        results.put("error: " + traceback.format_exc())
    finally:
        connection.close()


def test_concurrent_overlapping_batches_charge_each_request_once(world):
    budgets = [BudgetFactory(organization=world.org, limit=Decimal("1000")), team_budget(world.alpha)]
    api_key_id = make_api_key(team=world.alpha)[0].pk

    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_process, args=(api_key_id, seed, results)) for seed in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    errors = [outcome for outcome in outcomes if outcome != "ok"]
    assert not errors, errors[0]
    distinct = {report.request_id: report.cost for index in range(BATCHES) for report in _batch(index)}
    assert UsageRecord.objects.count() == len(distinct)
    assert ledger_drift() == []
    expected = sum(distinct.values())
    for budget in budgets:
        period = BudgetPeriod.objects.get(budget=budget)
        assert period.spent == expected
        assert UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))["total"] == expected
