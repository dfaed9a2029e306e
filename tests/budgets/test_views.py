"""Budget pages and the dashboard through the Django test client: who sees what, and forms that
obey the same rules as the API (inline errors, nothing written on a refusal)."""

from decimal import Decimal

import pytest
from django.test import Client

from budgets.choices import ScopeType
from budgets.models import Alert, Budget
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget, user_budget

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def budgets(world):
    return {
        "org": BudgetFactory(organization=world.org, name="Acme monthly", limit=Decimal("1000")),
        "alpha": team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100")),
        "beta": team_budget(world.beta, name="Beta monthly", limit=Decimal("100")),
        "bob": user_budget(world.bob, name="Bob's allowance", limit=Decimal("10")),
        "carol": user_budget(world.carol, name="Carol's allowance", limit=Decimal("10")),
        "outside": team_budget(world.other_team, name="Globex team", limit=Decimal("10")),
    }


def spend(user, request_id: str, cost: str, model: str = "standard") -> None:
    usage_record_many(
        principal=principal_for_user(user),
        reports=[UsageReport(request_id=request_id, cost=Decimal(cost), model=model)],
    )


def form_data(**overrides) -> dict:
    data = {
        "name": "New budget",
        "limit": "50",
        "period": "monthly",
        "carry_over": "none",
        "thresholds-TOTAL_FORMS": "2",
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-0-percent": "80",
        "thresholds-0-actions": ["notify"],
        "thresholds-1-percent": "",
    }
    data.update(overrides)
    return data


def test_pages_need_a_login(world):
    response = Client().get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_home_page_sends_people_to_their_dashboard(world):
    response = login(world.bob).get("/")

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_a_team_lead_sees_only_her_team_on_the_dashboard(world, budgets):
    spend(world.bob, "bob-1", "3", model="good")
    spend(world.carol, "carol-1", "7", model="premium")

    page = login(world.alice).get("/dashboard/").content.decode()

    assert "Alpha monthly" in page and "Bob&#x27;s allowance" in page
    assert "Beta monthly" not in page and "Carol" not in page and "Acme monthly" not in page
    assert "good" in page and "premium" not in page  # spend by model: only what she may see
    assert "Globex" not in page


def test_finance_sees_the_whole_organization(world, budgets):
    spend(world.carol, "carol-1", "7", model="premium")

    page = login(world.fiona).get("/dashboard/").content.decode()

    for name in [
        "Acme monthly",
        "Alpha monthly",
        "Beta monthly",
        "Bob&#x27;s allowance",
        "Carol&#x27;s allowance",
    ]:
        assert name in page
    assert "premium" in page
    assert "Globex" not in page


def test_the_polled_partial_carries_the_current_numbers(world, budgets):
    client = login(world.fiona)
    before = client.get("/dashboard/numbers/", **HTMX).content.decode()
    spend(world.carol, "carol-2", "4.25")

    after = client.get("/dashboard/numbers/", **HTMX).content.decode()

    assert "<html" not in after
    assert "Spent 4.25" not in before and "Spent 4.25" in after


def test_the_navigation_follows_the_role(world):
    assert 'href="/approvals/"' not in login(world.bob).get("/dashboard/").content.decode()
    assert 'href="/approvals/"' in login(world.alice).get("/dashboard/").content.decode()
    finance = login(world.fiona).get("/dashboard/").content.decode()
    assert 'href="/approvals/"' in finance and 'href="/rules/"' in finance


@pytest.mark.parametrize("who", ["alice", "omar"])
def test_budgets_of_other_teams_and_organizations_do_not_exist(world, budgets, who):
    response = login(getattr(world, who)).get(f"/budgets/{budgets['beta'].pk}/")

    assert response.status_code == 404


