"""Who may approve: team leads for their team's and members' budgets, finance and admins for the
whole organization; nobody their own request; two approvers above the policy amount; concurrent
decisions serialized."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from approvals.models import AuditEntry, OverrideApproval, OverrideState
from approvals.services import (
    override_approve,
    override_reject,
    override_request,
    override_revoke,
)
from budgets.choices import Role
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_api_key, principal_for_user
from costswitch.errors import Conflict, DomainError, NotFound, PermissionDenied
from tests.approvals.factories import ApprovalPolicyFactory, extension_ask, models_ask
from tests.budgets.factories import BudgetFactory, MembershipFactory, make_api_key, team_budget, user_budget
from tests.models_registry.factories import ModelProfileFactory


@pytest.fixture
def premium(db):
    return ModelProfileFactory(id="premium")


def _ask(world, user, budget, ask=None):
    return override_request(principal=principal_for_user(user), budget_id=budget.pk, ask=ask or models_ask())


def test_a_team_lead_approves_a_request_on_her_team_budget(world, premium):
    override = _ask(world, world.bob, team_budget(world.alpha))
    approved = override_approve(
        principal=principal_for_user(world.alice), override_id=override.pk, comment="go"
    )
    assert approved.state == OverrideState.APPROVED
    assert approved.decided_by == world.alice
    assert list(approved.approvals.values_list("approver__username", "decision", "comment")) == [
        ("alice", "approve", "go")
    ]


def test_a_team_lead_approves_for_her_members_user_budgets(world, premium):
    override = _ask(world, world.bob, user_budget(world.bob))
    approved = override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    assert approved.state == OverrideState.APPROVED


def test_a_lead_of_another_team_cannot_see_the_request(world, premium):
    lead_of_beta = MembershipFactory(team=world.beta, role=Role.TEAM_LEAD, is_primary=True).user
    override = _ask(world, world.bob, team_budget(world.alpha))
    with pytest.raises(NotFound):
        override_approve(principal=principal_for_user(lead_of_beta), override_id=override.pk)
    override.refresh_from_db()
    assert override.state == OverrideState.PENDING and not override.approvals.exists()


def test_someone_of_another_organization_cannot_see_the_request(world, premium):
    override = _ask(world, world.bob, team_budget(world.alpha))
    for verb in (override_approve, override_reject, override_revoke):
        with pytest.raises(NotFound):
            verb(principal=principal_for_user(world.omar), override_id=override.pk, **_words(verb))
    override.refresh_from_db()
    assert override.state == OverrideState.PENDING


def _words(verb) -> dict:
    return {override_reject: {"comment": "x"}, override_revoke: {"reason": "x"}}.get(verb, {})


def test_a_member_sees_her_team_requests_but_may_not_decide_them(world, premium):
    override = _ask(world, world.alice, team_budget(world.alpha))
    with pytest.raises(PermissionDenied) as refused:
        override_approve(principal=principal_for_user(world.bob), override_id=override.pk)
    assert refused.value.code == "permission_denied"


def test_only_finance_and_admins_approve_on_the_organization_budget(world, premium):
    org_budget = BudgetFactory(organization=world.org)
    override = _ask(world, world.bob, org_budget)
    with pytest.raises(PermissionDenied):  # bob asked for it, so he sees it; alice leads only alpha
        override_approve(principal=principal_for_user(world.bob), override_id=override.pk)
    with pytest.raises(NotFound):
        override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    approved = override_approve(principal=principal_for_user(world.fiona), override_id=override.pk)
    assert approved.state == OverrideState.APPROVED


def test_nobody_approves_their_own_request(world, premium):
    override = _ask(world, world.fiona, team_budget(world.alpha))
    with pytest.raises(PermissionDenied) as refused:
        override_approve(principal=principal_for_user(world.fiona), override_id=override.pk)
    assert refused.value.code == "self_approval"
    with pytest.raises(PermissionDenied):
        override_reject(principal=principal_for_user(world.fiona), override_id=override.pk, comment="x")
    assert not OverrideApproval.objects.exists()


def test_a_lead_does_not_approve_a_request_made_by_her_own_key(world, premium):
    budget = team_budget(world.alpha)
    key, _ = make_api_key(user=world.alice)
    override = override_request(principal=principal_for_api_key(key), budget_id=budget.pk, ask=models_ask())
    with pytest.raises(PermissionDenied) as refused:
        override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    assert refused.value.code == "self_approval"
    assert (
        override_approve(principal=principal_for_user(world.fiona), override_id=override.pk).state
        == "approved"
    )


def test_an_api_key_never_approves(world, premium, team_key):
    override = _ask(world, world.bob, team_budget(world.alpha))
    with pytest.raises(PermissionDenied):
        override_approve(principal=principal_for_api_key(team_key[0]), override_id=override.pk)


def test_the_requester_may_withdraw_her_request_but_a_teammate_may_not(world, premium):
    override = _ask(world, world.bob, team_budget(world.alpha))
    carol_in_alpha = MembershipFactory(team=world.alpha, role=Role.MEMBER, is_primary=True).user
    with pytest.raises(PermissionDenied):
        override_revoke(principal=principal_for_user(carol_in_alpha), override_id=override.pk, reason="x")
    revoked = override_revoke(
        principal=principal_for_user(world.bob), override_id=override.pk, reason="solved"
    )
    assert revoked.state == OverrideState.REVOKED


def test_reject_and_revoke_need_a_reason(world, premium):
    override = _ask(world, world.bob, team_budget(world.alpha))
    with pytest.raises(DomainError) as refused:
        override_reject(principal=principal_for_user(world.alice), override_id=override.pk, comment="  ")
    assert refused.value.code == "comment_required"
    with pytest.raises(DomainError) as refused:
        override_revoke(principal=principal_for_user(world.alice), override_id=override.pk, reason="")
    assert refused.value.code == "reason_required"


# --- two approvers ------------------------------------------------------------------------------------


def test_an_extension_above_the_policy_amount_needs_two_different_approvers(world):
    ApprovalPolicyFactory(organization=world.org, two_approvers_above=Decimal("50"))
    budget = team_budget(world.alpha, limit=Decimal("100"))
    override = _ask(world, world.bob, budget, extension_ask(Decimal("50.01")))
    first = override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    assert first.state == OverrideState.PENDING
    assert not BudgetPeriod.objects.filter(budget=budget, limit__gt=100).exists()
    with pytest.raises(Conflict) as twice:
        override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    assert twice.value.code == "already_decided"
    second = override_approve(principal=principal_for_user(world.fiona), override_id=override.pk)
    assert second.state == OverrideState.APPROVED
    assert BudgetPeriod.objects.get(budget=budget).limit == Decimal("150.01")
    actions = list(
        AuditEntry.objects.filter(object_type="approvals.overriderequest", object_id=str(override.pk))
        .order_by("sequence")
        .values_list("action", "after__state", "after__approvals")
    )
    assert actions == [
        ("override.created", "pending", 0),
        ("override.approved", "pending", 1),
        ("override.approved", "approved", 2),
    ]


def test_an_extension_at_the_policy_amount_needs_one_approver(world):
    ApprovalPolicyFactory(organization=world.org, two_approvers_above=Decimal("50"))
    override = _ask(world, world.bob, team_budget(world.alpha), extension_ask(Decimal("50")))
    assert (
        override_approve(principal=principal_for_user(world.alice), override_id=override.pk).state
        == "approved"
    )


def test_a_rejection_after_one_of_two_approvals_is_final(world):
    ApprovalPolicyFactory(organization=world.org, two_approvers_above=Decimal("10"))
    override = _ask(world, world.bob, team_budget(world.alpha), extension_ask(Decimal("20")))
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    rejected = override_reject(
        principal=principal_for_user(world.fiona), override_id=override.pk, comment="too much"
    )
    assert rejected.state == OverrideState.REJECTED
    assert sorted(rejected.approvals.values_list("approver__username", "decision")) == [
        ("alice", "approve"),
        ("fiona", "reject"),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
def test_two_approvers_at_the_same_moment_both_count_once(world):
    """Both approvals land (the row lock serializes them) and the override is approved exactly
    once: one approved transition, one extension of the period limit."""
    ApprovalPolicyFactory(organization=world.org, two_approvers_above=Decimal("10"))
    budget = team_budget(world.alpha, limit=Decimal("100"))
    override = _ask(world, world.bob, budget, extension_ask(Decimal("20")))
    outcomes = _at_once(
        lambda: override_approve(principal=principal_for_user(world.alice), override_id=override.pk).state,
        lambda: override_approve(principal=principal_for_user(world.fiona), override_id=override.pk).state,
    )
    assert sorted(outcomes) == ["approved", "pending"]
    override.refresh_from_db()
    assert override.state == OverrideState.APPROVED and override.approvals.count() == 2
    assert BudgetPeriod.objects.get(budget=budget).limit == Decimal("120")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
def test_an_approval_and_a_rejection_at_the_same_moment_cannot_both_win(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    override = _ask(world, world.bob, budget, extension_ask(Decimal("20")))
    outcomes = _at_once(
        lambda: override_approve(principal=principal_for_user(world.alice), override_id=override.pk).state,
        lambda: (
            override_reject(
                principal=principal_for_user(world.fiona), override_id=override.pk, comment="no"
            ).state
        ),
    )
    override.refresh_from_db()
    assert override.state in {"approved", "rejected"}
    assert sorted(outcomes) == sorted([override.state, "illegal_transition"])
    expected_limit = Decimal("120") if override.state == "approved" else Decimal("100")
    assert BudgetPeriod.objects.filter(budget=budget).first() is None or (
        BudgetPeriod.objects.get(budget=budget).limit == expected_limit
    )


def _at_once(*calls) -> list[str]:
    """Run the calls in threads released together; each returns its result or its error code."""
    barrier = threading.Barrier(len(calls))
    results: list[str] = []

    def run(call):
        try:
            barrier.wait()
            results.append(call())
        except DomainError as error:
            results.append(error.code)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results
