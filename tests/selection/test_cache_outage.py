"""Admission while the shared cache (Redis) is unreachable: what it caches is read from PostgreSQL,
so requests are admitted and reserved on the ledger as usual, and edits made meanwhile reach every
process (README "Production" > "Failure behaviour")."""

from decimal import Decimal
from textwrap import dedent

import pytest

from budgets.models import BudgetPeriod
from budgets.principals import principal_for_api_key
from costswitch import cache as shared_cache
from selection.admission import AdmissionRequest, admit
from selection.estimates import ChatRequest
from selection.services import rule_set_publish
from selection.snapshot import registry_snapshot, registry_version
from tests.budgets.factories import team_budget
from tests.costswitch.caches import cache_answers_again, redis_down, reset_outage_state

ROUTE_PREMIUM_TO_STANDARD = dedent(
    """
    rules:
      - name: premium-to-standard
        when:
          - type: request
            model: premium
        then:
          - type: route-to
            model: standard
    """
)


@pytest.fixture(autouse=True)
def fresh_cache_state(monkeypatch):
    reset_outage_state(monkeypatch)


def test_admission_reads_postgresql_and_reserves_on_the_ledger_while_the_cache_is_down(
    ladder, world, team_key, django_capture_on_commit_callbacks
):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    principal = principal_for_api_key(team_key[0])
    request = AdmissionRequest(
        chat=ChatRequest(messages=[{"role": "user", "content": "Hello there"}], model="premium"),
        request_id="during-the-outage",
    )
    with redis_down():
        with django_capture_on_commit_callbacks(execute=True):
            rule_set_publish(organization=world.org, source=ROUTE_PREMIUM_TO_STANDARD)
        admission = admit(principal=principal, request=request)
        assert not shared_cache.cache_available()

    assert admission.chosen.id == "standard"  # the rule set just published, read from PostgreSQL
    assert admission.decision.rule_name == "premium-to-standard"
    period = BudgetPeriod.objects.get(budget=budget)
    assert period.reserved == admission.reservation.amount == admission.decision.estimated_cost > 0


def test_the_registry_is_read_from_postgresql_while_the_cache_is_down_and_edits_reach_every_process(
    ladder, monkeypatch, django_capture_on_commit_callbacks
):
    before = registry_snapshot()
    good = ladder["good"]
    with redis_down():
        during = registry_snapshot()
        assert during.version.startswith("offline:")  # built from PostgreSQL, not reused
        with django_capture_on_commit_callbacks(execute=True):
            good.input_price_per_million = Decimal("0.2")
            good.save()
    assert during.models["good"].input_price_per_million == Decimal("0.15")

    cache_answers_again(monkeypatch)
    version = registry_version()
    after = registry_snapshot()
    # The edit's version token was kept and written, so processes that never saw the outage reload too.
    assert version not in (before.version, during.version)
    assert after.models["good"].input_price_per_million == Decimal("0.2")
