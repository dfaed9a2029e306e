"""Web pages of the budgets app (budget list, detail, create, edit, alert acknowledgement) and the
helpers every web view shares: login, the caller's principal, domain errors as pages, navigation.

Views stay thin: reads come from `budgets.selectors` / `budgets.reports`, writes go through
`budgets.services`, so a form obeys exactly the rules the API does."""

from collections.abc import Callable
from decimal import Decimal
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from budgets import reports
from budgets.choices import DEFAULT_THRESHOLDS, CarryOver, PeriodKind, ThresholdAction, UsageOutcome
from budgets.models import Budget
from budgets.principals import Principal, principal_for_user
from budgets.selectors import budget_get, budget_status
from budgets.services.alerts import alert_acknowledge
from budgets.services.budgets import ThresholdSpec, budget_create, budget_update
from costswitch import charts
from costswitch.errors import DomainError, NotFound, PermissionDenied

USAGE_PAGE_SIZE = 25
DATETIME_INPUT = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

# --- shared by every web view -------------------------------------------------------------------


def web_view(view: Callable) -> Callable:
    """Logged in, resolved to a principal (`request.principal`), domain errors shown as pages:
    NotFound is a 404 (objects of other teams or organizations do not exist for the caller),
    PermissionDenied a 403, any other refusal its own status with its message."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            request.principal = principal_for_user(request.user)
            return view(request, *args, **kwargs)
        except NotFound as error:
            raise Http404(error.message) from error
        except DomainError as error:
            return render(request, "error.html", {"error": error, "nav": nav(request)}, status=error.status)

    return wrapper


def may_approve_anything(principal: Principal) -> bool:
    """Approvers are finance, admins and team leads; members and keys never decide overrides."""
    return principal.api_key is None and (principal.org_wide or bool(principal.lead_team_ids))


def nav(request: HttpRequest) -> list[dict]:
    """Navigation limited to what the caller's role allows."""
    principal: Principal | None = getattr(request, "principal", None)
    items = [("dashboard", "Dashboard"), ("budgets:list", "Budgets")]
    if principal is not None and may_approve_anything(principal):
        items.append(("approvals:queue", "Approvals"))
    items += [("selection:simulator", "Simulator"), ("selection:models", "Models")]
    if principal is not None and principal.org_wide:
        items.append(("selection:rules", "Rules"))
    result = []
    for name, label in items:
        url = reverse(name)
        current = request.path == url or (url != "/" and request.path.startswith(url) and name != "dashboard")
        result.append({"url": url, "label": label, "current": current})
    if request.user.is_staff:
        result.append({"url": reverse("admin:index"), "label": "Admin", "current": False})
    return result


def page(
    request: HttpRequest, template: str, context: dict | None = None, *, status: int = 200
) -> HttpResponse:
    """A full page: the template plus the navigation of the base layout."""
    return render(request, template, {"nav": nav(request), **(context or {})}, status=status)


def form_error(form: forms.Form, error: DomainError, fields: dict[str, str]) -> None:
    """A service's refusal shown on the form: on the field its code is about, else on the form."""
    field = fields.get(error.code)
    form.add_error(field if field in form.fields else None, error.message)


# --- forms --------------------------------------------------------------------------------------


class ThresholdForm(forms.Form):
    percent = forms.DecimalField(
        required=False, min_value=Decimal("0.01"), max_value=Decimal(1000), decimal_places=2, label="Percent"
    )
    actions = forms.MultipleChoiceField(
        required=False, choices=ThresholdAction.choices, widget=forms.CheckboxSelectMultiple
    )

    def clean(self):
        data = super().clean()
        if data.get("percent") is not None and not data.get("actions"):
            self.add_error("actions", "Pick at least one action for this threshold.")
        if data.get("percent") is None and data.get("actions") and "percent" not in self.errors:
            self.add_error("percent", "Give the percent at which these actions apply.")
        return data


class BaseThresholdFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        percents = [
            f.cleaned_data["percent"] for f in self.forms if f.cleaned_data.get("percent") is not None
        ]
        if len(set(percents)) != len(percents):
            raise forms.ValidationError("Each threshold percent may appear once.")

    def specs(self) -> list[ThresholdSpec]:
        rows = [f.cleaned_data for f in self.forms if f.cleaned_data.get("percent") is not None]
        return [
            ThresholdSpec(r["percent"], tuple(r["actions"])) for r in sorted(rows, key=lambda r: r["percent"])
        ]


ThresholdFormSet = forms.formset_factory(ThresholdForm, formset=BaseThresholdFormSet, extra=1, max_num=20)


