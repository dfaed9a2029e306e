"""`/api/v1/budgets`: create (seed 001 body), read, update, archive, list with filters and pages."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import simplejson

from budgets.choices import PeriodKind, ScopeType
from budgets.models import Budget, BudgetPeriod, Threshold
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget, user_budget
from tests.conftest import client_for

URL = "/api/v1/budgets"


def seed_body(world) -> dict:
    """The seed-001 `POST /api/v1/budgets` example, with our integer scope id."""
    return {
        "name": "Q3 AI Development",
        "scopeType": "team",
        "scopeId": world.alpha.pk,
        "limit": 10000.00,
        "period": "quarterly",
        "startDate": "2025-07-01T00:00:00Z",
        "alerts": [
            {"threshold": 50, "actions": ["notify"]},
            {"threshold": 80, "actions": ["notify", "restrict-models"]},
            {"threshold": 95, "actions": ["notify", "restrict-models", "require-approval"]},
        ],
    }


def exact(response) -> dict:
    """The JSON body with numbers read as Decimal, so no float rounding hides a wrong digit."""
    return simplejson.loads(response.content, parse_float=Decimal)


# --- create ---------------------------------------------------------------------------------------


def test_it_creates_a_budget_from_the_seed_body(world):
    response = client_for(world.fiona).post(URL, seed_body(world), format="json")

    assert response.status_code == 201, response.content
    body = exact(response)
    budget = Budget.objects.get(pk=body["id"])
    assert body == {
        "id": budget.pk,
        "name": "Q3 AI Development",
        "scopeType": "team",
        "scopeId": world.alpha.pk,
        "scopeName": "Alpha",
        "period": "quarterly",
        "limit": 10000,
        "currency": "USD",
        "startDate": "2025-07-01T00:00:00Z",
        "endDate": None,
        "alerts": [
            {"threshold": 50, "actions": ["notify"]},
            {"threshold": 80, "actions": ["notify", "restrict-models"]},
            {"threshold": 95, "actions": ["notify", "restrict-models", "require-approval"]},
        ],
        "restrictedModels": [],
        "maxCostPerRequest": None,
        "carryOver": "none",
        "carryOverCap": None,
        "isActive": True,
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
    }
    assert (budget.team_id, budget.user_id, budget.organization_id) == (world.alpha.pk, None, world.org.pk)
    assert budget.limit == Decimal("10000")
    assert budget.starts_at == datetime(2025, 7, 1, tzinfo=UTC)
    assert [(t.percent, t.actions) for t in budget.thresholds.all()] == [
        (Decimal(50), ["notify"]),
        (Decimal(80), ["notify", "restrict-models"]),
        (Decimal(95), ["notify", "restrict-models", "require-approval"]),
    ]


def test_a_budget_without_alerts_gets_the_default_thresholds(world):
    body = {"name": "Org monthly", "scopeType": "organization", "scopeId": world.org.pk, "limit": 500}

    response = client_for(world.fiona).post(URL, body, format="json")

    assert response.status_code == 201, response.content
    assert [a["threshold"] for a in response.json()["alerts"]] == [50, 70, 85, 95, 100]
    assert response.json()["period"] == "monthly"


def test_it_accepts_restrictions_and_a_custom_period(world):
    body = {
        "name": "Launch week",
        "scopeType": "user",
        "scopeId": world.bob.pk,
        "limit": "250.5",
        "period": "custom",
        "startDate": "2026-03-02T00:00:00Z",
        "endDate": "2026-03-09T00:00:00Z",
        "restrictedModels": ["gpt-4-turbo", "claude-3-opus"],
        "maxCostPerRequest": 0.5,
    }

    response = client_for(world.fiona).post(URL, body, format="json")

    assert response.status_code == 201, response.content
    body = exact(response)
    assert body["limit"] == Decimal("250.5")
    assert body["endDate"] == "2026-03-09T00:00:00Z"
    assert body["restrictedModels"] == ["gpt-4-turbo", "claude-3-opus"]
    assert body["maxCostPerRequest"] == Decimal("0.5")
    assert body["scopeName"] == "bob"


def test_a_team_lead_manages_her_members_user_budgets_but_not_her_team_budget(world):
    alice = client_for(world.alice)
    user_body = {"name": "Bob", "scopeType": "user", "scopeId": world.bob.pk, "limit": 20}
    team_body = {"name": "Alpha", "scopeType": "team", "scopeId": world.alpha.pk, "limit": 20}

    assert alice.post(URL, user_body, format="json").status_code == 201
    refused = alice.post(URL, team_body, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert Budget.objects.count() == 1


def test_a_read_only_member_may_not_create_budgets(world):
    response = client_for(world.bob).post(URL, seed_body(world), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not Budget.objects.exists()


def test_an_outsider_cannot_see_the_scope(world):
    response = client_for(world.omar).post(URL, seed_body(world), format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_scope"
    assert not Budget.objects.exists()


# --- read -----------------------------------------------------------------------------------------


def test_it_shows_one_budget(world):
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("123.456"))

    response = client_for(world.bob).get(f"{URL}/{budget.pk}")

    assert response.status_code == 200
    body = exact(response)
    assert (body["id"], body["name"], body["limit"]) == (budget.pk, "Alpha monthly", Decimal("123.456"))
    assert len(body["alerts"]) == 5


def test_a_budget_outside_the_callers_scopes_is_not_found(world):
    budget = team_budget(world.beta)

    assert client_for(world.bob).get(f"{URL}/{budget.pk}").status_code == 404
    assert client_for(world.omar).get(f"{URL}/{budget.pk}").json()["code"] == "not_found"


# --- update ---------------------------------------------------------------------------------------


@pytest.fixture
def spent_budget(world, time_machine):
    """Team alpha's monthly budget of 100, with 30 spent in March 2026 and 80 in February (closed)."""
    time_machine.move_to("2026-03-15T12:00:00Z", tick=False)
    budget = team_budget(world.alpha, limit=Decimal("100"))
    principal = principal_for_user(world.bob)
    usage_record_many(
        principal=principal,
        reports=[
            UsageReport(request_id="feb", cost=Decimal("80"), occurred_at=datetime(2026, 2, 10, tzinfo=UTC)),
            UsageReport(request_id="mar", cost=Decimal("30"), occurred_at=datetime(2026, 3, 10, tzinfo=UTC)),
        ],
    )
    return budget


