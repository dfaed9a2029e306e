"""List endpoints answer in a fixed number of queries however many rows they return (STYLE.md, Tests).

Each test lists 3 rows, then 30, and requires the same number of queries both times, equal to a pinned
number: changing a pin is a decision to review, not a side effect.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget, user_budget
from tests.conftest import client_for, client_with_key

# Queries per list, whatever the number of rows (keys are used once first, so the at-most-once-a-minute
# "last used" write is not counted): [the API key,] the caller's memberships, [the
# members of the teams she leads,] [a personal key's organization,] the count, the page and, for
# budgets, their thresholds.
# fmt: off
PINNED = {
    #             /budgets  /usage
    "fiona":     (4,        3),
    "alice":     (5,        4),
    "bob":       (4,        3),
    "alpha_key": (4,        3),
    "bob_key":   (6,        5),
}
# fmt: on
CALLERS = list(PINNED)


@pytest.fixture
def keys(world):
    return {"alpha_key": make_api_key(team=world.alpha), "bob_key": make_api_key(user=world.bob)}


def client_of(world, keys, name: str) -> APIClient:
    if name not in keys:
        return client_for(getattr(world, name))
    client = client_with_key(keys[name][1])
    client.get("/api/v1/reservations")  # records "last used" now, not during the measured requests
    return client


def principal_of(world, keys, name: str):
    return principal_for_api_key(keys[name][0]) if name in keys else principal_for_user(getattr(world, name))


def add_budgets(world, count: int) -> None:
    """Budgets on alpha, on bob and on the organization, in turn, so that every caller sees some."""
    makers = [
        lambda n: team_budget(world.alpha, name=f"alpha {n}"),
        lambda n: user_budget(world.bob, name=f"bob {n}"),
        lambda n: BudgetFactory(organization=world.org, name=f"org {n}"),
    ]
    for n in range(count):
        makers[n % len(makers)](n)


def add_usage(world, keys, count: int, *, start: int = 0) -> None:
    """Usage reported in turn by both keys, bob and alice, one record each."""
    reporters = ["alpha_key", "bob_key", "bob", "alice"]
    for n in range(start, start + count):
        usage_record_many(
            principal=principal_of(world, keys, reporters[n % len(reporters)]),
            reports=[UsageReport(request_id=f"req-{n}", cost=Decimal("0.01"), model="gpt-4o-mini")],
        )


def list_queries(client: APIClient, url: str) -> tuple[int, int]:
    """(queries run, rows listed) for one GET of a list endpoint."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), response.json()["count"]


@pytest.mark.parametrize("caller", CALLERS)
def test_it_lists_budgets_in_a_number_of_queries_that_does_not_grow_with_rows(world, keys, caller):
    url = "/api/v1/budgets"
    add_budgets(world, 3)
    few_queries, few_rows = list_queries(client_of(world, keys, caller), url)
    add_budgets(world, 27)

    many_queries, many_rows = list_queries(client_of(world, keys, caller), url)

    assert many_rows > few_rows > 0
    assert many_queries == few_queries == PINNED[caller][0]


@pytest.mark.parametrize("caller", CALLERS)
def test_it_lists_usage_in_a_number_of_queries_that_does_not_grow_with_rows(world, keys, caller):
    url = "/api/v1/usage"
    add_usage(world, keys, 3)
    few_queries, few_rows = list_queries(client_of(world, keys, caller), url)
    add_usage(world, keys, 27, start=3)

    many_queries, many_rows = list_queries(client_of(world, keys, caller), url)

    assert many_rows > few_rows > 0
    assert many_queries == few_queries == PINNED[caller][1]