class BudgetEditForm(forms.Form):
    name = forms.CharField(max_length=200)
    limit = forms.DecimalField(min_value=Decimal(0), max_digits=18, decimal_places=6, help_text="Per period.")
    ends_at = forms.DateTimeField(
        required=False,
        input_formats=DATETIME_INPUT,
        label="Ends at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Required for a custom period; empty: runs on.",
    )
    restricted_models = forms.CharField(
        required=False,
        label="Restricted models",
        help_text="Model ids refused once a restrict-models threshold is crossed, separated by commas.",
    )
    max_cost_per_request = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=18,
        decimal_places=6,
        label="Max cost per request",
        help_text="Applies once a strict-cost-limit threshold is crossed.",
    )
    carry_over = forms.ChoiceField(choices=CarryOver.choices, initial=CarryOver.NONE, label="Carry over")
    carry_over_cap = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=18, decimal_places=6, label="Carry-over cap"
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active (enforced)")

    def clean_restricted_models(self) -> list[str]:
        raw = self.cleaned_data["restricted_models"]
        return list(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))


class BudgetCreateForm(BudgetEditForm):
    field_order = ["name", "scope", "period", "limit", "starts_at", "ends_at"]
    scope = forms.ChoiceField(label="Scope", help_text="Who the budget limits.")
    period = forms.ChoiceField(choices=PeriodKind.choices, initial=PeriodKind.MONTHLY)
    starts_at = forms.DateTimeField(
        required=False,
        input_formats=DATETIME_INPUT,
        label="Starts at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Empty: now.",
    )

    def __init__(self, *args, scopes: list[reports.ScopeChoice], **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["is_active"]
        self.fields["scope"].choices = [(s.value, s.label) for s in scopes]


class UsageFilterForm(forms.Form):
    """The budget page's usage filters, read from the query string (a GET form: it works without
    JavaScript, and HTMX sends the same fields). Choices come from the budget's visible usage."""

    model = forms.ChoiceField(required=False, label="Model")
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Team")
    user = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Person")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    task_type = forms.ChoiceField(required=False, label="Task type")
    outcome = forms.ChoiceField(
        required=False,
        label="Outcome",
        choices=[("", "Any"), *UsageOutcome.choices, (reports.NO_OUTCOME, "Not reported")],
    )

    def __init__(self, *args, choices: reports.UsageFilterChoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any"), *((m, m) for m in choices.models)]
        self.fields["team"].choices = [("", "Any"), *choices.teams]
        self.fields["user"].choices = [("", "Any"), *choices.users]
        self.fields["task_type"].choices = [("", "Any"), *((t, t) for t in choices.task_types)]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end day must not be before the start day.")
        return data

    def filters(self) -> reports.UsageFilters:
        """The valid fields as filters; a field with an error filters nothing (Django leaves it out
        of cleaned_data)."""
        data = self.cleaned_data
        return reports.UsageFilters(
            model=data.get("model") or "",
            team_id=data.get("team"),
            user_id=data.get("user"),
            since=data.get("since"),
            until=data.get("until"),
            task_type=data.get("task_type") or "",
            outcome=data.get("outcome") or "",
        )


# Which form field a service refusal is about.
_ERROR_FIELDS = {
    "end_date_required": "ends_at",
    "end_before_start": "ends_at",
    "invalid_carry_over": "carry_over",
    "carry_over_cap_without_policy": "carry_over_cap",
    "carry_over_needs_recurring_period": "carry_over",
    "negative_amount": "carry_over_cap",
    "unknown_scope": "scope",
    "permission_denied": "scope",
}


# --- pages --------------------------------------------------------------------------------------


@web_view
def budget_list(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    show_archived = request.GET.get("archived") == "1"
    statuses = reports.budget_statuses(principal, active_only=not show_archived)
    return page(
        request,
        "budgets/list.html",
        {
            "reports": statuses,
            "show_archived": show_archived,
            "can_create": bool(reports.manageable_scopes(principal)),
        },
    )


@web_view
def budget_detail(request: HttpRequest, budget_id: int) -> HttpResponse:
    principal = request.principal
    budget = budget_get(principal=principal, budget_id=budget_id)
    report = budget_status(budget=budget)
    chart = charts.daily_chart(
        reports.daily_spend(report),
        total_days=reports.period_days(report),
        limit=report.limit,
        projected_total=report.projected_total,
    )
    return page(
        request,
        "budgets/detail.html",
        {
            "budget": budget,
            "report": report,
            "chart": chart,
            "alerts": reports.active_alerts(principal, budget=budget),
            "can_manage": principal.can_manage_scope(budget.scope_type, budget.scope_id),
            **_usage_context(request, budget),
        },
    )


def _usage_context(request: HttpRequest, budget: Budget) -> dict:
    """The filtered, paginated usage table; the query string (without the page) carries the filters
    into the pagination links."""
    principal = request.principal
    form = UsageFilterForm(
        request.GET, auto_id="usage-%s", choices=reports.usage_filter_choices(principal, budget)
    )
    form.is_valid()
    usage = reports.budget_usage_filtered(principal, budget, form.filters())
    paginator = Paginator(usage, USAGE_PAGE_SIZE)
    query = request.GET.copy()
    query.pop("page", None)
    filtered = any(value for key, value in query.items() if key in form.fields)
    return {
        "usage_page": paginator.get_page(request.GET.get("page")),
        "usage_form": form,
        "usage_query": query.urlencode(),
        "usage_filtered": filtered,
        "budget": budget,
    }


@web_view
def budget_usage(request: HttpRequest, budget_id: int) -> HttpResponse:
    """The usage table alone (filter and pagination by HTMX), or the whole page without HTMX."""
    budget = budget_get(principal=request.principal, budget_id=budget_id)
    if not request.htmx:
        return redirect(f"{reverse('budgets:detail', args=[budget.pk])}?{request.GET.urlencode()}")
    return render(request, "budgets/_usage.html", _usage_context(request, budget))


def _threshold_initial(budget: Budget | None) -> list[dict]:
    if budget is None:
        return [{"percent": Decimal(p), "actions": list(a)} for p, a in DEFAULT_THRESHOLDS]
    return [{"percent": t.percent, "actions": list(t.actions)} for t in budget.thresholds.all()]


@web_view
def budget_create_view(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    scopes = reports.manageable_scopes(principal)
    if not scopes:
        raise PermissionDenied("You manage no budgets: ask a team lead or finance.")
    form = BudgetCreateForm(request.POST or None, scopes=scopes)
    thresholds = ThresholdFormSet(request.POST or None, initial=_threshold_initial(None), prefix="thresholds")
    if request.method == "POST" and form.is_valid() and thresholds.is_valid():
        data = form.cleaned_data
        scope_type, scope_id = data["scope"].split(":")
        try:
            budget = budget_create(
                principal=principal,
                name=data["name"],
                scope_type=scope_type,
                scope_id=int(scope_id),
                limit=data["limit"],
                period=data["period"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                thresholds=thresholds.specs(),
                restricted_models=data["restricted_models"],
                max_cost_per_request=data["max_cost_per_request"],
                carry_over=data["carry_over"],
                carry_over_cap=data["carry_over_cap"],
            )
        except (NotFound, DomainError) as error:
            form_error(form, error, _ERROR_FIELDS)
        else:
            messages.success(request, f"Budget {budget.name!r} created.")
            return redirect("budgets:detail", budget_id=budget.pk)
    status = 400 if request.method == "POST" else 200
    return page(
        request, "budgets/form.html", {"form": form, "thresholds": thresholds, "budget": None}, status=status
    )


@web_view
def budget_edit_view(request: HttpRequest, budget_id: int) -> HttpResponse:
    principal = request.principal
    budget = budget_get(principal=principal, budget_id=budget_id)
    if not principal.can_manage_scope(budget.scope_type, budget.scope_id):
        raise PermissionDenied("You may not manage this budget.")
    initial = {
        "name": budget.name,
        "limit": budget.limit,
        "ends_at": timezone.localtime(budget.ends_at) if budget.ends_at else None,
        "restricted_models": ", ".join(budget.restricted_models),
        "max_cost_per_request": budget.max_cost_per_request,
        "carry_over": budget.carry_over,
        "carry_over_cap": budget.carry_over_cap,
        "is_active": budget.is_active,
    }
    form = BudgetEditForm(request.POST or None, initial=initial)
    thresholds = ThresholdFormSet(
        request.POST or None, initial=_threshold_initial(budget), prefix="thresholds"
    )
    if request.method == "POST" and form.is_valid() and thresholds.is_valid():
        try:
            budget_update(
                principal=principal, budget=budget, thresholds=thresholds.specs(), **form.cleaned_data
            )
        except DomainError as error:
            form_error(form, error, _ERROR_FIELDS)
        else:
            messages.success(request, f"Budget {budget.name!r} saved.")
            return redirect("budgets:detail", budget_id=budget.pk)
    status = 400 if request.method == "POST" else 200
    return page(
        request,
        "budgets/form.html",
        {"form": form, "thresholds": thresholds, "budget": budget},
        status=status,
    )


@require_POST
@web_view
def alert_acknowledge_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = alert_acknowledge(principal=request.principal, alert_id=alert_id)
    if request.htmx:
        return render(request, "budgets/_alert.html", {"alert": alert})
    return redirect("budgets:detail", budget_id=alert.budget_id)