def test_a_new_limit_applies_to_the_open_period_but_not_to_closed_ones(world, spent_budget):
    response = client_for(world.fiona).patch(f"{URL}/{spent_budget.pk}", {"limit": 40.25}, format="json")

    assert response.status_code == 200, response.content
    assert exact(response)["limit"] == Decimal("40.25")
    march = BudgetPeriod.objects.get(budget=spent_budget, starts_at=datetime(2026, 3, 1, tzinfo=UTC))
    february = BudgetPeriod.objects.get(budget=spent_budget, starts_at=datetime(2026, 2, 1, tzinfo=UTC))
    assert (march.limit, march.spent) == (Decimal("40.25"), Decimal("30"))
    assert (february.limit, february.spent) == (Decimal("100"), Decimal("80"))
    status = exact(client_for(world.fiona).get(f"{URL}/{spent_budget.pk}/status"))
    assert (status["limit"], status["remaining"]) == (Decimal("40.25"), Decimal("10.25"))


def test_patch_changes_only_the_fields_sent_and_replaces_alerts(world):
    budget = team_budget(world.alpha, name="Old", limit=Decimal("100"))
    body = {"name": "New", "alerts": [{"threshold": 90, "actions": ["notify", "block"]}]}

    response = client_for(world.fiona).patch(f"{URL}/{budget.pk}", body, format="json")

    assert response.status_code == 200, response.content
    body = exact(response)
    assert (body["name"], body["limit"]) == ("New", Decimal("100"))
    assert body["alerts"] == [{"threshold": 90, "actions": ["notify", "block"]}]
    assert list(Threshold.objects.filter(budget=budget).values_list("percent", flat=True)) == [Decimal(90)]


