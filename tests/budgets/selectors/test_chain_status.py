"""`chain_status` reads the chain in one written-out statement; `chain_budgets` (the ORM queryset the
ledger's fallback, approvals and adjustments use) states the same rule. They must agree."""

from decimal import Decimal

import pytest

from budgets.models import Budget
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.selectors import budget_status, chain_budgets, chain_status
from budgets.services.ledger import reservation_authorize
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget, user_budget

pytestmark = pytest.mark.django_db


@pytest.fixture
def budgets(world):
    """Budgets in and out of every chain: each scope, inactive ones, another team's and another org's."""
    return [
        BudgetFactory(organization=world.org, name="org"),
        BudgetFactory(organization=world.org, name="org, paused", is_active=False),
        team_budget(world.alpha, name="alpha"),
        team_budget(world.alpha, name="alpha, second", limit=Decimal("5")),
        team_budget(world.beta, name="beta"),
        user_budget(world.bob, name="bob"),
        user_budget(world.carol, name="carol"),
        BudgetFactory(organization=world.other_org, name="elsewhere"),
        team_budget(world.other_team, name="other team"),
    ]


def _principals(world):
    return {
        "bob (member of alpha)": principal_for_user(world.bob),
        "carol (member of beta)": principal_for_user(world.carol),
        "alpha's service key": principal_for_api_key(make_api_key(team=world.alpha)[0]),
        "bob's personal key": principal_for_api_key(make_api_key(user=world.bob)[0]),
        "another organization": principal_for_user(world.omar),
    }


def test_chain_status_reads_the_budgets_chain_budgets_names_in_its_order(world, budgets):
    for who, principal in _principals(world).items():
        expected = list(
            chain_budgets(organization=principal.organization, team=principal.team, user=principal.user)
        )
        read = [report.budget for report in chain_status(principal=principal).budgets]
        assert [b.pk for b in read] == [b.pk for b in expected], who
        assert expected, who  # every principal here is bound by at least its organization's budget


def test_each_budget_is_judged_on_its_own_period_and_thresholds(world, budgets):
    bob = principal_for_user(world.bob)
    reservation_authorize(principal=bob, request_id="r1", amount=Decimal("4"))  # 80% of "alpha, second"
    status = chain_status(principal=bob)
    for report in status.budgets:
        alone = budget_status(budget=Budget.objects.get(pk=report.budget.pk))  # the ORM's reads
        assert (report.reserved, report.limit, report.active_alerts, report.status) == (
            alone.reserved,
            alone.limit,
            alone.active_alerts,
            alone.status,
        ), report.budget.name
    crossed = {report.budget.name: report.active_alerts for report in status.budgets if report.active_alerts}
    assert list(crossed) == ["alpha, second"]
