"""Web pages of the selection app: the simulator (a hypothetical request through the same
`admit()` as the API, nothing reserved or stored), the explainer page of a recorded decision,
the model registry with prices and quality, and the steering rules editor."""

import json

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from budgets.principals import Principal, attribution_for
from budgets.views import page, web_view
from costswitch.errors import DomainError, NotFound, PermissionDenied
from models_registry.models import ModelProfile
from selection import selectors
from selection.admission import AdmissionRequest, admit
from selection.api.serializers import ChatRequestSerializer, chat_request, explanation_body
from selection.choices import Priority, Strategy
from selection.rules import RulesInvalid, parse_rules
from selection.services import rule_set_publish

SIMULATOR_PATH = "/simulator"
SAMPLE = "user: Summarize this paragraph in two sentences: budgets keep LLM spend in check."


class SimulatorForm(forms.Form):
    messages = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        label="Messages",
        help_text='One message per line as "role: text" (system, user, assistant), a JSON list of '
        "messages, or plain text (one user message).",
    )
    model = forms.CharField(required=False, max_length=100, label="Requested model", help_text="Empty: auto.")
    strategy = forms.ChoiceField(
        required=False, choices=[("", "The organization's default"), *Strategy.choices], label="Strategy"
    )
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL, label="Priority")
    attribution = forms.ChoiceField(required=False, label="Charge as", help_text="Whose budgets apply.")

    def __init__(self, *args, principal: Principal, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["attribution"].choices = _attribution_choices(principal)

    def clean_messages(self) -> list[dict]:
        text = self.cleaned_data["messages"].strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                raise forms.ValidationError(f"Not valid JSON: {error.msg} (line {error.lineno}).") from error
        else:
            parsed = _role_lines(text)
        serializer = ChatRequestSerializer(data={"messages": parsed})
        if not serializer.is_valid():
            raise forms.ValidationError(f"These messages are not valid: {serializer.errors}")
        return parsed


def _role_lines(text: str) -> list[dict]:
    roles = ("system", "user", "assistant")
    result: list[dict] = []
    for line in text.splitlines():
        head, _, rest = line.partition(":")
        if head.strip().lower() in roles and rest:
            result.append({"role": head.strip().lower(), "content": rest.strip()})
        elif result:
            result[-1]["content"] += "\n" + line
        else:
            result.append({"role": "user", "content": line})
    return result


def _attribution_choices(principal: Principal) -> list[tuple[str, str]]:
    """Yourself, and the teams and people you may charge as (finance: everyone; a lead: her teams)."""
    org = principal.organization
    choices = [("", "Myself")]
    teams = org.teams.all() if principal.org_wide else org.teams.filter(pk__in=principal.lead_team_ids)
    choices += [(f"team:{t.pk}", f"Team {t.name}") for t in teams.order_by("name")]
    if principal.org_wide:
        choices += [(f"user:{u.pk}", f"Person {u.get_username()}") for u in org.users.order_by("username")]
    return choices


@web_view
def simulator(request: HttpRequest) -> HttpResponse:
    form = SimulatorForm(initial={"messages": SAMPLE}, principal=request.principal)
    return page(request, "selection/simulator.html", {"form": form})


@web_view
def simulate(request: HttpRequest) -> HttpResponse:
    """The simulator's result partial (HTMX, debounced as the user types)."""
    principal = request.principal
    form = SimulatorForm(request.POST or request.GET, principal=principal)
    context: dict = {"form": form}
    if form.is_valid():
        data = form.cleaned_data
        team_id = user_id = None
        kind, _, pk = data["attribution"].partition(":")
        if kind == "team":
            team_id = int(pk)
        elif kind == "user":
            user_id = int(pk)
        try:
            attribution_for(principal, team_id=team_id, user_id=user_id)
            chat = chat_request({"messages": data["messages"], "model": data["model"] or None})
            admission = admit(
                principal=principal,
                request=AdmissionRequest(
                    chat=chat,
                    path=SIMULATOR_PATH,
                    strategy=data["strategy"] or None,
                    priority=data["priority"],
                    team_id=team_id,
                    user_id=user_id,
                ),
                reserve=False,
                record=False,
            )
        except DomainError as refusal:
            context["refusal"] = refusal
        else:
            context["x"] = explanation_body(admission.decision)
    return render(request, "selection/_result.html", context)


@web_view
def decision_detail(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = selectors.decision_get(principal=request.principal, decision_id=decision_id)
    return page(request, "selection/decision.html", {"x": explanation_body(decision), "decision": decision})


@web_view
def decision_for_request(request: HttpRequest, request_id: str) -> HttpResponse:
    """Usage records and overrides link here by request id; a retried id may have several."""
    decision = (
        selectors.decisions_for_principal(request.principal)
        .filter(request_id=request_id)
        .order_by("-pk")
        .first()
    )
    if decision is None:
        raise NotFound(f"No decision recorded for request {request_id!r} (reported usage has none).")
    return redirect("selection:decision", decision_id=decision.pk)


@web_view
def model_list(request: HttpRequest) -> HttpResponse:
    models = ModelProfile.objects.select_related("provider").order_by("provider__name", "id")
    task_types = sorted({task for m in models for task in m.quality_scores})
    rows = [(m, [m.quality_scores.get(t) for t in task_types]) for m in models]
    return page(request, "selection/models.html", {"rows": rows, "task_types": task_types})


class RulesForm(forms.Form):
    source = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16}), label="Rules (YAML)", required=False, strip=False
    )
    note = forms.CharField(required=False, max_length=300, label="Note for this version")
    sample = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), label="Sample request (messages)", initial=SAMPLE
    )


@web_view
def rules(request: HttpRequest) -> HttpResponse:
    """Finance and admins edit the organization's steering rules: validate, try on a sample
    request with the draft (nothing stored), publish a new version."""
    principal = request.principal
    if not principal.org_wide:
        raise PermissionDenied("Only finance and admins edit the steering rules.")
    current = selectors.rules_in_force(principal.organization).version
    form = RulesForm(request.POST or None, initial={"source": current.source if current else ""})
    context: dict = {"form": form, "current": current}
    if request.method == "POST" and form.is_valid():
        source = form.cleaned_data["source"]
        try:
            if request.POST.get("action") == "publish":
                version = rule_set_publish(
                    organization=principal.organization,
                    source=source,
                    created_by=request.user,
                    note=form.cleaned_data["note"],
                )
                messages.success(request, f"Rules version {version.version} is in force.")
                return redirect("selection:rules")
            draft = parse_rules(source, known_models=set(ModelProfile.objects.values_list("pk", flat=True)))
            chat = chat_request({"messages": _role_lines(form.cleaned_data["sample"])})
            admission = admit(
                principal=principal,
                request=AdmissionRequest(chat=chat, path=SIMULATOR_PATH),
                reserve=False,
                record=False,
                rules=draft,
            )
            context["x"] = explanation_body(admission.decision)
            context["valid"] = True
        except RulesInvalid as invalid:
            context["problems"] = invalid.details["problems"]
        except DomainError as refusal:
            context["refusal"] = refusal
            context["valid"] = True
    return page(request, "selection/rules.html", context, status=400 if context.get("problems") else 200)
