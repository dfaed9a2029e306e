"""The override state machine: pending -> approved | rejected | expired | revoked, approved ->
expired | revoked, nothing out of rejected, expired or revoked. Every legal move through its service,
and every illegal one refused with 409 `illegal_transition` and nothing changed."""

from datetime import timedelta
from decimal import Decimal

import pytest

from approvals.models import AuditEntry, OverrideApproval, OverrideRequest, OverrideState
from approvals.services import (
    IllegalTransition,
    override_approve,
    override_reject,
    override_request,
    override_revoke,
    overrides_expire,
    transition_check,
)
from budgets.principals import principal_for_user
from costswitch.errors import Conflict
from tests.approvals.factories import models_ask
from tests.budgets.factories import team_budget
from tests.models_registry.factories import ModelProfileFactory

P, A, RJ, E, RV = (
    OverrideState.PENDING,
    OverrideState.APPROVED,
    OverrideState.REJECTED,
    OverrideState.EXPIRED,
    OverrideState.REVOKED,
)
# The state machine, written out independently of the code's table.
LEGAL = {(P, A), (P, RJ), (P, E), (P, RV), (A, E), (A, RV)}
ALL = [(source, target) for source in OverrideState.values for target in OverrideState.values]


@pytest.fixture
def premium(db):
    return ModelProfileFactory(id="premium")


@pytest.mark.parametrize(("source", "target"), ALL)
def test_the_transition_table_allows_exactly_the_legal_moves(source, target):
    override = OverrideRequest(pk=7, state=source)
    if (source, target) in LEGAL:
        transition_check(override, target)
    else:
        with pytest.raises(IllegalTransition) as refused:
            transition_check(override, target)
        assert refused.value.status == 409
        assert refused.value.code == "illegal_transition"
        assert source in refused.value.message and target in refused.value.message
        assert refused.value.details == {"from": source, "to": target}


def _in_state(world, state: str) -> OverrideRequest:
    """A request by bob on team alpha's budget, moved to `state` through the services."""
    budget = team_budget(world.alpha, limit=Decimal("100"))
    alice = principal_for_user(world.alice)
    override = override_request(
        principal=principal_for_user(world.bob), budget_id=budget.pk, ask=models_ask()
    )
    if state == A:
        override_approve(principal=alice, override_id=override.pk)
    elif state == RJ:
        override_reject(principal=alice, override_id=override.pk, comment="not this month")
    elif state == E:
        assert overrides_expire(now=override.expires_at) == 1
    elif state == RV:
        override_revoke(principal=alice, override_id=override.pk, reason="no longer needed")
    override.refresh_from_db()
    assert override.state == state
    return override


def _move(world, override: OverrideRequest, target: str) -> None:
    alice = principal_for_user(world.alice)
    if target == A:
        override_approve(principal=alice, override_id=override.pk, comment="ok")
    elif target == RJ:
        override_reject(principal=alice, override_id=override.pk, comment="no")
    elif target == RV:
        override_revoke(principal=alice, override_id=override.pk, reason="stop")


SERVICE_MOVES = [(s, t) for s in OverrideState.values for t in (A, RJ, RV)]


@pytest.mark.parametrize(("source", "target"), SERVICE_MOVES)
def test_each_decision_service_moves_legally_or_refuses_and_changes_nothing(world, premium, source, target):
    override = _in_state(world, source)
    entries = AuditEntry.objects.count()
    approvals = OverrideApproval.objects.count()
    if (source, target) in LEGAL:
        _move(world, override, target)
        override.refresh_from_db()
        assert override.state == target
        assert AuditEntry.objects.count() == entries + 1
        return
    with pytest.raises(IllegalTransition) as refused:
        _move(world, override, target)
    assert refused.value.details == {"from": source, "to": target}
    override.refresh_from_db()
    assert override.state == source
    assert AuditEntry.objects.count() == entries
    assert OverrideApproval.objects.count() == approvals


@pytest.mark.parametrize("source", OverrideState.values)
def test_the_sweep_expires_only_pending_and_approved_overrides(world, premium, source):
    override = _in_state(world, source)
    later = override.expires_at + timedelta(days=30)
    expired = overrides_expire(now=later)
    override.refresh_from_db()
    if (source, E) in LEGAL:
        assert (expired, override.state, override.ended_at) == (1, E, later)
    else:
        assert expired == 0
        assert override.state == source


def test_the_sweep_leaves_an_override_alone_until_its_time(world, premium):
    override = _in_state(world, A)
    assert overrides_expire(now=override.expires_at - timedelta(seconds=1)) == 0
    override.refresh_from_db()
    assert override.state == A
    assert overrides_expire(now=override.expires_at) == 1


def test_running_the_sweep_twice_expires_once_and_audits_once(world, premium):
    override = _in_state(world, A)
    assert overrides_expire(now=override.expires_at) == 1
    assert overrides_expire(now=override.expires_at) == 0
    actions = list(
        AuditEntry.objects.filter(object_type="approvals.overriderequest", object_id=str(override.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == ["override.created", "override.approved", "override.expired"]


def test_a_request_past_its_pending_time_cannot_be_approved_before_the_sweep(world, premium):
    override = _in_state(world, P)
    with pytest.raises(Conflict) as refused:
        override_approve(
            principal=principal_for_user(world.alice), override_id=override.pk, now=override.expires_at
        )
    assert refused.value.code == "override_lapsed"
    override.refresh_from_db()
    assert override.state == P and not override.approvals.exists()
