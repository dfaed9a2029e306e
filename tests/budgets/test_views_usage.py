"""The usage records of a budget page: filters by model, team, person, days, task type and outcome,
paginated, by HTMX and as a plain GET form without JavaScript; never more than the caller may see."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from budgets.views import USAGE_PAGE_SIZE
from tests.budgets.factories import BudgetFactory, team_budget

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def spend(user, request_id: str, *, model: str, task: str = "", outcome: str = "", days_ago: int = 0):
    usage_record_many(
        principal=principal_for_user(user),
        reports=[
            UsageReport(
                request_id=request_id,
                cost=Decimal("0.5"),
                model=model,
                task_type=task,
                outcome=outcome,
                occurred_at=timezone.now() - timedelta(days=days_ago),
            )
        ],
    )


def shown(html: str) -> set[str]:
    """The request ids of the rows (each row links to its explanation)."""
    return set(re.findall(r"/decisions/request/([^/]+)/", html))


def day(days_ago: int, world) -> str:
    return (timezone.now() - timedelta(days=days_ago)).astimezone(world.org.tzinfo).date().isoformat()


@pytest.fixture
def org_usage(world):
    budget = BudgetFactory(organization=world.org, name="Acme monthly", limit=Decimal("1000"))
    spend(world.bob, "r1", model="good", task="code", outcome="success", days_ago=10)
    spend(world.carol, "r2", model="weak", task="chat", outcome="failure", days_ago=3)
    spend(world.bob, "r3", model="weak", task="chat")
    return budget


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (lambda w: "model=weak", {"r2", "r3"}),
        (lambda w: f"team={w.beta.pk}", {"r2"}),
        (lambda w: f"user={w.bob.pk}", {"r1", "r3"}),
        (lambda w: f"since={day(3, w)}", {"r2", "r3"}),
        (lambda w: f"until={day(3, w)}", {"r1", "r2"}),
        (lambda w: f"since={day(3, w)}&until={day(3, w)}", {"r2"}),
        (lambda w: "task_type=code", {"r1"}),
        (lambda w: "outcome=failure", {"r2"}),
        (lambda w: "outcome=none", {"r3"}),
        (lambda w: f"model=weak&user={w.bob.pk}", {"r3"}),
        (lambda w: "", {"r1", "r2", "r3"}),
    ],
)
def test_each_filter_narrows_the_table_with_htmx_and_without(world, org_usage, query, expected):
    client = login(world.fiona)
    qs = query(world)

    partial = client.get(f"/budgets/{org_usage.pk}/usage/?{qs}", **HTMX).content.decode()
    page = client.get(f"/budgets/{org_usage.pk}/?{qs}").content.decode()

    assert "<html" not in partial and shown(partial) == expected
    assert shown(page) == expected


def test_the_filter_form_works_without_javascript(world, org_usage):
    client = login(world.fiona)
    page = client.get(f"/budgets/{org_usage.pk}/").content.decode()

    assert f'method="get" action="/budgets/{org_usage.pk}/#usage-h"' in page
    for name in ["model", "team", "user", "since", "until", "task_type", "outcome"]:
        assert f'name="{name}"' in page and f'for="usage-{name}"' in page
    # A bookmarked HTMX address without HTMX lands on the whole page, filters kept.
    response = client.get(f"/budgets/{org_usage.pk}/usage/?model=weak")
    assert response.status_code == 302 and response["Location"] == f"/budgets/{org_usage.pk}/?model=weak"


def test_the_form_offers_only_what_the_caller_may_see(world, org_usage):
    alpha = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    spend(world.bob, "r4", model="premium", task="math")
    client = login(world.alice)

    form = client.get(f"/budgets/{alpha.pk}/").content.decode().split('id="usage"')[1].split("</form>")[0]

    assert f'value="{world.bob.pk}"' in form and f'value="{world.carol.pk}"' not in form
    assert f'value="{world.alpha.pk}"' in form and f'value="{world.beta.pk}"' not in form
    assert 'value="premium"' in form and 'value="math"' in form
    # Asking for another team's people is an inline error, and shows nothing more.
    partial = client.get(f"/budgets/{alpha.pk}/usage/?user={world.carol.pk}", **HTMX).content.decode()
    assert 'id="usage-user_error"' in partial and "r2" not in shown(partial)


def test_an_end_before_the_start_is_an_inline_error(world, org_usage):
    partial = (
        login(world.fiona)
        .get(f"/budgets/{org_usage.pk}/usage/?since={day(0, world)}&until={day(3, world)}", **HTMX)
        .content.decode()
    )

    assert 'id="usage-until_error"' in partial and "must not be before the start day" in partial
    assert shown(partial) == {"r3"}  # the valid start day still applies


def test_pages_keep_the_filters(world, org_usage):
    for n in range(USAGE_PAGE_SIZE + 2):
        spend(world.carol, f"w{n:02d}", model="weak", days_ago=1)
    client = login(world.fiona)

    first = client.get(f"/budgets/{org_usage.pk}/usage/?model=weak", **HTMX).content.decode()
    second = client.get(f"/budgets/{org_usage.pk}/usage/?page=2&model=weak", **HTMX).content.decode()

    assert len(shown(first)) == USAGE_PAGE_SIZE and "Page 1 of 2" in first
    assert f"/budgets/{org_usage.pk}/usage/?page=2&amp;model=weak" in first
    assert f"/budgets/{org_usage.pk}/?page=2&amp;model=weak#usage-h" in first  # the no-JS link
    assert len(shown(second)) == 4 and "r1" not in shown(second)  # 29 weak rows in all (r2, r3, w00-w26)
    assert len(shown(first) | shown(second)) == USAGE_PAGE_SIZE + 4


def test_the_table_costs_the_same_queries_for_more_rows(world, org_usage):
    client = login(world.fiona)
    url = f"/budgets/{org_usage.pk}/usage/?model=weak"
    with CaptureQueriesContext(connection) as few:
        client.get(url, **HTMX)
    for n in range(10):
        spend(world.carol, f"more-{n}", model="weak")
    with CaptureQueriesContext(connection) as many:
        client.get(url, **HTMX)

    assert len(many) == len(few)
