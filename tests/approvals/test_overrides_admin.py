"""Overrides in Django admin: read-only rows, decided only through the service's actions (the same
rules as the API: the admin user acts as a principal of her organization)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from approvals.models import ApprovalPolicy, OverrideRequest, OverrideState
from approvals.services import override_request
from budgets.principals import principal_for_user
from tests.approvals.factories import extension_ask
from tests.budgets.factories import team_budget

CHANGELIST = "admin:approvals_overriderequest_changelist"


@pytest.fixture
def pending(world):
    return override_request(
        principal=principal_for_user(world.bob),
        budget_id=team_budget(world.alpha, limit=Decimal("100")).pk,
        ask=extension_ask(Decimal("5")),
    )


def _admin_client(client, user):
    user.is_staff = True
    user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def _act(client, action: str, override: OverrideRequest):
    return client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [override.pk]}, follow=True
    )


def test_an_approver_approves_through_the_admin_action(client, world, pending):
    response = _act(_admin_client(client, world.fiona), "override_approved", pending)
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.state == OverrideState.APPROVED and pending.decided_by == world.fiona


def test_the_admin_action_refuses_self_approval_with_a_message(client, world):
    own = override_request(
        principal=principal_for_user(world.alice),
        budget_id=team_budget(world.alpha).pk,
        ask=extension_ask(Decimal("5")),
    )
    response = _act(_admin_client(client, world.alice), "override_approved", own)
    own.refresh_from_db()
    assert own.state == OverrideState.PENDING
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"Override {own.pk}: Nobody may approve an override they asked for or that covers them."
    ]


def test_override_rows_cannot_be_edited_or_added(client, world, pending):
    admin_client = _admin_client(client, world.fiona)
    change = reverse("admin:approvals_overriderequest_change", args=[pending.pk])
    admin_client.post(change, {"state": "approved"})
    pending.refresh_from_db()
    assert pending.state == OverrideState.PENDING
    assert admin_client.get(reverse("admin:approvals_overriderequest_add")).status_code == 403


def test_the_approval_policy_is_edited_in_the_admin(client, world):
    response = _admin_client(client, world.fiona).post(
        reverse("admin:approvals_approvalpolicy_add"),
        {"organization": world.org.pk, "two_approvers_above": "250"},
    )
    assert response.status_code == 302
    assert ApprovalPolicy.objects.get(organization=world.org).two_approvers_above == Decimal("250")
