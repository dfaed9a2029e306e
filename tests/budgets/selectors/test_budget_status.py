"""Budget status figures (seed 000) and scope status (seed 001) on fixed data with a frozen clock.

Hand-computed: a quarterly budget from 2026-01-01 (UTC), seen at 2026-02-15 00:00 UTC, has run
45 days (31 of January + 14 of February) and has 45 days left (14 of February + 31 of March).
4500 spent -> burn rate 4500 / 45 = 100 a day -> projected 4500 + 100 * 45 = 9000, as in seed 000.
"""

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest
import simplejson

from budgets.choices import DEFAULT_THRESHOLDS, PeriodKind, ScopeType
from budgets.principals import principal_for_user
from budgets.selectors import budget_status
from budgets.services.budgets import ThresholdSpec
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget
from tests.conftest import client_for

NOW = "2026-02-15T00:00:00Z"
RESTRICTED = ["gpt-4-turbo", "claude-3-opus"]
_request_ids = count()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spend(world, amount, at: datetime, *, team=None) -> None:
    """Record `amount` for a team (alpha by default) at `at`, as finance reporting for it."""
    usage_record_many(
        principal=principal_for_user(world.fiona),
        reports=[
            UsageReport(
                request_id=f"spend-{next(_request_ids)}",
                cost=Decimal(amount),
                model="m",
                occurred_at=at,
                team_id=(team or world.alpha).pk,
            )
        ],
    )


def exact(response) -> dict:
    assert response.status_code == 200, response.content
    return simplejson.loads(response.content, parse_float=Decimal)


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def quarterly(world, frozen):
    """Team alpha: 10000 a quarter from 2026-01-01, default thresholds, models to restrict, a ceiling."""
    return team_budget(
        world.alpha,
        name="Q1 AI",
        period=PeriodKind.QUARTERLY,
        limit=Decimal("10000"),
        starts_at=utc(2026, 1, 1),
        restricted_models=RESTRICTED,
        max_cost_per_request=Decimal("0.5"),
    )


# --- the seed 000 figures -------------------------------------------------------------------------


def test_status_figures_match_the_seed_example(world, quarterly):
    spend(world, "1500", utc(2026, 1, 5, 10))
    spend(world, "3000", utc(2026, 2, 10, 23, 59))
    spend(world, "999", utc(2025, 12, 31, 23, 59))  # before the budget starts: not charged to it

    report = budget_status(budget=quarterly)

    assert (report.period_start, report.period_end) == (utc(2026, 1, 1), utc(2026, 4, 1))
    assert report.current_amount == Decimal("4500")
    assert report.limit == Decimal("10000")
    assert report.reserved == Decimal("0")
    assert report.percent_used == Decimal("45")
    assert report.percent_committed == Decimal("45")
    assert report.remaining == Decimal("5500")
    assert report.days_remaining == 45
    assert report.burn_rate == Decimal("100")
    assert report.projected_total == Decimal("9000")
    assert report.status == "normal"
    assert report.active_alerts == []
    assert report.last_updated == utc(2026, 2, 15)


def test_the_status_endpoint_speaks_the_seed_contract(world, quarterly):
    spend(world, "4500", utc(2026, 2, 1))

    body = exact(client_for(world.bob).get(f"/api/v1/budgets/{quarterly.pk}/status"))

    seed = {
        "budgetId": quarterly.pk,
        "currentAmount": 4500,
        "limit": 10000,
        "currency": "USD",
        "percentUsed": 45,
        "remaining": 5500,
        "daysRemaining": 45,
        "burnRate": 100,
        "projectedTotal": 9000,
        "status": "normal",
        "activeAlerts": [],
    }
    assert {key: body[key] for key in seed} == seed
    assert body["reserved"] == 0 and body["percentCommitted"] == 45
    assert (body["periodStart"], body["periodEnd"]) == ("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z")
    assert body["lastUpdated"] == "2026-02-15T00:00:00Z"
    assert body["costRestrictions"]["restrictedModels"] == []


