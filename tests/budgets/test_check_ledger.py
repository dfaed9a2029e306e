from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from budgets.models import BudgetPeriod
from budgets.principals import principal_for_user
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget


@pytest.fixture
def busy_ledger(world):
    BudgetFactory(organization=world.org, limit=Decimal("100"))
    team_budget(world.alpha, limit=Decimal("50"))
    bob = principal_for_user(world.bob)
    usage_record_many(principal=bob, reports=[UsageReport(request_id="u1", cost=Decimal("1.5"), model="m")])
    reservation_authorize(principal=bob, request_id="r1", amount=Decimal("2"))


def test_a_consistent_ledger_has_no_drift(busy_ledger, capsys):
    assert ledger_drift() == []
    call_command("check_ledger")
    assert "consistent" in capsys.readouterr().out


def test_it_reports_a_period_that_disagrees_with_its_charges(busy_ledger):
    period = BudgetPeriod.objects.order_by("pk").first()
    BudgetPeriod.objects.filter(pk=period.pk).update(spent=period.spent + Decimal("0.000000001"))
    drift = ledger_drift()
    assert [(d.period_id, d.charged, d.held) for d in drift] == [(period.pk, Decimal("1.5"), Decimal("2"))]
    with pytest.raises(CommandError, match="1 period"):
        call_command("check_ledger")


def test_it_reports_reserved_that_no_pending_hold_explains(busy_ledger):
    BudgetPeriod.objects.update(reserved=0)
    assert len(ledger_drift()) == 2