def test_the_detail_page_shows_chart_usage_and_alerts(world, budgets):
    spend(world.bob, "bob-1", "60", model="good")  # alpha: 60% of 100, crosses the 50% threshold

    response = login(world.alice).get(f"/budgets/{budgets['alpha'].pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Daily spend against the limit" in page
    assert "/decisions/request/bob-1/" in page
    alert = Alert.objects.get(budget=budgets["alpha"], threshold=50)
    assert f'id="alert-{alert.pk}"' in page


def test_the_usage_table_filters_by_model(world, budgets):
    spend(world.bob, "bob-good", "1", model="good")
    spend(world.bob, "bob-weak", "1", model="weak")

    table = (
        login(world.alice).get(f"/budgets/{budgets['alpha'].pk}/usage/?model=weak", **HTMX).content.decode()
    )

    assert "bob-weak" in table and "bob-good" not in table


def test_acknowledging_an_alert_inline(world, budgets):
    spend(world.bob, "bob-1", "60")
    alert = Alert.objects.get(budget=budgets["alpha"], threshold=50)

    response = login(world.alice).post(f"/budgets/alerts/{alert.pk}/acknowledge/", **HTMX)

    assert response.status_code == 200
    assert "Acknowledged by alice" in response.content.decode()
    alert.refresh_from_db()
    assert alert.acknowledged_by == world.alice


def test_finance_creates_a_budget_with_its_thresholds(world):
    response = login(world.fiona).post("/budgets/new/", form_data(scope=f"team:{world.beta.pk}"))

    budget = Budget.objects.get(name="New budget")
    assert response.status_code == 302 and response["Location"] == f"/budgets/{budget.pk}/"
    assert (budget.scope_type, budget.team, budget.limit) == (ScopeType.TEAM, world.beta, Decimal("50"))
    assert [(t.percent, t.actions) for t in budget.thresholds.all()] == [(Decimal("80"), ["notify"])]


def test_a_negative_limit_is_an_inline_error_and_creates_nothing(world):
    response = login(world.fiona).post("/budgets/new/", form_data(scope=f"team:{world.beta.pk}", limit="-5"))

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_limit_error"' in page and "greater than or equal to 0" in page
    assert 'aria-invalid="true"' in page
    assert not Budget.objects.filter(name="New budget").exists()


def test_service_rules_show_on_the_form(world):
    """A custom period needs an end: budget_create says so, the form shows it on that field."""
    response = login(world.fiona).post(
        "/budgets/new/", form_data(scope=f"team:{world.beta.pk}", period="custom")
    )

    assert response.status_code == 400
    assert 'id="id_ends_at_error"' in response.content.decode()
    assert "endDate is required" in response.content.decode()
    assert not Budget.objects.filter(name="New budget").exists()


def test_a_threshold_percent_may_appear_once(world):
    data = form_data(
        scope=f"team:{world.beta.pk}", **{"thresholds-1-percent": "80", "thresholds-1-actions": ["block"]}
    )

    response = login(world.fiona).post("/budgets/new/", data)

    assert response.status_code == 400
    assert "Each threshold percent may appear once." in response.content.decode()


def test_a_lead_creates_budgets_for_her_members_only(world):
    client = login(world.alice)
    form = client.get("/budgets/new/").content.decode()
    assert f'value="user:{world.bob.pk}"' in form
    assert f'value="user:{world.alice.pk}"' not in form and f'value="team:{world.alpha.pk}"' not in form

    response = client.post("/budgets/new/", form_data(scope=f"team:{world.alpha.pk}"))

    assert response.status_code == 400
    assert not Budget.objects.filter(name="New budget").exists()


def test_a_member_manages_no_budgets(world, budgets):
    client = login(world.bob)

    assert client.get("/budgets/new/").status_code == 403
    assert client.post(f"/budgets/{budgets['bob'].pk}/edit/", form_data()).status_code == 403
    budgets["bob"].refresh_from_db()
    assert budgets["bob"].name == "Bob's allowance"


def test_editing_a_budget_goes_through_the_service(world, budgets):
    data = form_data(limit="250", name="Beta bigger", is_active="on")

    response = login(world.fiona).post(f"/budgets/{budgets['beta'].pk}/edit/", data)

    assert response.status_code == 302
    budgets["beta"].refresh_from_db()
    assert (budgets["beta"].name, budgets["beta"].limit) == ("Beta bigger", Decimal("250"))
    assert [t.percent for t in budgets["beta"].thresholds.all()] == [Decimal("80")]