def test_status_of_a_budget_outside_the_callers_scopes_is_not_found(world, quarterly):
    response = client_for(world.carol).get(f"/api/v1/budgets/{quarterly.pk}/status")

    assert response.status_code == 404
    assert client_for(world.omar).get(f"/api/v1/budgets/{quarterly.pk}/status").status_code == 404


def test_burn_rate_and_projection_are_exact_decimals(world, quarterly, frozen):
    """At noon: 45.5 days run, 44.5 left. burn = 4500 / 45.5 = 98.901098901|0989 -> 98.901098901;
    projection = 4500 + 98.901098901 * 44.5 = 8901.098901094|5 -> 8901.098901094 (half-even)."""
    spend(world, "4500", utc(2026, 2, 1))
    frozen.move_to("2026-02-15T12:00:00Z", tick=False)

    report = budget_status(budget=quarterly)

    assert report.burn_rate == Decimal("98.901098901")
    assert report.projected_total == Decimal("8901.098901094")
    assert report.days_remaining == 45  # 44.5 days, rounded up


def test_an_empty_period_burns_nothing(world, quarterly):
    report = budget_status(budget=quarterly)

    assert (report.current_amount, report.burn_rate, report.projected_total) == (0, 0, 0)
    assert (report.percent_used, report.remaining, report.status) == (0, Decimal("10000"), "normal")


def test_a_monthly_budget_follows_the_organizations_time_zone(world, frozen):
    """New York: February runs from 2026-02-01 05:00 UTC to 2026-03-01 05:00 UTC (EST, UTC-5).
    At 2026-03-01 03:00 UTC it is still February 28, 22:00 there: 27 days 22 hours = 670 h run,
    2 h left. 670 spent -> burn 670 / (670/24) = 24 a day -> projected 670 + 24 * 2/24 = 672."""
    world.org.timezone = "America/New_York"
    world.org.save()
    budget = team_budget(world.alpha, limit=Decimal("1000"), starts_at=utc(2026, 1, 1, 5))
    frozen.move_to("2026-03-01T03:00:00Z", tick=False)
    spend(world, "50", utc(2026, 2, 1, 4, 59))  # January 31, 23:59 in New York
    spend(world, "600", utc(2026, 2, 1, 5))  # February 1, 00:00 in New York
    spend(world, "70", utc(2026, 3, 1, 2, 59))  # February 28, 21:59 in New York

    report = budget_status(budget=budget)

    assert (report.period_start, report.period_end) == (utc(2026, 2, 1, 5), utc(2026, 3, 1, 5))
    assert report.current_amount == Decimal("670")
    assert report.burn_rate == Decimal("24")
    assert report.projected_total == Decimal("672")
    assert report.days_remaining == 1
    assert report.percent_used == Decimal("67")

    # March (New York) starts at 05:00 UTC and, DST starting on March 8, ends at 04:00 UTC on April 1.
    frozen.move_to("2026-03-01T06:00:00Z", tick=False)
    spend(world, "5", utc(2026, 3, 1, 5, 30))
    march = budget_status(budget=budget)

    assert (march.period_start, march.period_end) == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))
    assert march.current_amount == Decimal("5")
    # One hour in, the burn rate is spend over at least one day: 5 a day. 30 days 22 hours are left:
    # 5 + 5 * 742/24 = 159.58333333|33 -> 159.583333333.
    assert march.burn_rate == Decimal("5")
    assert march.projected_total == Decimal("159.583333333")
    assert march.days_remaining == 31


