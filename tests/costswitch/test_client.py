"""The Python client (costswitch.client) against the real app served over HTTP (pytest-django's
live_server): select and settle, the call() context manager settling or releasing, refusals as typed
exceptions, usage reports, and that the client stands alone without Django."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache

from approvals.models import OverrideRequest
from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageRecord
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from costswitch.client import (
    BudgetBlocked,
    BudgetExceeded,
    CostSwitch,
    CostSwitchError,
    NotFound,
    Selection,
    ValidationError,
)
from selection.models import Decision
from tests.budgets.factories import make_api_key, team_budget
from tests.models_registry.factories import ModelProfileFactory

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = ["chat", "code", "math", "reasoning", "summarization", "extraction", "translation", "creative"]
HELLO = [{"role": "user", "content": "Give this thread a five word title."}]
HARD = [{"role": "user", "content": "Prove that there are infinitely many primes, step by step."}]


def registry() -> dict:
    """A utility model and a premium one, with prices that make token costs easy to check by hand."""
    return {
        "utility": ModelProfileFactory(
            id="utility",
            input_price_per_million=Decimal("0.15"),
            output_price_per_million=Decimal("0.60"),
            cached_input_price_per_million=Decimal("0.075"),
            quality_scores=dict.fromkeys(TASKS, 72),
        ),
        "premium": ModelProfileFactory(
            id="premium",
            input_price_per_million=Decimal("15"),
            output_price_per_million=Decimal("75"),
            cached_input_price_per_million=None,
            quality_scores=dict.fromkeys(TASKS, 96),
        ),
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Registry snapshots live in the cache; tables are flushed between these tests, so is it."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def models(db):
    return registry()


@pytest.fixture
def budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


@pytest.fixture
def secret(team_key) -> str:
    return team_key[1]


@pytest.fixture
def cs(live_server, secret, models, budget):
    with CostSwitch(live_server.url, secret, timeout=20) as client:
        yield client


def period_of(budget) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget)


def assert_nothing_pending(budget) -> None:
    assert not Reservation.objects.filter(state=ReservationState.PENDING).exists()
    assert period_of(budget).reserved == 0


# --- select and settle ----------------------------------------------------------------------------


def test_select_holds_the_estimated_cost_and_settle_charges_the_real_one(cs, budget):
    selection = cs.select(HELLO, model="auto", strategy="cost_optimized", max_tokens=200, request_id="t-1")

    assert isinstance(selection, Selection)
    assert (selection.request_id, selection.selected_model, selection.provider) == (
        "t-1",
        "utility",
        "openai",
    )
    reservation = Reservation.objects.get(pk=selection.reservation_id)
    assert isinstance(selection.estimated_cost, Decimal)
    assert selection.estimated_cost == reservation.amount == period_of(budget).reserved
    assert selection.decision_id == Decision.objects.get(request_id="t-1").pk
    assert selection.budget_status == "normal" and selection.replayed is False

    record = cs.settle(
        selection.reservation_id,
        cost=Decimal("0.000123456"),
        input_tokens=40,
        output_tokens=9,
        model="utility",
    )

    assert (record.cost, record.request_id, record.reservation_id) == (
        Decimal("0.000123456"),
        "t-1",
        selection.reservation_id,
    )
    assert UsageRecord.objects.get().cost == Decimal("0.000123456")
    assert period_of(budget).spent == Decimal("0.000123456")
    assert_nothing_pending(budget)


def test_a_named_model_is_honoured_and_its_fallback_chain_and_prices_come_typed(cs):
    selection = cs.select(HARD, model="premium", quality="max", max_tokens=1000)

    assert selection.model == "premium"
    assert all(isinstance(step.estimated_cost, Decimal) for step in selection.fallback_chain)
    prices = cs.prices("premium")
    assert (prices.input_per_million, prices.output_per_million, prices.cached_input_per_million) == (
        Decimal("15"),
        Decimal("75"),
        None,
    )


def test_settle_tokens_prices_the_call_from_the_models_list_prices(cs, budget):
    selection = cs.select(HELLO, model="utility", max_tokens=500)

    # 1000 input (200 of them cached) and 500 output tokens on utility:
    # 800 * 0.15/1M + 200 * 0.075/1M + 500 * 0.60/1M = 0.00012 + 0.000015 + 0.0003
    record = cs.settle_tokens(
        selection.reservation_id,
        model="utility",
        input_tokens=1000,
        cached_input_tokens=200,
        output_tokens=500,
    )

    assert record.cost == Decimal("0.000435")
    assert (record.provider, record.cached_input_tokens) == ("openai", 200)
    assert period_of(budget).spent == Decimal("0.000435")
    assert_nothing_pending(budget)


def test_release_drops_the_hold_and_twice_is_harmless(cs, budget):
    selection = cs.select(HELLO)

    first = cs.release(selection.reservation_id)
    again = cs.release(selection.reservation_id)

    assert first.state == again.state == "released"
    assert first.amount == selection.estimated_cost
    assert not UsageRecord.objects.exists()
    assert_nothing_pending(budget)


# --- the call() context manager -------------------------------------------------------------------


def test_the_call_block_settles_what_the_block_reported(cs, budget):
    with cs.call(HELLO, model="auto", strategy="cost_optimized", max_tokens=100) as call:
        assert call.model == "utility"
        assert Reservation.objects.get().state == ReservationState.PENDING
        call.usage(input_tokens=2000, output_tokens=100, outcome="success", agent="titler")

    # 2000 * 0.15/1M + 100 * 0.60/1M = 0.0003 + 0.00006
    usage = UsageRecord.objects.get()
    assert (usage.cost, usage.model, usage.agent, usage.outcome) == (
        Decimal("0.00036"),
        "utility",
        "titler",
        "success",
    )
    assert usage.request_id == call.request_id and call.record.id == usage.pk
    assert Reservation.objects.get().state == ReservationState.SETTLED
    assert period_of(budget).spent == Decimal("0.00036")
    assert_nothing_pending(budget)


def test_the_call_block_settles_at_the_cost_given_and_the_model_really_called(cs, budget):
    with cs.call(HELLO, model="utility") as call:
        call.usage(input_tokens=10, output_tokens=5, cost=Decimal("0.000000007"), model="premium")

    usage = UsageRecord.objects.get()
    assert (usage.cost, usage.model) == (Decimal("0.000000007"), "premium")
    assert period_of(budget).spent == Decimal("0.000000007")
    assert_nothing_pending(budget)


def test_the_call_block_releases_the_hold_when_the_llm_call_fails(cs, budget):
    with pytest.raises(TimeoutError, match="provider timed out"), cs.call(HELLO) as call:
        assert Reservation.objects.get(pk=call.selection.reservation_id).state == ReservationState.PENDING
        raise TimeoutError("provider timed out")

    assert not UsageRecord.objects.exists()
    assert Reservation.objects.get().state == ReservationState.RELEASED
    assert period_of(budget).spent == 0
    assert_nothing_pending(budget)


def test_usage_reported_before_a_later_error_is_still_charged(cs, budget):
    with pytest.raises(KeyError), cs.call(HELLO, model="utility") as call:
        call.usage(input_tokens=1000, output_tokens=0)
        {}["parse the reply"]  # the code after the LLM call fails

    assert UsageRecord.objects.get().cost == Decimal("0.00015")
    assert_nothing_pending(budget)


def test_a_block_that_reports_nothing_is_an_error_and_charges_nothing(cs, budget):
    with pytest.raises(CostSwitchError) as refused, cs.call(HELLO):
        pass

    assert refused.value.code == "usage_not_reported"
    assert not UsageRecord.objects.exists()
    assert Reservation.objects.get().state == ReservationState.RELEASED
    assert_nothing_pending(budget)


def test_a_float_cost_is_refused_before_anything_is_sent(cs, budget):
    with pytest.raises(TypeError, match="float"), cs.call(HELLO) as call:
        call.usage(input_tokens=1, output_tokens=1, cost=0.1)

    # The TypeError came from the settle on exit: the hold is left to expire, nothing charged.
    assert not UsageRecord.objects.exists()


# --- refusals -------------------------------------------------------------------------------------


def test_a_budget_refusal_raises_budget_exceeded_naming_the_decision(live_server, world, models, secret):
    team_budget(world.alpha, limit=Decimal("0.00001"), thresholds=[])

    with CostSwitch(live_server.url, secret) as cs, pytest.raises(BudgetExceeded) as refused:
        cs.select(HARD, model="premium", max_tokens=4000, request_id="too-dear")

    error = refused.value
    assert (error.status, error.code, error.request_id) == (402, "budget_exceeded", "too-dear")
    # Not enough money left: no override offered (the blocking refusals below carry one).
    assert error.message and error.override_url is None
    assert error.decision_id == Decision.objects.get(request_id="too-dear").pk
    assert not Reservation.objects.exists()


def test_a_blocked_budget_raises_budget_blocked_and_an_essential_request_passes(live_server, world, models):
    key, secret = make_api_key(team=world.alpha)
    team_budget(world.alpha, limit=Decimal("100"))
    usage_record_many(
        principal=principal_for_api_key(key),
        reports=[UsageReport(request_id="earlier", cost=Decimal("96"), model="utility")],
    )

    with CostSwitch(live_server.url, secret) as cs:
        with pytest.raises(BudgetBlocked) as refused:
            cs.select(HELLO, priority="normal", request_override={"reason": "Release notes due today"})
        admitted = cs.select(HELLO, priority="high")

    error = refused.value
    assert (error.status, error.code, error.override_url) == (
        402,
        "non_essential_blocked",
        "/api/v1/overrides",
    )
    assert error.override_request_id == OverrideRequest.objects.get(reason="Release notes due today").pk
    assert admitted.reservation_id is not None


def test_bad_input_and_unknown_objects_raise_their_own_errors(cs):
    with pytest.raises(ValidationError) as invalid:
        cs.select(HELLO, model="no-such-model")
    with pytest.raises(NotFound) as missing:
        cs.release(987654)

    assert (invalid.value.status, invalid.value.code) == (400, "unknown_model")
    assert (missing.value.status, missing.value.code) == (404, "not_found")


def test_another_organizations_reservation_is_not_found(live_server, world, models, cs):
    selection = cs.select(HELLO)
    _, outsider = make_api_key(team=world.other_team)

    with CostSwitch(live_server.url, outsider) as theirs, pytest.raises(NotFound):
        theirs.release(selection.reservation_id)

    assert Reservation.objects.get().state == ReservationState.PENDING


# --- estimate, usage reports, status ----------------------------------------------------------------


def test_estimate_prices_each_model_and_reserves_nothing(cs, budget):
    estimate = cs.estimate(HELLO, model="utility", alternatives=["premium"], max_tokens=100)

    assert [e.model for e in estimate.estimates] == ["utility", "premium"]
    assert all(isinstance(e.estimated_cost, Decimal) for e in estimate.estimates)
    # 100 output tokens: 100 * 0.60/1M on utility, 100 * 75/1M on premium, plus the same prompt.
    utility, premium = estimate.estimates
    assert (utility.output_cost, premium.output_cost) == (Decimal("0.00006"), Decimal("0.0075"))
    assert utility.input_tokens == premium.input_tokens
    assert estimate.recommendation == "utility"  # the requested model is already the cheapest
    assert estimate.budget_status["budgetId"] == budget.pk
    assert not Reservation.objects.exists()


def test_report_usage_records_once_per_request_id(cs, budget):
    first = cs.report_usage(request_id="job-7", model="utility", cost=Decimal("0.25"), input_tokens=10)
    again = cs.report_usage(request_id="job-7", model="utility", cost=Decimal("0.25"), input_tokens=10)
    made_up = cs.report_usage(model="premium", cost="0.5")

    assert (first.replayed, again.replayed, again.id) == (False, True, first.id)
    assert made_up.request_id.startswith("cs-") and made_up.cost == Decimal("0.5")
    assert UsageRecord.objects.count() == 2
    assert period_of(budget).spent == Decimal("0.75")


def test_a_batch_report_charges_new_items_and_replays_known_ones(cs, budget):
    cs.report_usage(request_id="b-1", model="utility", cost=Decimal("1"))

    batch = cs.report_usage_batch(
        [
            {"request_id": "b-1", "model": "utility", "cost": Decimal("1")},
            {"request_id": "b-2", "model": "premium", "cost": Decimal("2.000000001")},
        ]
    )

    assert (batch.created, batch.replayed) == (1, 1)
    assert [item.request_id for item in batch.items] == ["b-1", "b-2"]
    assert period_of(budget).spent == Decimal("3.000000001")


def test_budget_status_and_scope_status_show_spend_and_holds(cs, world, budget):
    cs.report_usage(request_id="s-1", model="utility", cost=Decimal("25"))
    held = cs.select(HELLO)

    status = cs.budget_status(budget.pk)
    scope = cs.scope_status("team", world.alpha.pk)

    assert (status.budget_id, status.limit, status.current_amount) == (
        budget.pk,
        Decimal("100"),
        Decimal("25"),
    )
    assert status.reserved == held.estimated_cost
    assert status.percent_used == Decimal("25")
    assert scope.budgets[0].budget_id == budget.pk and scope.aggregate_status == status.status


# --- standing alone ---------------------------------------------------------------------------------


def test_the_client_package_imports_nothing_of_django_or_the_apps(tmp_path):
    """A service vendors costswitch/client/ as it is: only httpx and the standard library."""
    package = Path(__file__).resolve().parents[2] / "costswitch" / "client"
    script = f"""
import importlib.abc, importlib.util, sys
BANNED = {{"django", "rest_framework", "celery", "budgets", "selection", "approvals", "analytics",
          "models_registry", "costswitch"}}
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BANNED:
            raise ImportError("client imported " + name)
sys.meta_path.insert(0, Guard())
spec = importlib.util.spec_from_file_location(
    "vendored", {str(package / "__init__.py")!r}, submodule_search_locations=[{str(package)!r}]
)
module = importlib.util.module_from_spec(spec)
sys.modules["vendored"] = module
spec.loader.exec_module(module)
print(module.CostSwitch.__name__, module.AsyncCostSwitch.__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CostSwitch", "AsyncCostSwitch"]


def test_importing_costswitch_client_loads_no_django():
    """Services that install costswitch for the client alone import `costswitch.client`: the
    project package itself must not pull in Django or Celery."""
    code = (
        "import sys, costswitch.client\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'django', 'celery', 'budgets'})\n"
        "assert not loaded, loaded"
    )
    env = {"PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
