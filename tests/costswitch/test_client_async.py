"""AsyncCostSwitch against the live server (run with asyncio.run: no pytest-asyncio needed): the
`async with cs.call(...)` block settles or releases like the sync one, and concurrent calls on one
client each charge exactly once."""

import asyncio
from decimal import Decimal

import pytest

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageRecord
from costswitch.client import AsyncCostSwitch, BudgetExceeded
from tests.budgets.factories import team_budget
from tests.costswitch.test_client import HARD, HELLO, registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def models(db):
    return registry()


@pytest.fixture
def budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


def test_the_async_call_block_settles_and_releases(live_server, team_key, models, budget):
    async def scenario():
        async with AsyncCostSwitch(live_server.url, team_key[1]) as cs:
            async with cs.call(HELLO, strategy="cost_optimized", task_type="summarization") as call:
                await asyncio.sleep(0)  # the LLM call
                call.usage(input_tokens=1000, output_tokens=1000)
            try:
                async with cs.call(HELLO) as failed:
                    raise ConnectionResetError("provider hung up")
            except ConnectionResetError:
                pass
            return call, failed

    call, failed = asyncio.run(scenario())

    # 1000 * 0.15/1M + 1000 * 0.60/1M
    assert call.model == "utility" and call.record.cost == Decimal("0.00075")
    assert UsageRecord.objects.get().cost == Decimal("0.00075")
    assert Reservation.objects.get(pk=failed.selection.reservation_id).state == ReservationState.RELEASED
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent, period.reserved) == (Decimal("0.00075"), 0)


def test_concurrent_async_calls_each_charge_once(live_server, team_key, models, budget):
    async def one(cs: AsyncCostSwitch, n: int):
        async with cs.call(HELLO, request_id=f"par-{n}") as call:
            call.usage(input_tokens=100 * n, output_tokens=0)
        return call.record

    async def scenario():
        async with AsyncCostSwitch(live_server.url, team_key[1]) as cs:
            return await asyncio.gather(*(one(cs, n) for n in range(1, 9)))

    records = asyncio.run(scenario())

    # 100n tokens at 0.15/1M each for n = 1..8: 3600 tokens in all
    assert sorted(r.request_id for r in records) == sorted(f"par-{n}" for n in range(1, 9))
    assert UsageRecord.objects.count() == 8
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent, period.reserved) == (Decimal("0.00054"), 0)


def test_async_refusals_raise_the_same_errors(live_server, world, team_key, models):
    team_budget(world.alpha, limit=Decimal("0.000001"), thresholds=[])

    async def scenario():
        async with AsyncCostSwitch(live_server.url, team_key[1]) as cs:
            estimate = await cs.estimate(HARD, model="premium")
            try:
                await cs.select(HARD, model="premium", max_tokens=1000)
            except BudgetExceeded as error:
                return estimate, error
        raise AssertionError("the select was admitted")

    estimate, error = asyncio.run(scenario())

    assert estimate.estimates[0].budget_impact == "exceeds"
    assert (error.status, error.code) == (402, "budget_exceeded")
    assert not Reservation.objects.exists()