# --- status bands, alerts and restrictions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spent", "status", "percent", "crossed"),
    [
        ("0", "normal", "0", []),
        ("4999.99", "normal", "49.99", []),  # 49.9999% has not reached the 50% threshold
        ("4999.999999999", "normal", "49.99", []),
        ("5000", "warning", "50", [50]),
        ("6999.99", "warning", "69.99", [50]),
        ("7000", "warning", "70", [50, 70]),
        ("8499.99", "warning", "84.99", [50, 70]),
        ("8500", "critical", "85", [50, 70, 85]),
        ("9499.99", "critical", "94.99", [50, 70, 85]),
        ("9500", "critical", "95", [50, 70, 85, 95]),
        ("9999.99", "critical", "99.99", [50, 70, 85, 95]),  # a cent left is not exhausted
        ("10000", "exhausted", "100", [50, 70, 85, 95, 100]),
        ("12000", "exhausted", "120", [50, 70, 85, 95, 100]),
    ],
)
def test_status_bands_follow_the_default_thresholds(world, quarterly, spent, status, percent, crossed):
    if spent != "0":
        spend(world, spent, utc(2026, 2, 1))

    report = budget_status(budget=quarterly)

    assert report.status == status
    assert report.percent_used == Decimal(percent)
    assert [alert["threshold"] for alert in report.active_alerts] == crossed
    assert report.remaining == Decimal("10000") - Decimal(spent)


def test_active_alerts_list_the_crossed_thresholds_with_their_actions(world, quarterly):
    spend(world, "9000", utc(2026, 2, 1))

    body = exact(client_for(world.fiona).get(f"/api/v1/budgets/{quarterly.pk}/status"))

    assert body["status"] == "critical"
    assert body["activeAlerts"] == [
        {"threshold": percent, "actions": list(actions)} for percent, actions in DEFAULT_THRESHOLDS[:3]
    ]


@pytest.mark.parametrize(
    ("spent", "expected"),
    [
        ("4000", {}),
        ("7200", {"modelDowngrading": True}),
        ("9000", {"modelDowngrading": True, "restrictedModels": RESTRICTED, "requireApproval": True}),
        (
            "9600",
            {
                "modelDowngrading": True,
                "restrictedModels": RESTRICTED,
                "requireApproval": True,
                "maxCostPerRequest": Decimal("0.5"),
                "blockNonEssential": True,
            },
        ),
        (
            "10000",
            {
                "modelDowngrading": True,
                "restrictedModels": RESTRICTED,
                "requireApproval": True,
                "maxCostPerRequest": Decimal("0.5"),
                "blockNonEssential": True,
                "blocked": True,
            },
        ),
    ],
)
def test_cost_restrictions_tighten_as_thresholds_are_crossed(world, quarterly, spent, expected):
    spend(world, spent, utc(2026, 2, 1))

    body = exact(client_for(world.fiona).get(f"/api/v1/budgets/{quarterly.pk}/status"))

    nothing = {
        "modelDowngrading": False,
        "restrictedModels": [],
        "maxCostPerRequest": None,
        "requireApproval": False,
        "blockNonEssential": False,
        "blocked": False,
    }
    assert body["costRestrictions"] == {**nothing, **expected}


def test_a_budget_may_redefine_its_thresholds(world, frozen):
    budget = team_budget(
        world.alpha,
        limit=Decimal("100"),
        restricted_models=["o1"],
        thresholds=[
            ThresholdSpec(Decimal("60"), ("notify", "restrict-models")),
            ThresholdSpec(Decimal("90"), ("strict-cost-limit",)),
        ],
    )
    spend(world, "65", utc(2026, 2, 1))

    report = budget_status(budget=budget)

    assert report.status == "critical"
    assert report.active_alerts == [{"threshold": Decimal(60), "actions": ["notify", "restrict-models"]}]
    assert report.cost_restrictions["restricted_models"] == ["o1"]
    spend(world, "30", utc(2026, 2, 2))
    # strict-cost-limit crossed, but this budget sets no ceiling.
    assert budget_status(budget=budget).cost_restrictions["max_cost_per_request"] is None


