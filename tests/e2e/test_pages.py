"""The web UI in a real browser: log in and see the dashboard, an inline form error, approving an
override without a page reload, and the selection simulator answering as you type."""

from decimal import Decimal

import pytest

from approvals.models import OverrideState
from approvals.services import override_request
from budgets.models import Budget
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.approvals.factories import extension_ask
from tests.budgets.factories import BudgetFactory, team_budget, user_budget
from tests.e2e.conftest import log_in
from tests.models_registry.factories import ModelProfileFactory


@pytest.fixture
def acme(world):
    budgets = {
        "org": BudgetFactory(organization=world.org, name="Acme monthly", limit=Decimal("1000")),
        "alpha": team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100")),
        "bob": user_budget(world.bob, name="Bob allowance", limit=Decimal("20")),
    }
    usage_record_many(
        principal=principal_for_user(world.bob),
        reports=[
            UsageReport(request_id="bob-1", cost=Decimal("12.50"), model="standard"),
            UsageReport(request_id="bob-2", cost=Decimal("3.10"), model="good"),
        ],
    )
    return budgets


def test_log_in_and_see_the_dashboard(world, acme, page, shot):
    page.goto("/dashboard/")
    assert "/accounts/login/" in page.url  # pages need a login

    log_in(page, "alice")

    assert page.get_by_role("heading", name="Dashboard").is_visible()
    tree = page.get_by_role("region", name="Budgets")
    assert tree.get_by_role("link", name="Alpha monthly").is_visible()
    assert tree.get_by_role("link", name="Bob allowance").is_visible()
    assert page.get_by_role("link", name="Acme monthly").count() == 0  # a lead sees her team only
    assert page.get_by_role("region", name="Open alerts").get_by_text("Threshold crossed").count() >= 1
    assert page.locator("svg[aria-label='Spend by model']").is_visible()
    assert page.get_by_role("link", name="Approvals").is_visible()
    shot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 844})
    assert tree.get_by_role("link", name="Alpha monthly").is_visible()
    shot(page, "dashboard-phone")

    page.goto(f"/budgets/{acme['alpha'].pk}/")
    assert page.get_by_role("img", name="Daily spend this period").is_visible()
    shot(page, "budget-detail")


def test_a_bad_limit_shows_an_inline_error(world, acme, page, shot):
    log_in(page, "fiona")
    page.get_by_role("link", name="Budgets").click()
    page.get_by_role("link", name="New budget").click()

    page.get_by_label("Name", exact=True).fill("Beta monthly")
    page.get_by_label("Scope", exact=True).select_option(label="Team: Beta")
    page.get_by_label("Limit", exact=True).fill("-5")
    page.get_by_role("button", name="Create budget").click()

    error = page.locator("#id_limit_error")
    assert "greater than or equal to 0" in error.inner_text()
    assert page.get_by_label("Limit", exact=True).get_attribute("aria-invalid") == "true"
    shot(page, "budget-form-error")
    assert not Budget.objects.filter(name="Beta monthly").exists()

    page.get_by_label("Limit", exact=True).fill("75")
    page.get_by_role("button", name="Create budget").click()
    page.get_by_role("heading", name="Beta monthly").wait_for()
    assert Budget.objects.get(name="Beta monthly").limit == Decimal("75")


def test_approving_an_override_updates_the_queue_in_place(world, acme, page, shot):
    override = override_request(
        principal=principal_for_user(world.bob), budget_id=acme["alpha"].pk, ask=extension_ask(Decimal("30"))
    )
    log_in(page, "alice")
    page.get_by_role("link", name="Approvals").click()
    assert page.locator("#pending-count").inner_text() == "1"
    shot(page, "queue")
    page.evaluate("window.notReloaded = true")

    row = page.locator(f"#override-{override.pk}")
    row.get_by_label("Comment").fill("go ahead")
    row.get_by_role("button", name="Approve").click()

    page.locator(f"#override-{override.pk}", has_text="Approved").wait_for()
    assert page.locator("#pending-count").inner_text() == "0"
    assert page.evaluate("window.notReloaded") is True  # swapped by HTMX, no full reload
    assert page.locator(f"#override-{override.pk}").get_by_role("button", name="Approve").count() == 0
    shot(page, "queue-approved")
    override.refresh_from_db()
    assert override.state == OverrideState.APPROVED


def test_the_simulator_answers_as_you_type(world, acme, page, shot):
    for model_id, price, score in [("premium", "15", 95), ("standard", "2.5", 88), ("good", "0.15", 80)]:
        ModelProfileFactory(
            id=model_id,
            input_price_per_million=Decimal(price),
            output_price_per_million=Decimal(price) * 4,
            quality_scores=dict.fromkeys(["chat", "code", "reasoning", "summarization"], score),
        )
    log_in(page, "bob")
    page.get_by_role("link", name="Simulator").click()
    page.locator("[data-testid=selected-model]").wait_for()  # the sample request, on load

    page.get_by_label("Strategy").select_option("quality_first")
    page.get_by_label("Messages").fill("user: Prove that there are infinitely many primes, step by step.")

    page.locator("#result", has_text="Scores").wait_for()
    chosen = page.locator("[data-testid=selected-model]").inner_text()
    assert chosen in {"premium", "standard", "good"}
    assert page.locator("#result table tbody tr").count() >= 2  # the alternatives with their scores
    shot(page, "simulator")
