"""The dashboard's polling: the polled partial carries the figures only, so the alert buttons are
never replaced under a keyboard user (the browser check is tests/e2e/test_dashboard_focus.py)."""

from decimal import Decimal

from django.test import Client

from budgets.models import Alert
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import team_budget

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_polled_block_holds_the_figures_and_no_alert_buttons(world):
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    usage_record_many(
        principal=principal_for_user(world.bob),
        reports=[UsageReport(request_id="bob-1", cost=Decimal("60"), model="good")],
    )
    alert = Alert.objects.get(budget=budget, threshold=50)
    client = Client()
    client.force_login(world.alice)

    page = client.get("/dashboard/").content.decode()
    polled = client.get("/dashboard/numbers/", **HTMX).content.decode()

    assert "Spent 60.00" in polled and "Alpha monthly" in polled
    assert f'id="alert-{alert.pk}"' not in polled and "Acknowledge" not in polled
    numbers = page.split('<div id="numbers"')[1]
    assert f'id="alert-{alert.pk}"' in page and f'id="alert-{alert.pk}"' not in numbers
    # A tick is skipped while the focus is inside the block (a link of the tree).
    assert 'hx-trigger="every 30s [!this.contains(document.activeElement)]"' in page
