"""The approvals queue through the Django test client: approvers decide inline (HTMX), members
cannot approve, and overrides of other teams do not exist for a lead."""

from decimal import Decimal

import pytest
from django.test import Client

from approvals.models import OverrideState
from approvals.services import override_request
from budgets.principals import principal_for_user
from tests.approvals.factories import extension_ask
from tests.budgets.factories import team_budget

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bobs_request(world):
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    return override_request(
        principal=principal_for_user(world.bob), budget_id=budget.pk, ask=extension_ask(Decimal("25"))
    )


def test_the_lead_sees_the_request_with_its_context(world, bobs_request):
    response = login(world.alice).get("/approvals/")

    page = response.content.decode()
    assert response.status_code == 200
    assert f'id="override-{bobs_request.pk}"' in page
    assert "quarter-end batch" in page and "25.00 USD more" in page and "Alpha monthly" in page
    assert '<span id="pending-count">1</span>' in page


def test_approving_inline_updates_the_row_and_the_counter(world, bobs_request):
    response = login(world.alice).post(
        f"/approvals/{bobs_request.pk}/decide/", {"decision": "approve", "comment": "ok"}, **HTMX
    )

    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert "Approved" in page and 'name="decision"' not in page
    assert '<span id="pending-count" hx-swap-oob="true">0</span>' in page
    bobs_request.refresh_from_db()
    assert bobs_request.state == OverrideState.APPROVED and bobs_request.decided_by == world.alice


def test_a_rejection_needs_a_comment(world, bobs_request):
    response = login(world.fiona).post(
        f"/approvals/{bobs_request.pk}/decide/", {"decision": "reject"}, **HTMX
    )

    assert "Say why the override is rejected." in response.content.decode()
    bobs_request.refresh_from_db()
    assert bobs_request.state == OverrideState.PENDING


def test_finance_rejects_with_a_comment(world, bobs_request):
    response = login(world.fiona).post(
        f"/approvals/{bobs_request.pk}/decide/", {"decision": "reject", "comment": "not this month"}, **HTMX
    )

    assert "not this month" in response.content.decode()
    bobs_request.refresh_from_db()
    assert bobs_request.state == OverrideState.REJECTED


def test_a_member_cannot_approve(world, bobs_request):
    client = login(world.bob)

    assert client.get("/approvals/").status_code == 403
    response = client.post(f"/approvals/{bobs_request.pk}/decide/", {"decision": "approve"})

    assert response.status_code == 403
    bobs_request.refresh_from_db()
    assert bobs_request.state == OverrideState.PENDING


@pytest.mark.parametrize("who", ["carol", "omar"])
def test_overrides_of_other_teams_do_not_exist(world, bobs_request, who):
    response = login(getattr(world, who)).post(
        f"/approvals/{bobs_request.pk}/decide/", {"decision": "approve"}
    )

    assert response.status_code == 404
    bobs_request.refresh_from_db()
    assert bobs_request.state == OverrideState.PENDING


def test_another_lead_does_not_see_the_request(world, bobs_request):
    from budgets.choices import Role
    from tests.budgets.factories import MembershipFactory, UserFactory

    beta_lead = UserFactory(username="bea", organization=world.org)
    MembershipFactory(user=beta_lead, team=world.beta, role=Role.TEAM_LEAD)

    page = login(beta_lead).get("/approvals/").content.decode()

    assert f'id="override-{bobs_request.pk}"' not in page


def test_nobody_decides_their_own_request(world):
    budget = team_budget(world.beta, name="Beta monthly")
    own = override_request(
        principal=principal_for_user(world.fiona), budget_id=budget.pk, ask=extension_ask(Decimal("5"))
    )
    client = login(world.fiona)

    assert (
        'name="decision"'
        not in client.get("/approvals/").content.decode().split(f'id="override-{own.pk}"')[1]
    )
    assert client.post(f"/approvals/{own.pk}/decide/", {"decision": "approve"}).status_code == 403


def test_the_budget_page_lists_its_overrides(world, bobs_request):
    fragment = login(world.alice).get(f"/approvals/budget/{bobs_request.budget_id}/", **HTMX).content.decode()

    assert "Budget extension" in fragment and "bob" in fragment
