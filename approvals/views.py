"""Web pages of the approvals app: the queue of override requests (approve / reject inline with
HTMX), the history, emergency overrides to review, and a budget's overrides (a fragment the
budget page loads, since the budgets app may not import approvals)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from approvals.models import OverrideRequest, OverrideState, ReviewState
from approvals.selectors import override_get, overrides_for_principal
from approvals.services import may_approve, override_approve, override_reject, override_review
from budgets.principals import Principal
from budgets.selectors import budget_get, budget_status
from budgets.views import may_approve_anything, page, web_view
from costswitch.errors import Conflict, PermissionDenied, ValidationFailed

HISTORY_SIZE = 25


def _can_decide(principal: Principal, override: OverrideRequest) -> bool:
    """Whether to offer the buttons; the services check again (and say why) when used."""
    own = principal.user is not None and principal.user.pk in {override.requested_by_id, override.user_id}
    return may_approve(principal, override.budget) and not own


def _row(principal: Principal, override: OverrideRequest, *, error: str = "") -> dict:
    return {
        "o": override,
        "can_decide": override.state == OverrideState.PENDING and _can_decide(principal, override),
        "can_review": override.review_state == ReviewState.PENDING_REVIEW
        and _can_decide(principal, override),
        "report": budget_status(budget=override.budget),
        "error": error,
    }


def _pending(principal: Principal):
    return overrides_for_principal(principal).filter(state=OverrideState.PENDING).order_by("created_at", "pk")


def _pending_count(principal: Principal) -> int:
    return sum(1 for o in _pending(principal) if _can_decide(principal, o))


@web_view
def queue(request: HttpRequest) -> HttpResponse:
    """Team leads, finance and admins: what waits for them, what was decided, what to review."""
    principal = request.principal
    if not may_approve_anything(principal):
        raise PermissionDenied("Only team leads, finance and admins decide overrides.")
    visible = overrides_for_principal(principal)
    pending = [_row(principal, o) for o in _pending(principal)]
    emergencies = [
        _row(principal, o)
        for o in visible.filter(emergency=True, review_state=ReviewState.PENDING_REVIEW).order_by(
            "-created_at"
        )
    ]
    history = visible.exclude(state=OverrideState.PENDING).order_by("-created_at", "-pk")[:HISTORY_SIZE]
    return page(
        request,
        "approvals/queue.html",
        {
            "pending": pending,
            "pending_count": sum(1 for row in pending if row["can_decide"]),
            "emergencies": emergencies,
            "history": history,
        },
    )


@require_POST
@web_view
def decide(request: HttpRequest, override_id: int) -> HttpResponse:
    """Approve or reject with a comment (a rejection needs one); answers with the updated row."""
    principal = request.principal
    decision = request.POST.get("decision")
    comment = request.POST.get("comment", "").strip()
    error = ""
    try:
        if decision == "approve":
            override_approve(principal=principal, override_id=override_id, comment=comment)
        elif decision == "reject":
            override_reject(principal=principal, override_id=override_id, comment=comment)
        else:
            raise ValidationFailed("Choose approve or reject.", code="invalid_decision")
    except (ValidationFailed, Conflict) as refusal:
        error = refusal.message
    return _row_response(request, override_id, error=error)


@require_POST
@web_view
def review(request: HttpRequest, override_id: int) -> HttpResponse:
    """Accept or flag an emergency override after the fact."""
    error = ""
    try:
        override_review(
            principal=request.principal,
            override_id=override_id,
            decision=request.POST.get("decision", ""),
            comment=request.POST.get("comment", "").strip(),
        )
    except (ValidationFailed, Conflict) as refusal:
        error = refusal.message
    return _row_response(request, override_id, error=error)


def _row_response(request: HttpRequest, override_id: int, *, error: str) -> HttpResponse:
    principal = request.principal
    override = override_get(principal=principal, override_id=override_id)
    context = {**_row(principal, override, error=error), "pending_count": _pending_count(principal)}
    if request.htmx:
        # 200 even for a refusal: the row shows the message where the buttons were.
        return render(request, "approvals/_decided.html", context)
    return page(request, "approvals/decided.html", context, status=400 if error else 200)


@web_view
def budget_overrides(request: HttpRequest, budget_id: int) -> HttpResponse:
    """The overrides of one budget, as a fragment of the budget page."""
    principal = request.principal
    budget = budget_get(principal=principal, budget_id=budget_id)
    overrides = overrides_for_principal(principal).filter(budget=budget).order_by("-created_at", "-pk")[:50]
    return render(request, "approvals/_budget_overrides.html", {"overrides": overrides, "budget": budget})
