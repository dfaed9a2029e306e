"""Reads of the approvals app. `overrides_in_force` is the hook the selection engine asks before it
applies a budget restriction: an approved override lifts it for the caller, at once."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from approvals.models import OverrideApproval, OverrideKind, OverrideRequest, OverrideState
from budgets.choices import ThresholdAction
from budgets.models import Team, User
from budgets.principals import Principal
from budgets.selectors import BudgetStatusReport, budgets_for_principal
from costswitch.errors import NotFound


@dataclass(frozen=True)
class OverridesInForce:
    """What approved overrides allow one caller right now, across the budgets of its chain."""

    models: frozenset[str] = frozenset()  # premium or restricted models approved by name
    cost_ceiling: Decimal | None = None  # a per-request limit raised to this amount
    unblock: bool = False  # an exhausted or blocked budget may be passed (critical systems)
    override_ids: tuple[int, ...] = ()

    NONE: ClassVar["OverridesInForce"]


OverridesInForce.NONE = OverridesInForce()

# Which crossed threshold actions each kind of override lifts. Extensions lift nothing here: they
# add money to the period's limit (budgets.services.extensions), which the ledger and the budget
# status read directly.
_LIFTS: dict[str, frozenset[str]] = {
    OverrideKind.MODELS: frozenset({ThresholdAction.RESTRICT_MODELS, ThresholdAction.REQUIRE_APPROVAL}),
    OverrideKind.COST_CEILING: frozenset({ThresholdAction.STRICT_COST_LIMIT}),
    OverrideKind.UNBLOCK: frozenset({ThresholdAction.BLOCK}),
}
_LIFTABLE = frozenset().union(*_LIFTS.values())


def covering(*, team: Team | None, user: User | None) -> Q:
    """Overrides that cover a caller charging (team, user): those a person asked for herself, and
    those a team's service key asked for, which cover every caller of that team."""
    condition = Q(pk__in=[])
    if team is not None:
        condition |= Q(team=team)
    if user is not None:
        condition |= Q(user=user)
    return condition


def overrides_in_force(
    *,
    principal: Principal,
    budgets: Sequence[BudgetStatusReport],
    team: Team | None = None,
    user: User | None = None,
    now: datetime | None = None,
) -> OverridesInForce:
    """Approved, unexpired overrides for this caller on the budgets of its chain (`budgets`, as
    `chain_status` reports them; `team` and `user`: the attribution, the principal's own by default).

    No cache: an approval applies at the next admission and an override stops at its expiry. The
    common case costs nothing: without a crossed threshold that an override could lift, there is
    no query; otherwise one indexed query. A restriction imposed by several budgets is lifted only
    when each of them has an override for it (an override is granted on one budget, by that
    budget's approvers, and never loosens another budget's rule)."""
    needed = {r.budget.pk: r.crossed_actions & _LIFTABLE for r in budgets}
    needed = {budget_id: actions for budget_id, actions in needed.items() if actions}
    if not needed:
        return OverridesInForce.NONE
    if team is None and user is None:
        team, user = principal.team, principal.user
    now = now or timezone.now()
    rows = list(
        OverrideRequest.objects.filter(
            covering(team=team, user=user),
            budget_id__in=list(needed),
            state=OverrideState.APPROVED,
            expires_at__gt=now,
            kind__in=list(_LIFTS),
        ).values_list("pk", "budget_id", "kind", "approved_models", "cost_ceiling")
    )
    if not rows:
        return OverridesInForce.NONE

    def imposing(kind: str) -> list[int]:
        return [budget_id for budget_id, actions in needed.items() if actions & _LIFTS[kind]]

    models_by_budget: dict[int, set[str]] = {}
    ceiling_by_budget: dict[int, Decimal] = {}
    unblocked: set[int] = set()
    for _, budget_id, kind, approved_models, ceiling in rows:
        if kind == OverrideKind.MODELS:
            models_by_budget.setdefault(budget_id, set()).update(approved_models)
        elif kind == OverrideKind.COST_CEILING:
            ceiling_by_budget[budget_id] = max(ceiling, ceiling_by_budget.get(budget_id, ceiling))
        else:
            unblocked.add(budget_id)
    model_budgets = imposing(OverrideKind.MODELS)
    models = (
        frozenset(set.intersection(*(models_by_budget.get(b, set()) for b in model_budgets)))
        if model_budgets
        else frozenset()
    )
    ceiling_budgets = imposing(OverrideKind.COST_CEILING)
    ceiling = (
        min(ceiling_by_budget[b] for b in ceiling_budgets)
        if ceiling_budgets and all(b in ceiling_by_budget for b in ceiling_budgets)
        else None
    )
    block_budgets = imposing(OverrideKind.UNBLOCK)
    unblock = bool(block_budgets) and all(b in unblocked for b in block_budgets)
    return OverridesInForce(
        models=models,
        cost_ceiling=ceiling,
        unblock=unblock,
        override_ids=tuple(sorted(pk for pk, *_ in rows)),
    )


# --- the API's reads --------------------------------------------------------------------------------


def overrides_for_principal(principal: Principal) -> QuerySet[OverrideRequest]:
    """Overrides the caller may see: those on budgets it can see, and its own requests (a member
    may ask for an override on the organization's budget without seeing that budget).
    Finance and admins see every override of the organization; nothing crosses organizations."""
    queryset = OverrideRequest.objects.filter(organization=principal.organization)
    if not principal.org_wide:
        visible = Q(budget__in=budgets_for_principal(principal).values("pk"))
        if principal.api_key is not None:
            visible |= Q(requested_by_key=principal.api_key)
        else:
            visible |= Q(requested_by=principal.user) | Q(user=principal.user)
        queryset = queryset.filter(visible)
    return queryset.select_related(
        "budget", "requested_by", "requested_by_key", "team", "user", "decided_by", "reviewed_by"
    ).prefetch_related(Prefetch("approvals", queryset=OverrideApproval.objects.select_related("approver")))


def override_get(*, principal: Principal, override_id: int) -> OverrideRequest:
    override = overrides_for_principal(principal).filter(pk=override_id).first()
    if override is None:
        raise NotFound(f"Override {override_id} not found.")
    return override
