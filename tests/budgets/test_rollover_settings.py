"""Carry-over settings through the budgets API and admin: exposed, validated, applied from the
next period (an open period's carried amount never changes)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import simplejson
from django.contrib.auth import get_user_model
from django.urls import reverse

from budgets.choices import CarryOver
from budgets.models import Budget, BudgetPeriod
from budgets.services.periods import period_get_or_open
from tests.budgets.factories import team_budget
from tests.conftest import client_for

URL = "/api/v1/budgets"


def body(world, **overrides) -> dict:
    return {
        "name": "Alpha monthly",
        "scopeType": "team",
        "scopeId": world.alpha.pk,
        "limit": 100,
        "period": "monthly",
        **overrides,
    }


def exact(response) -> dict:
    return simplejson.loads(response.content, parse_float=Decimal)


def test_a_budget_is_created_with_a_carry_over_policy_and_cap(world):
    response = client_for(world.fiona).post(
        URL, body(world, carryOver="unused", carryOverCap=25.5), format="json"
    )

    assert response.status_code == 201, response.content
    data = exact(response)
    assert (data["carryOver"], data["carryOverCap"]) == ("unused", Decimal("25.5"))
    budget = Budget.objects.get(pk=data["id"])
    assert (budget.carry_over, budget.carry_over_cap) == (CarryOver.UNUSED, Decimal("25.5"))


def test_without_a_policy_nothing_is_carried(world):
    response = client_for(world.fiona).post(URL, body(world), format="json")

    assert response.status_code == 201, response.content
    assert (exact(response)["carryOver"], exact(response)["carryOverCap"]) == ("none", None)


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"carryOver": "unused", "carryOverCap": -1}, "validation_error", "carryOverCap"),
        ({"carryOver": "all"}, "validation_error", "carryOver"),
        ({"carryOverCap": 10}, "carry_over_cap_without_policy", "carryOverCap"),
        ({"carryOver": "none", "carryOverCap": 10}, "carry_over_cap_without_policy", "carryOverCap"),
        (
            {"carryOver": "unused", "period": "custom", "endDate": "2030-01-01T00:00:00Z"},
            "carry_over_needs_recurring_period",
            "custom period",
        ),
    ],
)
def test_bad_carry_over_settings_are_refused_and_nothing_is_written(world, overrides, code, field):
    response = client_for(world.fiona).post(URL, body(world, **overrides), format="json")

    assert response.status_code == 400, response.content
    data = response.json()
    assert data["code"] == code
    assert field in data["message"]
    assert not Budget.objects.exists()


def test_a_policy_change_applies_from_the_next_period(world, time_machine):
    budget = team_budget(world.alpha, limit=Decimal("100"), starts_at=datetime(2026, 1, 1, tzinfo=UTC))
    time_machine.move_to(datetime(2026, 3, 15, tzinfo=UTC), tick=False)
    march = period_get_or_open(budget=budget, moment=datetime(2026, 3, 15, tzinfo=UTC))
    client = client_for(world.fiona)

    response = client.patch(f"{URL}/{budget.pk}", {"carryOver": "unused", "carryOverCap": 30}, format="json")

    assert response.status_code == 200, response.content
    assert (exact(response)["carryOver"], exact(response)["carryOverCap"]) == ("unused", Decimal("30"))
    march.refresh_from_db()
    assert (march.carried_over, march.limit) == (Decimal("0"), Decimal("100"))
    time_machine.move_to(datetime(2026, 4, 1, tzinfo=UTC) + timedelta(seconds=1), tick=False)
    budget.refresh_from_db()
    april = period_get_or_open(budget=budget, moment=datetime(2026, 4, 2, tzinfo=UTC))
    assert (april.carried_over, april.limit) == (Decimal("30"), Decimal("130"))

    # Dropping the policy while keeping the cap is refused; dropping both is fine.
    refused = client.patch(f"{URL}/{budget.pk}", {"carryOver": "none"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "carry_over_cap_without_policy")
    budget.refresh_from_db()
    assert budget.carry_over == CarryOver.UNUSED
    dropped = client.patch(f"{URL}/{budget.pk}", {"carryOver": "none", "carryOverCap": None}, format="json")
    assert dropped.status_code == 200, dropped.content
    assert BudgetPeriod.objects.get(pk=april.pk).carried_over == Decimal("30")


def test_a_read_only_member_cannot_change_the_policy_and_an_outsider_cannot_see_it(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))

    assert (
        client_for(world.bob).patch(f"{URL}/{budget.pk}", {"carryOver": "unused"}, format="json").status_code
        == 403
    )
    assert (
        client_for(world.omar).patch(f"{URL}/{budget.pk}", {"carryOver": "unused"}, format="json").status_code
        == 404
    )
    budget.refresh_from_db()
    assert budget.carry_over == CarryOver.NONE


@pytest.fixture
def staff_client(client, world):
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(staff)
    return client


def admin_form(world, **overrides) -> dict:
    return {
        "organization": world.org.pk,
        "scope_type": "team",
        "team": world.alpha.pk,
        "user": "",
        "name": "Alpha monthly",
        "period": "monthly",
        "limit": "250",
        "currency": "USD",
        "starts_at_0": "2024-01-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "",
        "ends_at_1": "",
        "restricted_models": "[]",
        "max_cost_per_request": "",
        "carry_over": "unused",
        "carry_over_cap": "40",
        "is_active": "on",
        "thresholds-TOTAL_FORMS": "0",
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
        **overrides,
    }


def test_the_admin_sets_the_policy_and_refuses_a_cap_without_one(staff_client, world):
    add = reverse("admin:budgets_budget_add")

    refused = staff_client.post(add, admin_form(world, carry_over="none"))

    assert refused.status_code == 200
    assert "carry_over_cap" in refused.context["adminform"].form.errors
    assert not Budget.objects.exists()

    created = staff_client.post(add, admin_form(world))

    assert created.status_code == 302, created.context["adminform"].form.errors
    budget = Budget.objects.get()
    assert (budget.carry_over, budget.carry_over_cap) == (CarryOver.UNUSED, Decimal("40"))
