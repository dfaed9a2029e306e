"""Keyboard users and the dashboard's polling: the poll swaps the figures, not the alert buttons,
so the focus stays where it was and Enter acknowledges the alert; while the focus is inside the
figures, a poll tick is skipped. Playwright's clock runs the 30-second timer at once."""

from decimal import Decimal

from budgets.models import Alert
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import team_budget
from tests.e2e.conftest import log_in

POLL_MS = 31_000


def _spend(user, request_id: str, cost: str) -> None:
    usage_record_many(
        principal=principal_for_user(user),
        reports=[UsageReport(request_id=request_id, cost=Decimal(cost), model="good")],
    )


def _focused(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.textContent.trim() : ''")


def test_polling_keeps_the_focus_and_enter_acknowledges_the_alert(world, page, shot):
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    _spend(world.bob, "bob-1", "60")  # crosses the 50% threshold: one open alert
    alert = Alert.objects.get(budget=budget, threshold=50)
    page.clock.install()
    log_in(page, "alice")
    numbers = page.locator("#numbers")
    assert "Spent 60.00" in numbers.inner_text()

    for _ in range(40):  # the keyboard way to the button
        page.keyboard.press("Tab")
        if _focused(page) == "Acknowledge":
            break
    assert _focused(page) == "Acknowledge"

    _spend(world.bob, "bob-2", "5")
    page.clock.run_for(POLL_MS)
    page.locator("#numbers", has_text="Spent 65.00").wait_for()  # the poll did swap the figures
    assert _focused(page) == "Acknowledge"

    page.keyboard.press("Enter")
    page.locator(f"#alert-{alert.pk}", has_text="Acknowledged by alice").wait_for()
    shot(page, "acknowledged-while-polling")
    alert.refresh_from_db()
    assert alert.acknowledged_by == world.alice


def test_a_poll_tick_waits_while_the_focus_is_inside_the_figures(world, page):
    team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    _spend(world.bob, "bob-1", "10")
    page.clock.install()
    log_in(page, "alice")
    link = page.locator("#numbers").get_by_role("link", name="Alpha monthly")
    link.focus()

    _spend(world.bob, "bob-2", "5")
    page.clock.run_for(POLL_MS)
    page.wait_for_timeout(500)  # a poll would have answered by now
    assert "Spent 10.00" in page.locator("#numbers").inner_text()
    assert _focused(page) == "Alpha monthly"

    page.keyboard.press("Shift+Tab")  # leave the figures
    page.clock.run_for(POLL_MS)
    page.locator("#numbers", has_text="Spent 15.00").wait_for()
