"""admit(): the flow every entry point uses, through its public function."""

from decimal import Decimal
from itertools import pairwise

import pytest
from django.core.cache import cache

from budgets.choices import ReservationState
from budgets.models import Reservation
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from costswitch.errors import BudgetExceeded, Conflict
from models_registry.services import model_fallbacks_set
from selection.admission import AdmissionRequest, ApprovalRequired, BudgetBlocked, admit
from selection.estimates import ChatRequest
from selection.models import Decision
from selection.snapshot import registry_changed
from tests.budgets.factories import make_api_key, team_budget
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory
from tests.selection.conftest import quality

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


def _request(messages=HELLO, model=None, **kwargs) -> AdmissionRequest:
    return AdmissionRequest(chat=ChatRequest(messages=messages, model=model, max_tokens=1000), **kwargs)


@pytest.fixture
def key_principal(world, team_key):
    return principal_for_api_key(team_key[0])


def test_admit_reserves_the_chosen_model_cost_and_records_the_decision(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    admission = admit(
        principal=key_principal, request=_request(strategy="cost_optimized", quality_requirement=85)
    )
    decision = Decision.objects.get()
    assert decision.selected_model == "standard"
    assert admission.reservation.amount == decision.estimated_cost > 0
    assert admission.reservation.state == ReservationState.PENDING
    assert admission.reservation.metadata["task_type"] == decision.task_type
    assert decision.reservation_id == admission.reservation.pk
    assert {c["model"] for c in decision.candidates} == {"premium", "standard", "good", "weak"}


def _spend(principal, amount: str) -> None:
    usage_record_many(
        principal=principal,
        reports=[UsageReport(request_id=f"earlier-{amount}", cost=Decimal(amount), model="standard")],
    )


def _changes(decision: Decision, source: str = "threshold") -> list[dict]:
    return [c for c in decision.changes if c["source"] == source]


def test_below_every_threshold_nothing_changes_the_choice(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "40")
    admission = admit(principal=key_principal, request=_request(strategy="quality_first"))
    assert admission.decision.selected_model == "premium"
    assert admission.decision.changes == []


def test_at_70_percent_the_strategy_moves_towards_cost(ladder, key_principal, world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "72")
    admission = admit(principal=key_principal, request=_request(strategy="balanced", quality_requirement=85))
    decision = admission.decision
    assert decision.strategy == "cost_optimized"
    assert decision.selected_model == "standard"
    [change] = _changes(decision)
    assert change["action"] == "prefer-cheaper"
    assert change["budget_id"] == budget.pk and change["threshold"] == 70
    assert change["effect"] == "strategy balanced -> cost_optimized"


def test_at_85_percent_premium_models_need_an_override(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    admission = admit(
        principal=key_principal, request=_request(strategy="quality_first", quality_requirement="max")
    )
    decision = admission.decision
    assert decision.selected_model == "standard"
    assert {"model": "premium", "code": "requires_approval"}.items() <= next(
        r for r in decision.rejections if r["model"] == "premium"
    ).items()


def test_at_85_percent_a_request_only_premium_can_serve_asks_for_approval(ladder, key_principal, world):
    ladder["standard"].supports_vision = False
    ladder["standard"].save()
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    with pytest.raises(ApprovalRequired) as refused:
        admit(principal=key_principal, request=_request(messages=PHOTO))
    assert refused.value.status == 402
    decision = Decision.objects.get(pk=refused.value.details["decision_id"])
    assert (decision.outcome, decision.refusal_code) == ("refused", "approval_required")
    assert {r["model"]: r["code"] for r in decision.rejections} == {
        "premium": "requires_approval",
        "standard": "missing_capability",
        "good": "missing_capability",
        "weak": "missing_capability",
    }
    assert not Reservation.objects.exists()


def test_at_95_percent_only_essential_requests_pass_under_a_cost_ceiling(ladder, key_principal, world):
    budget = team_budget(world.alpha, limit=Decimal("100"), max_cost_per_request=Decimal("0.005"))
    _spend(key_principal, "95.5")
    with pytest.raises(BudgetBlocked) as refused:
        admit(principal=key_principal, request=_request())
    assert refused.value.code == "non_essential_blocked"
    assert refused.value.details["budget_id"] == budget.pk

    admission = admit(principal=key_principal, request=_request(priority="high", strategy="quality_first"))
    decision = admission.decision
    assert decision.selected_model == "good"  # premium needs approval, standard costs over $0.005
    assert Decimal(decision.estimated_cost) <= Decimal("0.005")
    codes = {r["model"]: r["code"] for r in decision.rejections}
    assert codes == {"premium": "requires_approval", "standard": "over_cost_limit"}


def test_at_100_percent_everything_is_refused_even_critical_without_override(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "100")
    for priority in ("normal", "critical"):
        with pytest.raises(BudgetBlocked) as refused:
            admit(principal=key_principal, request=_request(priority=priority))
        assert refused.value.code == "budget_blocked"
    assert Decision.objects.filter(outcome="refused", refusal_code="budget_blocked").count() == 2


def test_a_named_model_is_honoured_without_budget_pressure(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    admission = admit(principal=key_principal, request=_request(model="premium", strategy="cost_optimized"))
    assert admission.decision.selected_model == "premium"
    assert admission.decision.requested_model_cost == admission.decision.estimated_cost


def test_under_pressure_a_named_model_is_swapped_for_one_no_dearer_within_tolerance(
    ladder, key_principal, world
):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "75")
    admission = admit(principal=key_principal, request=_request(model="standard"))
    decision = admission.decision
    # good scores 80, standard 88: more than QUALITY_TOLERANCE below, so standard stays.
    assert decision.selected_model == "standard"

    ladder["good"].quality_scores = quality(85)
    ladder["good"].save()
    registry_changed()
    admission = admit(principal=key_principal, request=_request(model="standard", request_id="second"))
    decision = admission.decision
    assert decision.selected_model == "good"
    assert decision.requested_model_cost > decision.estimated_cost
    assert any("standard -> good" in c["effect"] for c in decision.changes)


def test_a_named_model_that_cannot_serve_is_replaced_and_the_reason_recorded(ladder, key_principal, world):
    admission = admit(principal=key_principal, request=_request(messages=PHOTO, model="good"))
    decision = admission.decision
    assert decision.selected_model in {"premium", "standard"}
    [change] = _changes(decision, "filter")
    assert change["model"] == "good" and change["code"] == "missing_capability"


def test_required_capabilities_filter_candidates(ladder, key_principal):
    request = AdmissionRequest(
        chat=ChatRequest(messages=HELLO, tools=[TOOL], response_format={"type": "json_object"}),
        strategy="cost_optimized",
        quality_requirement="low",
    )
    decision = admit(principal=key_principal, request=request).decision
    assert decision.selected_model == "good"
    assert {
        "model": "weak",
        "code": "missing_capability",
        "reason": "Does not support tools.",
    } in decision.rejections


def test_context_window_filters_candidates(ladder, key_principal):
    ladder["good"].context_window = 2_000
    ladder["good"].max_output_tokens = 1_000
    ladder["good"].save()
    long = [{"role": "user", "content": "Summarize this: " + "lorem ipsum dolor sit amet " * 400}]
    decision = admit(
        principal=key_principal, request=_request(messages=long, strategy="cost_optimized")
    ).decision
    assert next(r for r in decision.rejections if r["model"] == "good")["code"] == "context_window"


def test_inactive_models_and_disabled_providers_are_never_chosen(ladder, key_principal):
    ladder["good"].is_active = False
    ladder["good"].save()
    ladder["weak"].provider = ProviderFactory(name="cheapco", status="disabled")
    ladder["weak"].save()
    decision = admit(principal=key_principal, request=_request(strategy="cost_optimized")).decision
    codes = {r["model"]: r["code"] for r in decision.rejections}
    assert codes == {"good": "inactive", "weak": "provider_down"}
    assert decision.selected_model == "standard"


def test_a_per_request_cost_limit_from_the_caller_filters(ladder, key_principal):
    decision = admit(
        principal=key_principal, request=_request(strategy="quality_first", max_cost=Decimal("0.02"))
    ).decision
    assert decision.selected_model == "standard"
    assert {r["model"]: r["code"] for r in decision.rejections} == {"premium": "over_cost_limit"}


def test_a_retried_request_id_returns_the_first_decision_and_reserves_once(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    first = admit(principal=key_principal, request=_request(request_id="job-1"))
    again = admit(principal=key_principal, request=_request(request_id="job-1"))
    assert again.replayed and again.decision.pk == first.decision.pk
    assert Reservation.objects.count() == 1 and Decision.objects.count() == 1


def test_someone_elses_request_id_is_refused(ladder, key_principal, world):
    admit(principal=key_principal, request=_request(request_id="shared"))
    other = principal_for_api_key(make_api_key(team=world.alpha)[0])
    with pytest.raises(Conflict):
        admit(principal=other, request=_request(request_id="shared"))


def test_a_named_model_the_budget_cannot_hold_is_swapped_for_one_it_can(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("0.01"), thresholds=[])
    decision = admit(principal=key_principal, request=_request(model="premium")).decision
    assert decision.selected_model != "premium"
    assert _changes(decision, "filter")[0]["code"] == "exceeds_budget"


def test_when_no_model_fits_the_budget_the_request_is_refused_and_recorded(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("0.00001"), thresholds=[])
    with pytest.raises(BudgetExceeded) as refused:
        admit(principal=key_principal, request=_request())
    assert refused.value.status == 402
    decision = Decision.objects.get(pk=refused.value.details["decision_id"])
    assert decision.refusal_code == "budget_exceeded"
    assert {r["code"] for r in decision.rejections} == {"exceeds_budget"}
    assert not Reservation.objects.exists()


def test_the_fallback_chain_prefers_registered_fallbacks_the_reservation_covers(ladder, key_principal):
    model_fallbacks_set(model=ladder["standard"], fallback_ids=["premium", "weak", "good"])
    admission = admit(principal=key_principal, request=_request(model="standard"))
    # premium is dearer than the reservation; weak and good are covered, in registered order.
    assert [c.id for c in admission.fallback_chain] == ["weak", "good"]


def test_the_hypothetical_flow_reserves_and_stores_nothing(ladder, key_principal):
    admission = admit(principal=key_principal, request=_request(), reserve=False, record=False)
    assert admission.decision.selected_model
    assert not Reservation.objects.exists() and not Decision.objects.exists()


def test_the_task_type_is_detected_and_drives_the_quality_used(ladder, key_principal):
    ladder["good"].quality_scores = quality(80, code=40)
    ladder["good"].save()
    code = [{"role": "user", "content": "Write a Python function that parses ISO 8601 durations."}]
    decision = admit(
        principal=key_principal,
        request=_request(messages=code, strategy="cost_optimized", quality_requirement=70),
    ).decision
    assert decision.task_type == "code"
    assert decision.selected_model == "standard"


def test_reported_failures_lower_a_models_history_score(ladder, key_principal):
    ladder["good"].quality_scores = quality(88)
    ladder["good"].input_price_per_million = Decimal("2.5")
    ladder["good"].output_price_per_million = Decimal("10")
    ladder["good"].save()
    before = admit(principal=key_principal, request=_request(strategy="balanced")).decision
    scores = {c["model"]: c["components"]["history"] for c in before.candidates}
    assert scores["good"] == scores["standard"] == 0.5
    usage_record_many(
        principal=key_principal,
        reports=[
            UsageReport(
                request_id=f"r{i}", cost=Decimal("0.01"), model="good", task_type="chat", outcome="failure"
            )
            for i in range(20)
        ]
        + [
            UsageReport(
                request_id=f"s{i}",
                cost=Decimal("0.01"),
                model="standard",
                task_type="chat",
                outcome="success",
                rating=5,
            )
            for i in range(20)
        ],
    )
    cache.clear()
    after = admit(principal=key_principal, request=_request(strategy="balanced", request_id="after")).decision
    scores = {c["model"]: c["components"]["history"] for c in after.candidates}
    assert scores["good"] < 0.5 < scores["standard"]
    assert after.selected_model == "standard"


PHOTO = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("strategy", ["quality_first", "balanced", "cost_optimized"])
@pytest.mark.parametrize("model", [None, "premium", "standard"])
def test_as_a_budget_fills_up_the_choice_never_gets_dearer(ladder, key_principal, world, strategy, model):
    ModelProfileFactory(
        id="mid",
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("4"),
        quality_scores=quality(84),
    )
    team_budget(world.alpha, limit=Decimal("100"))
    request = _request(model=model, strategy=strategy, priority="high")
    costs = []
    spent = Decimal(0)
    for percent in range(0, 100, 3):
        if percent > spent:
            usage_record_many(
                principal=key_principal,
                reports=[UsageReport(request_id=f"fill-{percent}", cost=Decimal(percent) - spent)],
            )
            spent = Decimal(percent)
        decision = admit(principal=key_principal, request=request, reserve=False, record=False).decision
        costs.append((percent, decision.selected_model, decision.estimated_cost))
    assert all(later[2] <= earlier[2] for earlier, later in pairwise(costs)), costs
    if strategy == "quality_first":  # it starts dear, so the pressure must show
        assert costs[-1][2] < costs[0][2], costs