def test_scope_and_period_cannot_change_after_creation(world):
    budget = team_budget(world.alpha)

    response = client_for(world.fiona).patch(f"{URL}/{budget.pk}", {"period": "daily"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "period" in response.json()["message"]
    budget.refresh_from_db()
    assert budget.period == PeriodKind.MONTHLY


def test_a_read_only_member_may_not_update(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))

    response = client_for(world.bob).patch(f"{URL}/{budget.pk}", {"limit": 1}, format="json")

    assert response.status_code == 403
    budget.refresh_from_db()
    assert budget.limit == Decimal("100")


# --- archive --------------------------------------------------------------------------------------


def test_delete_archives_and_keeps_the_row(world, spent_budget):
    fiona = client_for(world.fiona)

    response = fiona.delete(f"{URL}/{spent_budget.pk}")

    assert response.status_code == 204
    spent_budget.refresh_from_db()
    assert spent_budget.is_active is False
    assert BudgetPeriod.objects.filter(budget=spent_budget).count() == 2
    assert fiona.get(f"{URL}/{spent_budget.pk}").json()["isActive"] is False
    # Archived budgets no longer count against new spend.
    usage_record_many(
        principal=principal_for_user(world.bob), reports=[UsageReport(request_id="after", cost=Decimal("5"))]
    )
    march = BudgetPeriod.objects.get(budget=spent_budget, starts_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert march.spent == Decimal("30")


def test_a_read_only_member_may_not_archive(world):
    budget = team_budget(world.alpha)

    assert client_for(world.bob).delete(f"{URL}/{budget.pk}").status_code == 403
    budget.refresh_from_db()
    assert budget.is_active


# --- list -----------------------------------------------------------------------------------------


@pytest.fixture
def many_budgets(world):
    return {
        "org": BudgetFactory(organization=world.org, name="A org"),
        "alpha": team_budget(world.alpha, name="B alpha"),
        "beta": team_budget(world.beta, name="C beta"),
        "bob": user_budget(world.bob, name="D bob"),
        "archived": team_budget(world.alpha, name="E archived", is_active=False),
        "outside": BudgetFactory(organization=world.other_org, name="F outside"),
    }


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(b["name"] for b in response.json()["results"])


def test_the_list_shows_what_the_caller_may_see(world, many_budgets):
    assert _names(client_for(world.fiona).get(URL)) == ["A org", "B alpha", "C beta", "D bob", "E archived"]
    assert _names(client_for(world.bob).get(URL)) == ["B alpha", "D bob", "E archived"]
    assert _names(client_for(world.omar).get(URL)) == ["F outside"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("scopeType=team", ["B alpha", "C beta", "E archived"]),
        ("scopeType=organization", ["A org"]),
        ("isActive=false", ["E archived"]),
        ("isActive=False", ["E archived"]),
        ("scopeType=team&isActive=true", ["B alpha", "C beta"]),
        ("scope_type=user", ["D bob"]),
    ],
)
def test_the_list_filters_by_scope_type_and_activity(world, many_budgets, query, expected):
    assert _names(client_for(world.fiona).get(f"{URL}?{query}")) == expected


@pytest.mark.parametrize("query", ["scopeType=galaxy", "isActive=maybe"])
def test_an_unknown_filter_value_is_a_json_error(world, many_budgets, query):
    response = client_for(world.fiona).get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert query.split("=")[1] in response.json()["message"]


def test_the_list_is_paginated(world, many_budgets):
    fiona = client_for(world.fiona)

    first = fiona.get(f"{URL}?pageSize=2").json()
    second = fiona.get(f"{URL}?pageSize=2&page=2").json()
    last = fiona.get(f"{URL}?pageSize=2&page=3").json()

    assert first["count"] == 5
    assert len(first["results"]) == len(second["results"]) == 2
    assert len(last["results"]) == 1 and last["next"] is None
    seen = [b["id"] for page in (first, second, last) for b in page["results"]]
    assert sorted(seen) == sorted(b.pk for k, b in many_budgets.items() if k != "outside")
    assert fiona.get(f"{URL}?page=4").status_code == 404


def test_the_list_runs_a_fixed_number_of_queries(world, many_budgets, django_assert_num_queries):
    """Principal, count, page, thresholds: four queries however many budgets there are."""
    fiona = client_for(world.fiona)
    with django_assert_num_queries(4):
        assert fiona.get(URL).json()["count"] == 5
    for n in range(10):
        user_budget(world.carol, name=f"carol {n}")
    with django_assert_num_queries(4):
        response = fiona.get(URL)
    assert response.json()["count"] == 15
    assert ScopeType.ORGANIZATION in {b["scopeType"] for b in response.json()["results"]}