def test_reserved_counts_in_percent_committed_but_not_in_percent_used(world, quarterly):
    spend(world, "4500", utc(2026, 2, 1))
    reservation_authorize(principal=principal_for_user(world.bob), request_id="hold", amount=Decimal("1000"))

    report = budget_status(budget=quarterly)

    assert report.current_amount == Decimal("4500")
    assert report.reserved == Decimal("1000")
    assert report.percent_used == Decimal("45")
    assert report.percent_committed == Decimal("55")
    assert report.remaining == Decimal("4500")
    assert report.burn_rate == Decimal("100")  # holds are not spend
    assert report.status == "warning"
    assert [alert["threshold"] for alert in report.active_alerts] == [50]


# --- scope status (seed 001) ----------------------------------------------------------------------


@pytest.fixture
def scopes(world, quarterly):
    """Org 2000/month at 90.5% (critical), alpha's quarter at 18% (normal), beta at 100% (exhausted),
    and an archived, overspent alpha budget that no longer counts."""
    org = BudgetFactory(
        organization=world.org,
        name="Acme monthly",
        limit=Decimal("2000"),
        starts_at=utc(2026, 1, 1),
        restricted_models=["o1"],
        max_cost_per_request=Decimal("0.25"),
    )
    beta = team_budget(world.beta, name="Beta monthly", limit=Decimal("10"), starts_at=utc(2026, 1, 1))
    archived = team_budget(world.alpha, name="Old alpha", limit=Decimal("1"), starts_at=utc(2026, 1, 1))
    spend(world, "1800", utc(2026, 2, 3))
    spend(world, "10", utc(2026, 2, 4), team=world.beta)
    archived.is_active = False
    archived.save()
    return {"org": org, "alpha": quarterly, "beta": beta, "archived": archived}


def test_a_teams_status_includes_its_organizations_budget(world, scopes):
    body = exact(client_for(world.bob).get(f"/api/v1/budgets/status/team/{world.alpha.pk}"))

    assert (body["scopeType"], body["scopeId"]) == ("team", world.alpha.pk)
    assert [b["id"] for b in body["budgets"]] == [scopes["alpha"].pk]
    alpha = body["budgets"][0]
    assert {
        key: alpha[key] for key in ("name", "period", "limit", "currentSpend", "percentUsed", "status")
    } == {
        "name": "Q1 AI",
        "period": "quarterly",
        "limit": 10000,
        "currentSpend": 1800,
        "percentUsed": 18,
        "status": "normal",
    }
    assert alpha["lastUpdated"] == "2026-02-15T00:00:00Z"
    assert body["aggregateStatus"] == "critical"  # the organization's 90.5%
    assert body["costRestrictions"] == {
        "modelDowngrading": True,
        "restrictedModels": ["o1"],
        "maxCostPerRequest": None,
        "requireApproval": True,
        "blockNonEssential": False,
        "blocked": False,
    }


def test_another_teams_exhausted_budget_does_not_leak_into_a_scope(world, scopes):
    beta = exact(client_for(world.fiona).get(f"/api/v1/budgets/status/team/{world.beta.pk}"))
    org = exact(client_for(world.fiona).get(f"/api/v1/budgets/status/organization/{world.org.pk}"))

    assert (beta["aggregateStatus"], beta["costRestrictions"]["blocked"]) == ("exhausted", True)
    assert [b["id"] for b in org["budgets"]] == [scopes["org"].pk]
    assert org["budgets"][0]["percentUsed"] == Decimal("90.5")
    assert org["aggregateStatus"] == "critical"


def test_a_users_status_includes_team_and_organization(world, scopes):
    body = exact(client_for(world.bob).get(f"/api/v1/budgets/status/user/{world.bob.pk}"))

    assert (body["scopeType"], body["budgets"], body["aggregateStatus"]) == (ScopeType.USER, [], "critical")


def test_scope_status_is_limited_to_what_the_caller_sees(world, scopes):
    bob = client_for(world.bob)

    assert bob.get(f"/api/v1/budgets/status/organization/{world.org.pk}").status_code == 404
    assert bob.get(f"/api/v1/budgets/status/team/{world.beta.pk}").status_code == 404
    assert client_for(world.omar).get(f"/api/v1/budgets/status/team/{world.alpha.pk}").status_code == 404
