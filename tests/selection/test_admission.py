"""admit(): the flow every entry point uses, through its public function."""

from decimal import Decimal

import pytest

from budgets.choices import ReservationState
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from selection.admission import AdmissionRequest, admit
from selection.estimates import ChatRequest
from selection.models import Decision
from tests.budgets.factories import team_budget

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


def _request(messages=HELLO, model=None, **kwargs) -> AdmissionRequest:
    return AdmissionRequest(chat=ChatRequest(messages=messages, model=model, max_tokens=1000), **kwargs)


@pytest.fixture
def key_principal(world, team_key):
    return principal_for_api_key(team_key[0])


def test_admit_reserves_the_chosen_model_cost_and_records_the_decision(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    admission = admit(principal=key_principal, request=_request(strategy="cost_optimized", quality_requirement=85))
    decision = Decision.objects.get()
    assert decision.selected_model == "standard"
    assert admission.reservation.amount == decision.estimated_cost > 0
    assert admission.reservation.state == ReservationState.PENDING
    assert admission.reservation.metadata["task_type"] == decision.task_type
    assert decision.reservation_id == admission.reservation.pk
    assert {c["model"] for c in decision.candidates} == {"premium", "standard", "good", "weak"}
