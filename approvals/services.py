"""Override requests: ask, approve, reject, revoke, expire, emergency self-grant, review.

One state machine (`TRANSITIONS`) decides every move; an illegal one is a 409 `illegal_transition`
and changes nothing. Every move and every decision is written to the audit log in the transaction
that makes it, with the reason or comment; notifications go out once it has committed.

Who decides (`may_approve`): team leads for their team's budgets and their members' user budgets,
finance and admins for every budget of their organization; never the person who asked or whom the
override covers; never an API key. An organization's `ApprovalPolicy` may require two different
approvers for extensions above an amount.

What an approved override does: models, cost ceiling and unblock apply to the next admission
(`approvals.selectors.overrides_in_force`, no cache) until `expires_at`; an extension raises the
limit of the budget's current period at approval and gives it back when it expires or is revoked
(`budgets.services.extensions`).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals import audit, notifications
from approvals.models import (
    ApprovalDecision,
    ApprovalPolicy,
    OverrideApproval,
    OverrideKind,
    OverrideRequest,
    OverrideState,
    ReviewState,
)
from approvals.selectors import overrides_for_principal
from budgets.choices import ScopeType, ThresholdAction
from budgets.models import ApiKey, Budget, BudgetPeriod, Team, User
from budgets.principals import Principal
from budgets.selectors import budgets_for_principal, chain_budgets
from budgets.services.extensions import period_limit_extend, period_limit_withdraw
from costswitch.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from costswitch.money import display_decimal
from models_registry.models import ModelProfile

logger = logging.getLogger(__name__)

OVERRIDES_URL = "/api/v1/overrides"
MAX_REASON_CHARS = 2000
CENT = Decimal("0.01")

# The state machine: from each state, the states it may move to. Rejected, expired and revoked
# are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    OverrideState.PENDING: frozenset(
        {OverrideState.APPROVED, OverrideState.REJECTED, OverrideState.EXPIRED, OverrideState.REVOKED}
    ),
    OverrideState.APPROVED: frozenset({OverrideState.EXPIRED, OverrideState.REVOKED}),
    OverrideState.REJECTED: frozenset(),
    OverrideState.EXPIRED: frozenset(),
    OverrideState.REVOKED: frozenset(),
}
REVIEWS = {"accept": ReviewState.ACCEPTED, "flag": ReviewState.FLAGGED}


class IllegalTransition(Conflict):
    code = "illegal_transition"


def transition_check(override: OverrideRequest, target: str) -> None:
    """Refuse a move the state machine does not allow (409, naming both states)."""
    if target not in TRANSITIONS.get(override.state, frozenset()):
        raise IllegalTransition(
            f"Override {override.pk} is {override.state}; it cannot become {target}.",
            details={"from": override.state, "to": target},
        )


# --- who may do what ----------------------------------------------------------------------------------


def may_approve(principal: Principal, budget: Budget) -> bool:
    """Whether the caller decides overrides on this budget (not yet checking it is not her own)."""
    if principal.api_key is not None or principal.user is None:
        return False
    if principal.org_wide:
        return True
    if budget.scope_type == ScopeType.TEAM:
        return budget.team_id in principal.lead_team_ids
    if budget.scope_type == ScopeType.USER:
        return principal.can_manage_scope(ScopeType.USER, budget.user_id)
    return False


def _is_own(principal: Principal, override: OverrideRequest) -> bool:
    """The caller asked for it, or it covers her (her own key asked, or it was asked for her)."""
    user_id = principal.user.pk if principal.user else None
    key_user_id = override.requested_by_key.user_id if override.requested_by_key_id else None
    return user_id is not None and user_id in {override.requested_by_id, override.user_id, key_user_id}


def _check_approver(principal: Principal, override: OverrideRequest, verb: str) -> None:
    if not may_approve(principal, override.budget):
        raise PermissionDenied(
            f"You may not {verb} overrides on budget {override.budget.name!r}: team leads decide for "
            "their team's and members' budgets, finance and admins for the whole organization."
        )
    if _is_own(principal, override):
        raise PermissionDenied(
            f"Nobody may {verb} an override they asked for or that covers them.", code="self_approval"
        )


def _actor(principal: Principal) -> User | ApiKey | None:
    return principal.api_key or principal.user


# --- helpers ------------------------------------------------------------------------------------------


def _snapshot(override: OverrideRequest) -> dict:
    return {
        "state": override.state,
        "review_state": override.review_state,
        "expires_at": override.expires_at.isoformat() if override.expires_at else None,
        "approvals": override.approvals.filter(decision=ApprovalDecision.APPROVE).count(),
    }


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(display_decimal(amount))


def _details(override: OverrideRequest) -> dict:
    """What the override asks for, for the audit log and notifications."""
    return {
        "override_id": override.pk,
        "budget_id": override.budget_id,
        "kind": override.kind,
        "models": list(override.approved_models),
        "cost_ceiling": _money(override.cost_ceiling),
        "extra_amount": _money(override.extra_amount),
        "duration_minutes": override.duration_minutes,
        "emergency": override.emergency,
        "state": override.state,
    }


def _record(action: str, override: OverrideRequest, *, actor: Any, before: dict | None, reason: str) -> None:
    after = {**_details(override), **_snapshot(override)}
    audit.record(
        action=action,
        obj=override,
        actor=actor,
        before=before,
        after=after,
        reason=reason,
        organization=override.organization,
    )


def _notify(event: str, override: OverrideRequest, subject: str, body: str) -> None:
    """After commit: nobody is told about a change that was rolled back."""
    data = _details(override)
    budget = override.budget
    transaction.on_commit(
        lambda: notifications.notify(event=event, budget=budget, subject=subject, body=body, data=data)
    )


def _describe(override: OverrideRequest) -> str:
    if override.kind == OverrideKind.MODELS:
        return f"models {', '.join(override.approved_models)}"
    if override.kind == OverrideKind.COST_CEILING:
        return f"a per-request ceiling of {display_decimal(override.cost_ceiling)}"
    if override.kind == OverrideKind.EXTENSION:
        return f"{display_decimal(override.extra_amount)} {settings.COSTSWITCH_CURRENCY} more"
    return "passing the block (critical systems)"


def _requester_label(override: OverrideRequest) -> str:
    if override.requested_by_key_id:
        return f"API key {override.requested_by_key.name!r}"
    return str(override.requested_by)


def approvals_required(override: OverrideRequest, *, policies: dict | None = None) -> int:
    """Two different approvers for an extension above the organization's policy amount, else one.
    `policies` caches the policy per organization across calls (a list of overrides)."""
    if override.kind != OverrideKind.EXTENSION:
        return 1
    policies = {} if policies is None else policies
    if override.organization_id not in policies:
        policies[override.organization_id] = ApprovalPolicy.objects.filter(
            organization_id=override.organization_id
        ).first()
    policy = policies[override.organization_id]
    if policy is None or policy.two_approvers_above is None:
        return 1
    return 2 if override.extra_amount > policy.two_approvers_above else 1


def _lock(principal: Principal, override_id: int) -> OverrideRequest:
    """The override row, locked, if the caller may see it (404 otherwise, revealing nothing).
    Every decision takes this lock first: two approvers, or an approval and a rejection, at the
    same moment are serialized, and the second sees what the first did."""
    override = (
        overrides_for_principal(principal)
        .select_for_update(of=("self",))
        .select_related("organization", "budget__organization")
        .filter(pk=override_id)
        .first()
    )
    if override is None:
        raise NotFound(f"Override {override_id} not found.")
    return override


def _locked_for_system(override_id: int, *, skip_locked: bool = False) -> OverrideRequest | None:
    return (
        OverrideRequest.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .select_related("organization", "budget__organization", "requested_by", "requested_by_key")
        .filter(pk=override_id)
        .first()
    )


def _move(
    override: OverrideRequest, target: str, *, action: str, actor: Any, reason: str, now: datetime
) -> None:
    """Apply one legal transition, its side effect on the budget, and its audit entry."""
    transition_check(override, target)
    before = {**_details(override), **_snapshot(override)}
    was_approved = override.state == OverrideState.APPROVED
    override.state = target
    if target == OverrideState.APPROVED:
        override.decided_at = now
        override.expires_at = now + timedelta(minutes=override.duration_minutes)
        if override.kind == OverrideKind.EXTENSION:
            period = period_limit_extend(
                budget=override.budget,
                amount=override.extra_amount,
                actor=actor,
                reason=f"override {override.pk}: {override.reason}",
                now=now,
            )
            override.extended_period = period
    elif target == OverrideState.REJECTED:
        override.decided_at = now
    else:  # expired or revoked
        override.ended_at = now
        if was_approved and override.extended_period_id is not None:
            period_limit_withdraw(
                period_id=override.extended_period_id,
                amount=override.extra_amount,
                actor=actor,
                reason=f"override {override.pk} {target}",
                now=now,
            )
    override.save()
    _record(action, override, actor=actor, before=before, reason=reason)


# --- asking ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideAsk:
    """What an override asks for; validated by `_validate` whichever entry point built it."""

    kind: str
    reason: str
    duration_minutes: int
    models: tuple[str, ...] = ()
    cost_ceiling: Decimal | None = None
    extra_amount: Decimal | None = None


def _validate(ask: OverrideAsk, *, emergency: bool) -> OverrideAsk:
    if ask.kind not in OverrideKind.values:
        raise ValidationFailed(
            f"kind must be one of {', '.join(OverrideKind.values)}, not {ask.kind!r}.",
            code="invalid_kind",
            details={"kind": ["Unknown kind."]},
        )
    reason = (ask.reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "A reason is required.", code="reason_required", details={"reason": ["Required."]}
        )
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationFailed(
            f"reason must be at most {MAX_REASON_CHARS} characters.", code="reason_too_long"
        )
    longest = (
        settings.COSTSWITCH_EMERGENCY_OVERRIDE_MAX_MINUTES
        if emergency
        else settings.COSTSWITCH_OVERRIDE_MAX_MINUTES
    )
    if not 1 <= ask.duration_minutes <= longest:
        what = "An emergency override" if emergency else "An override"
        raise ValidationFailed(
            f"{what} lasts from 1 to {longest} minutes, not {ask.duration_minutes}.",
            code="invalid_duration",
            details={"durationMinutes": [f"Must be from 1 to {longest}."]},
        )
    given = {
        "models": bool(ask.models),
        "costCeiling": ask.cost_ceiling is not None,
        "extraAmount": ask.extra_amount is not None,
    }
    wanted = {
        OverrideKind.MODELS: "models",
        OverrideKind.COST_CEILING: "costCeiling",
        OverrideKind.EXTENSION: "extraAmount",
    }
    needed = wanted.get(ask.kind)
    stray = sorted(name for name, present in given.items() if present and name != needed)
    if stray:
        raise ValidationFailed(
            f"{', '.join(stray)} does not apply to an override of kind {ask.kind!r}.",
            code="field_not_for_kind",
            details={name: [f"Not for kind {ask.kind!r}."] for name in stray},
        )
    if needed is not None and not given[needed]:
        raise ValidationFailed(
            f"An override of kind {ask.kind!r} needs {needed}.",
            code="field_required",
            details={needed: ["Required for this kind."]},
        )
    if ask.kind == OverrideKind.MODELS:
        models = tuple(dict.fromkeys(ask.models))
        known = set(ModelProfile.objects.filter(pk__in=models).values_list("pk", flat=True))
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValidationFailed(
                f"Unknown model(s): {', '.join(unknown)}.",
                code="unknown_model",
                details={"models": [f"Unknown model {m!r}." for m in unknown]},
            )
        ask = OverrideAsk(**{**ask.__dict__, "models": models})
    for name, amount in (("costCeiling", ask.cost_ceiling), ("extraAmount", ask.extra_amount)):
        if amount is not None and amount <= 0:
            raise ValidationFailed(
                f"{name} must be more than 0.",
                code="invalid_amount",
                details={name: ["Must be more than 0."]},
            )
    return OverrideAsk(**{**ask.__dict__, "reason": reason})


def _budget_for_request(
    principal: Principal, budget_id: int, *, team: Team | None, user: User | None
) -> Budget:
    """A budget the caller spends from (its chain) or can see; 404 for anything else."""
    chain = chain_budgets(organization=principal.organization, team=team, user=user)
    budget = (
        chain.filter(pk=budget_id).first() or budgets_for_principal(principal).filter(pk=budget_id).first()
    )
    if budget is None:
        raise NotFound(f"Budget {budget_id} not found.")
    if not budget.is_active:
        raise Conflict(f"Budget {budget.name!r} is archived.", code="budget_inactive")
    return budget


def _covers(principal: Principal) -> dict:
    """A team's service key asks for its team's callers; anyone else for herself."""
    key = principal.api_key
    if key is not None and key.user_id is None:
        return {"team": key.team, "user": None}
    return {"team": None, "user": principal.user}


@transaction.atomic
def _create(
    *,
    principal: Principal,
    budget: Budget,
    ask: OverrideAsk,
    emergency: bool,
    request_id: str,
    now: datetime,
    estimated_cost: Decimal | None = None,
) -> OverrideRequest:
    override = OverrideRequest.objects.create(
        organization=principal.organization,
        budget=budget,
        requested_by=principal.user if principal.api_key is None else None,
        requested_by_key=principal.api_key,
        kind=ask.kind,
        approved_models=list(ask.models),
        cost_ceiling=ask.cost_ceiling,
        extra_amount=ask.extra_amount,
        estimated_cost=estimated_cost,
        reason=ask.reason,
        duration_minutes=ask.duration_minutes,
        emergency=emergency,
        review_state=ReviewState.PENDING_REVIEW if emergency else ReviewState.NONE,
        request_id=request_id[:200],
        created_at=now,
        expires_at=now + timedelta(minutes=settings.COSTSWITCH_OVERRIDE_PENDING_MINUTES),
        **_covers(principal),
    )
    _record("override.created", override, actor=_actor(principal), before=None, reason=ask.reason)
    return override


def override_request(
    *,
    principal: Principal,
    budget_id: int,
    ask: OverrideAsk,
    request_id: str = "",
    now: datetime | None = None,
    estimated_cost: Decimal | None = None,
) -> OverrideRequest:
    """Ask for an override on a budget the caller spends from or can see; it waits for approvers,
    who are notified. Lapses (expires) if nobody decides within COSTSWITCH_OVERRIDE_PENDING_MINUTES.
    `estimated_cost`: what the refused request that asked for it would have cost, for approvers."""
    now = now or timezone.now()
    ask = _validate(ask, emergency=False)
    budget = _budget_for_request(principal, budget_id, team=principal.team, user=principal.user)
    with transaction.atomic():
        override = _create(
            principal=principal,
            budget=budget,
            ask=ask,
            emergency=False,
            request_id=request_id,
            now=now,
            estimated_cost=estimated_cost,
        )
        _notify(
            "override_requested",
            override,
            f"Override requested on {budget.name}",
            f"{_requester_label(override)} asks for {_describe(override)} on budget {budget.name!r} "
            f"for {override.duration_minutes} minutes: {override.reason}",
        )
    logger.info("override %s requested on budget %s (%s)", override.pk, budget.pk, override.kind)
    return override


def may_self_grant(principal: Principal) -> bool:
    """Critical API keys, and people holding the `approvals.grant_emergency_override` permission."""
    if principal.api_key is not None:
        return principal.api_key.critical
    return principal.user is not None and principal.user.has_perm("approvals.grant_emergency_override")


def override_emergency_grant(
    *,
    principal: Principal,
    budget_id: int,
    ask: OverrideAsk,
    request_id: str = "",
    now: datetime | None = None,
) -> OverrideRequest:
    """A critical system grants itself an override at once, for at most
    COSTSWITCH_EMERGENCY_OVERRIDE_MAX_MINUTES, on a budget it spends from. Approvers are told at
    once and review it afterwards (accept or flag); they may also revoke it."""
    now = now or timezone.now()
    if not may_self_grant(principal):
        raise PermissionDenied(
            "Only critical API keys and people with the emergency override permission may self-grant.",
            code="emergency_not_allowed",
        )
    ask = _validate(ask, emergency=True)
    chain = chain_budgets(organization=principal.organization, team=principal.team, user=principal.user)
    budget = chain.filter(pk=budget_id).first()
    if budget is None:
        # An emergency covers the caller's own spending only: a budget outside its chain is not its.
        raise NotFound(f"Budget {budget_id} not found.")
    actor = _actor(principal)
    with transaction.atomic():
        override = _create(
            principal=principal, budget=budget, ask=ask, emergency=True, request_id=request_id, now=now
        )
        _move(
            override,
            OverrideState.APPROVED,
            action="override.emergency_granted",
            actor=actor,
            reason=ask.reason,
            now=now,
        )
        _notify(
            "emergency_override_used",
            override,
            f"Emergency override on {budget.name}",
            f"{_requester_label(override)} granted itself {_describe(override)} on budget "
            f"{budget.name!r} until {override.expires_at:%Y-%m-%d %H:%M} UTC: {override.reason}. "
            "Review it in the override queue.",
        )
    logger.warning("emergency override %s self-granted on budget %s", override.pk, budget.pk)
    return override


# --- deciding -------------------------------------------------------------------------------------------


def override_approve(
    *, principal: Principal, override_id: int, comment: str = "", now: datetime | None = None
) -> OverrideRequest:
    """One approver's yes. The override is approved (and starts: it lasts its duration from now)
    once it has the approvals its organization's policy asks for; until then it stays pending."""
    now = now or timezone.now()
    with transaction.atomic():
        override = _lock(principal, override_id)
        _check_approver(principal, override, "approve")
        transition_check(override, OverrideState.APPROVED)
        if override.expires_at <= now:  # lapsed; the sweep has not recorded it yet
            raise Conflict(
                f"Override {override.pk} lapsed undecided at {override.expires_at:%Y-%m-%d %H:%M} UTC; "
                "ask again.",
                code="override_lapsed",
            )
        if override.approvals.filter(approver=principal.user).exists():
            raise Conflict(f"You already approved override {override.pk}.", code="already_decided")
        before = {**_details(override), **_snapshot(override)}
        OverrideApproval.objects.create(
            override=override,
            approver=principal.user,
            decision=ApprovalDecision.APPROVE,
            comment=comment,
            created_at=now,
        )
        given = override.approvals.filter(decision=ApprovalDecision.APPROVE).count()
        if given >= approvals_required(override):
            override.decided_by = principal.user
            _move(
                override,
                OverrideState.APPROVED,
                action="override.approved",
                actor=principal.user,
                reason=comment,
                now=now,
            )
            _notify(
                "override_decided",
                override,
                f"Override approved on {override.budget.name}",
                f"{principal.user} approved {_describe(override)} on budget {override.budget.name!r} "
                f"until {override.expires_at:%Y-%m-%d %H:%M} UTC.",
            )
        else:
            # The first of two approvals: recorded, the request stays pending.
            _record("override.approved", override, actor=principal.user, before=before, reason=comment)
    return override


def override_reject(
    *, principal: Principal, override_id: int, comment: str, now: datetime | None = None
) -> OverrideRequest:
    """An approver's no: final, whatever approvals it already had."""
    now = now or timezone.now()
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed(
            "Say why the override is rejected.", code="comment_required", details={"comment": ["Required."]}
        )
    with transaction.atomic():
        override = _lock(principal, override_id)
        _check_approver(principal, override, "reject")
        transition_check(override, OverrideState.REJECTED)
        OverrideApproval.objects.update_or_create(
            override=override,
            approver=principal.user,
            defaults={"decision": ApprovalDecision.REJECT, "comment": comment, "created_at": now},
        )
        override.decided_by = principal.user
        _move(
            override,
            OverrideState.REJECTED,
            action="override.rejected",
            actor=principal.user,
            reason=comment,
            now=now,
        )
        _notify(
            "override_decided",
            override,
            f"Override rejected on {override.budget.name}",
            f"{principal.user} rejected {_describe(override)} on budget {override.budget.name!r}: {comment}",
        )
    return override


def override_revoke(
    *, principal: Principal, override_id: int, reason: str, now: datetime | None = None
) -> OverrideRequest:
    """End an override before its time (or withdraw a pending request): its approvers may, and so
    may whoever asked for it. An extension gives its unspent room back at once."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "Say why the override is revoked.", code="reason_required", details={"reason": ["Required."]}
        )
    with transaction.atomic():
        override = _lock(principal, override_id)
        asked = (principal.api_key is not None and override.requested_by_key_id == principal.api_key.pk) or (
            principal.api_key is None and override.requested_by_id == principal.user.pk
        )
        if not asked:
            _check_approver(principal, override, "revoke")
        transition_check(override, OverrideState.REVOKED)
        _move(
            override,
            OverrideState.REVOKED,
            action="override.revoked",
            actor=_actor(principal),
            reason=reason,
            now=now,
        )
        _notify(
            "override_decided",
            override,
            f"Override revoked on {override.budget.name}",
            f"{_actor(principal)} revoked {_describe(override)} on budget {override.budget.name!r}: {reason}",
        )
    return override


def override_review(
    *, principal: Principal, override_id: int, decision: str, comment: str = "", now: datetime | None = None
) -> OverrideRequest:
    """After the fact: an approver accepts an emergency override or flags it (flagging does not end
    it; revoke does). Each emergency is reviewed once."""
    now = now or timezone.now()
    if decision not in REVIEWS:
        raise ValidationFailed(
            f"decision must be one of {', '.join(REVIEWS)}, not {decision!r}.", code="invalid_decision"
        )
    with transaction.atomic():
        override = _lock(principal, override_id)
        if not override.emergency:
            raise Conflict(f"Override {override.pk} is not an emergency override.", code="not_an_emergency")
        _check_approver(principal, override, "review")
        if override.review_state != ReviewState.PENDING_REVIEW:
            raise IllegalTransition(
                f"Override {override.pk} was already reviewed ({override.review_state}).",
                details={"from": override.review_state, "to": REVIEWS[decision]},
            )
        before = {**_details(override), **_snapshot(override)}
        override.review_state = REVIEWS[decision]
        override.reviewed_by = principal.user
        override.reviewed_at = now
        override.review_comment = comment
        override.save(update_fields=["review_state", "reviewed_by", "reviewed_at", "review_comment"])
        _record("override.reviewed", override, actor=principal.user, before=before, reason=comment)
    return override


# --- expiry -------------------------------------------------------------------------------------------


def overrides_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Expire pending requests nobody decided in time and approved overrides past their end, and
    take expired extensions back. Safe to run twice or concurrently: each row is taken with SKIP
    LOCKED and moved only if still due, so no override expires twice. (Overrides stop applying at
    `expires_at` whether or not this has run: `overrides_in_force` compares the time.)"""
    now = now or timezone.now()
    due = OverrideRequest.objects.filter(
        state__in=[OverrideState.PENDING, OverrideState.APPROVED], expires_at__lte=now
    ).order_by("expires_at", "pk")
    expired = 0
    for pk in list(due.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            override = _locked_for_system(pk, skip_locked=True)
            if override is None or override.state not in TRANSITIONS or override.expires_at > now:
                continue
            if OverrideState.EXPIRED not in TRANSITIONS[override.state]:
                continue  # decided meanwhile
            _move(override, OverrideState.EXPIRED, action="override.expired", actor=None, reason="", now=now)
            expired += 1
    return expired


# --- refusals that ask for an override ------------------------------------------------------------------

OVERRIDABLE = frozenset({"approval_required", "budget_blocked", "non_essential_blocked"})


def _suggested_extension(budget: Budget, *, essential: bool, now: datetime) -> Decimal:
    """Enough extra money to bring the budget one point under its lowest threshold that blocks this
    request (block, and block-non-essential for a non-essential one), rounded up to the cent."""
    actions = {ThresholdAction.BLOCK} | (set() if essential else {ThresholdAction.BLOCK_NON_ESSENTIAL})
    blocking = [t.percent for t in budget.thresholds.all() if actions & set(t.actions)]
    bounds = budget.period_bounds_at(now)
    period = BudgetPeriod.objects.filter(budget=budget, starts_at=bounds[0]).first() if bounds else None
    limit = period.limit if period else budget.limit
    committed = period.spent + period.reserved if period else Decimal(0)
    if not blocking:
        return CENT
    lowest = min(blocking)
    target = lowest - 1 if lowest > 1 else lowest / 2
    needed = committed * 100 / target - limit
    return max(needed.quantize(CENT, rounding=ROUND_CEILING), CENT)


def override_offer(
    *,
    principal: Principal,
    code: str,
    details: Mapping[str, Any],
    ask: Mapping[str, Any] | None,
    request_id: str,
    essential: bool,
    now: datetime | None = None,
    estimated_cost: Decimal | None = None,
) -> dict:
    """What a refused admission tells its caller about overrides: where to ask, and, when the select
    request asked for one (`requestOverride`), the id of the pending request made for the budget
    that refused it, asking for what would have let the request through (the premium models it
    needed, or enough money to bring the budget under its blocking threshold). A refused retry
    finds the same pending request rather than making another. `estimated_cost` (what the refused
    request would have cost) is kept on the request for approvers."""
    if code not in OVERRIDABLE:
        return {}
    offer: dict[str, Any] = {"override_url": OVERRIDES_URL}
    budget_id = details.get("budget_id")
    if ask is None or budget_id is None:
        return offer
    now = now or timezone.now()
    budget = Budget.objects.filter(pk=budget_id, organization=principal.organization).first()
    if budget is None:
        return offer
    if code == "approval_required":
        needed = tuple(
            r["model"] for r in details.get("rejections", []) if r.get("code") == "requires_approval"
        )
        wanted = OverrideAsk(
            kind=OverrideKind.MODELS,
            reason=ask.get("reason", ""),
            duration_minutes=ask.get("duration_minutes") or settings.COSTSWITCH_OVERRIDE_DEFAULT_MINUTES,
            models=needed,
        )
    else:
        wanted = OverrideAsk(
            kind=OverrideKind.EXTENSION,
            reason=ask.get("reason", ""),
            duration_minutes=ask.get("duration_minutes") or settings.COSTSWITCH_OVERRIDE_DEFAULT_MINUTES,
            extra_amount=ask.get("extra_amount")
            or _suggested_extension(budget, essential=essential, now=now),
        )
    existing = _pending_like(principal, budget, wanted)
    if existing is None:
        try:
            existing = override_request(
                principal=principal,
                budget_id=budget.pk,
                ask=wanted,
                request_id=request_id,
                now=now,
                estimated_cost=estimated_cost,
            )
        except DomainError as error:  # the refusal stands; say why no request was made
            offer["override_error"] = error.message
            return offer
    offer["override_request_id"] = existing.pk
    return offer


def _pending_like(principal: Principal, budget: Budget, ask: OverrideAsk) -> OverrideRequest | None:
    mine = (
        {"requested_by_key": principal.api_key}
        if principal.api_key is not None
        else {"requested_by": principal.user, "requested_by_key__isnull": True}
    )
    candidates = OverrideRequest.objects.filter(
        budget=budget, kind=ask.kind, state=OverrideState.PENDING, **mine
    ).order_by("-created_at")
    for candidate in candidates[:20]:
        if ask.kind != OverrideKind.MODELS or set(ask.models) <= set(candidate.approved_models):
            return candidate
    return None
