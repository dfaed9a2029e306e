"""Production learning end to end: decisions keep the request's hashed text, outcomes reported
through POST /api/v1/usage train the organization's model of the LLM that served it (the
learn_from_outcomes task), and the next decision for a similar prompt changes, saying why."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from budgets.models import UsageRecord
from selection import learning
from selection.analysis import analyze_request
from selection.engine import learned_shifts, quality_requirement
from selection.models import Decision, LearnedOutcomeModel, OutcomeLearningState
from selection.outcome_learning import FEATURES_KEY, decode_features, outcome_models_train
from selection.tasks import learn_from_outcomes
from tests.budgets.factories import make_api_key
from tests.conftest import client_with_key
from tests.models_registry.factories import ModelProfileFactory
from tests.selection.conftest import engine_candidate, quality

SELECT = "/api/v1/models/select"
USAGE = "/api/v1/usage"
EASY = "Write a short cheerful poem about {} in four rhyming lines"
HARD = "Explain the tax statute liability clause that applies to {} in this jurisdiction"
THINGS = ["spring", "cats", "rivers", "coffee", "trains", "snow", "friends", "music", "stars", "bread"]


@pytest.fixture(autouse=True)
def _learning_settings(settings):
    settings.COSTSWITCH_LEARNING_LAG_SECONDS = 0
    settings.COSTSWITCH_LEARNING_REFRESH_SECONDS = 0
    settings.COSTSWITCH_EXPLORATION_RATE = 0


@pytest.fixture
def pair(db):
    return {
        "strong": ModelProfileFactory(
            id="strong",
            input_price_per_million=Decimal("10"),
            output_price_per_million=Decimal("30"),
            quality_scores=quality(95),
        ),
        "cheap": ModelProfileFactory(
            id="cheap",
            input_price_per_million=Decimal("0.1"),
            output_price_per_million=Decimal("0.4"),
            quality_scores=quality(85),
        ),
    }


def _select(client, request_id: str, prompt: str) -> dict:
    response = client.post(
        SELECT,
        {"requestId": request_id, "request": {"messages": [{"role": "user", "content": prompt}]}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def _report(client, outcomes: list[tuple[str, str, str]]) -> None:
    """Outcomes of requests costswitch never selected: POST /api/v1/usage, in batches."""
    items = [
        {
            "requestId": rid,
            "model": model,
            "cost": "0.0001",
            "inputTokens": 20,
            "outputTokens": 40,
            "outcome": o,
        }
        for rid, model, o in outcomes
    ]
    for start in range(0, len(items), 50):
        response = client.post(USAGE, {"items": items[start : start + 50]}, format="json")
        assert response.status_code == 201, response.json()


def _settle(client, reservation_id: int, outcome: str) -> None:
    """A selected request's outcome: settling its reservation writes the ledger row with it."""
    response = client.post(
        f"/api/v1/reservations/{reservation_id}/settle", {"cost": "0.0001", "outcome": outcome}, format="json"
    )
    assert response.status_code == 201, response.json()


def _traffic(client, count: int) -> list[tuple[str, str, str]]:
    """`count` decisions, half easy (the cheap model succeeds), half hard (it fails), each settled
    with its outcome."""
    reported = []
    for i in range(count):
        hard = i % 2 == 1
        prompt = (HARD if hard else EASY).format(f"{THINGS[i % len(THINGS)]} {i}")
        body = _select(client, f"train-{i}", prompt)
        outcome = "failure" if hard else "success"
        _settle(client, body["reservationId"], outcome)
        reported.append((f"train-{i}", body["selectedModel"], outcome))
    return reported


def test_reported_outcomes_train_the_model_and_change_the_next_decision(
    world, team_key, pair, django_capture_on_commit_callbacks
):
    client = client_with_key(team_key[1])
    before = _select(client, "before", HARD.format("a small bakery"))
    assert before["selectedModel"] == "cheap"

    reported = _traffic(client, learning.MIN_SAMPLES + 20)
    assert {model for _, model, _ in reported} == {"cheap"}
    stored = Decision.objects.get(request_id="train-1").analysis[FEATURES_KEY]
    assert decode_features(stored) == learning.features(HARD.format(f"{THINGS[1]} 1"))

    with django_capture_on_commit_callbacks(execute=True):
        summary = learn_from_outcomes.delay().get()

    org = str(world.org.pk)
    assert summary[org]["learned"] == len(reported) and summary[org]["models"] == ["cheap"]
    assert LearnedOutcomeModel.objects.get(organization=world.org, model="cheap").samples == len(reported)

    hard = _select(client, "after-hard", HARD.format("a small bakery"))
    easy = _select(client, "after-easy", EASY.format("a small bakery"))
    assert (hard["selectedModel"], easy["selectedModel"]) == ("strong", "cheap")
    decision = Decision.objects.get(request_id="after-hard")
    learned = [c for c in decision.changes if c["source"] == "learned"]
    assert [c["model"] for c in learned] == ["cheap"] and "no longer meets" in learned[0]["effect"]
    cheap = next(c for c in decision.candidates if c["model"] == "cheap")
    assert cheap["learned_estimate"] < 0 and cheap["learned_shift"] < 0
    assert cheap["effective_quality"] == cheap["quality"] + cheap["learned_shift"]


def test_training_twice_learns_each_outcome_once(world, team_key, pair, django_capture_on_commit_callbacks):
    client = client_with_key(team_key[1])
    _traffic(client, 6)

    with django_capture_on_commit_callbacks(execute=True):
        first = outcome_models_train()
        second = outcome_models_train()

    assert first[str(world.org.pk)]["learned"] == 6
    assert second == {}
    state = OutcomeLearningState.objects.get(organization=world.org)
    assert (state.learned, state.version) == (6, 1)
    assert state.watermark == UsageRecord.objects.latest("pk").pk
    assert LearnedOutcomeModel.objects.get(model="cheap").samples == 6


def test_outcomes_not_routed_by_costswitch_or_too_recent_are_not_learned(world, team_key, pair, settings):
    client = client_with_key(team_key[1])
    _report(client, [("never-selected", "cheap", "success")])
    assert outcome_models_train() == {
        str(world.org.pk): {"outcomes": 1, "learned": 0, "models": [], "version": 0}
    }
    assert not LearnedOutcomeModel.objects.exists()

    settings.COSTSWITCH_LEARNING_LAG_SECONDS = 3600
    _traffic(client, 2)
    assert outcome_models_train() == {}  # younger than the lag: left for the next run


def test_one_organization_never_learns_from_another(world, team_key, pair):
    client = client_with_key(team_key[1])
    _traffic(client, 4)
    outsider = client_with_key(make_api_key(team=world.other_team)[1])
    _report(outsider, [("train-0", "cheap", "failure")])  # the same request id, in another organization

    summary = outcome_models_train()

    assert summary[str(world.org.pk)]["learned"] == 4
    assert summary[str(world.other_org.pk)]["learned"] == 0
    assert not LearnedOutcomeModel.objects.filter(organization=world.other_org).exists()


def test_the_operator_command_dry_run_changes_nothing(world, team_key, pair, capsys):
    client = client_with_key(team_key[1])
    _traffic(client, 2)

    call_command("learn_outcomes", "--dry-run")

    assert '"learned": 2' in capsys.readouterr().out
    assert not LearnedOutcomeModel.objects.exists() and not OutcomeLearningState.objects.exists()


def test_without_learning_no_features_are_stored(world, team_key, pair, settings):
    settings.COSTSWITCH_LEARNING_ENABLED = False
    _select(client_with_key(team_key[1]), "plain", "hello there")
    assert FEATURES_KEY not in Decision.objects.get(request_id="plain").analysis


def _start_learning(client, capture) -> None:
    """An organization that reports outcomes: one learned outcome turns exploration on."""
    _traffic(client, 1)
    with capture(execute=True):
        outcome_models_train()


HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _derived_requirement(messages, tools=None) -> int:
    """The requirement admission derives when the caller states none."""
    return quality_requirement(None, analyze_request(messages, tools=tools).complexity)


def _set_quality(model, score: int) -> None:
    model.quality_scores = quality(score)
    model.save()


@pytest.mark.parametrize(("short_by", "explored"), [(5, True), (15, False)])
def test_exploration_sends_a_share_of_near_misses_to_the_cheaper_model(
    world, team_key, pair, settings, django_capture_on_commit_callbacks, short_by, explored
):
    client = client_with_key(team_key[1])
    # The cheap model has enough learned outcomes for an estimate of its own (easy prompts it passes,
    # hard ones it fails: it has been the cheap choice for all of them so far)...
    _traffic(client, learning.MIN_SAMPLES + 2)
    with django_capture_on_commit_callbacks(execute=True):
        outcome_models_train()
    cheap = learning.OutcomeModel.from_bytes(bytes(LearnedOutcomeModel.objects.get(model="cheap").weights))
    [shift] = learned_shifts(
        [engine_candidate("strong", 100, "10"), engine_candidate("cheap", 0, "0.1")],
        "chat",
        learning.estimates({"cheap": cheap}, learning.features("hi")),
    ).values()
    # ... and, its learned shift for this prompt included, misses the derived requirement by
    # `short_by`: within the margin (10) or not.
    with django_capture_on_commit_callbacks(execute=True):  # the registry's new version
        _set_quality(pair["cheap"], _derived_requirement(HI) - short_by - shift)
    settings.COSTSWITCH_EXPLORATION_RATE = 1.0

    response = client.post(SELECT, {"requestId": "explore-1", "request": {"messages": HI}}, format="json")

    assert response.json()["selectedModel"] == ("cheap" if explored else "strong")
    changes = Decision.objects.get(request_id="explore-1").changes
    assert [c["source"] for c in changes] == (["exploration"] if explored else [])


def test_a_cheaper_model_without_enough_learned_outcomes_is_explored_whatever_its_margin(
    world, team_key, pair, settings, django_capture_on_commit_callbacks
):
    # Far under the requirement: the policy never picks it, so only exploration can learn it.
    _set_quality(pair["cheap"], _derived_requirement(HI) - 40)
    client = client_with_key(team_key[1])
    _start_learning(client, django_capture_on_commit_callbacks)
    settings.COSTSWITCH_EXPLORATION_RATE = 1.0

    response = client.post(SELECT, {"requestId": "cold-1", "request": {"messages": HI}}, format="json")

    assert response.json()["selectedModel"] == "cheap"
    [change] = Decision.objects.get(request_id="cold-1").changes
    assert change["source"] == "exploration"
    assert f"fewer than {learning.MIN_SAMPLES} learned outcomes" in change["effect"]


@pytest.mark.parametrize("stated", [{"qualityRequirement": 60}, {"priority": "critical"}])
def test_a_request_that_states_its_requirement_or_is_essential_is_never_explored(
    world, team_key, pair, settings, django_capture_on_commit_callbacks, stated
):
    _set_quality(pair["cheap"], _derived_requirement(HI) - 5)
    client = client_with_key(team_key[1])
    _start_learning(client, django_capture_on_commit_callbacks)
    settings.COSTSWITCH_EXPLORATION_RATE = 1.0

    body = {"requestId": "stated", "request": {"messages": HI}, **stated}
    assert client.post(SELECT, body, format="json").json()["selectedModel"] == "strong"


def test_an_organization_that_reports_no_outcomes_never_explores(world, team_key, pair, settings):
    _set_quality(pair["cheap"], _derived_requirement(HI) - 5)
    settings.COSTSWITCH_EXPLORATION_RATE = 1.0
    client = client_with_key(team_key[1])
    body = {"requestId": "quiet", "request": {"messages": HI}}
    assert client.post(SELECT, body, format="json").json()["selectedModel"] == "strong"


def test_exploration_never_picks_a_model_a_hard_filter_rejected(
    world, team_key, pair, settings, django_capture_on_commit_callbacks
):
    requirement = _derived_requirement(HI, tools=TOOLS)
    _set_quality(pair["cheap"], requirement - 5)
    # The cheapest and nearest to the requirement, but it cannot call tools.
    ModelProfileFactory(
        id="notools",
        input_price_per_million=Decimal("0.01"),
        output_price_per_million=Decimal("0.02"),
        supports_tools=False,
        quality_scores=quality(requirement - 2),
    )
    _start_learning(client_with_key(team_key[1]), django_capture_on_commit_callbacks)
    settings.COSTSWITCH_EXPLORATION_RATE = 1.0
    client = client_with_key(team_key[1])
    response = client.post(
        SELECT,
        {"requestId": "explore-tools", "request": {"messages": HI, "tools": TOOLS}},
        format="json",
    )
    decision = Decision.objects.get(request_id="explore-tools")
    assert {r["model"]: r["code"] for r in decision.rejections} == {"notools": "missing_capability"}
    assert response.json()["selectedModel"] == "cheap"
    assert [c["model"] for c in decision.changes if c["source"] == "exploration"] == ["cheap"]


def _reported(client, prefix: str, outcomes: list[str]) -> None:
    """Easy prompts, selected and settled with these outcomes, oldest first."""
    for i, outcome in enumerate(outcomes):
        body = _select(client, f"{prefix}-{i}", EASY.format(f"{THINGS[i % len(THINGS)]} {prefix} {i}"))
        assert body["selectedModel"] == "cheap"
        _settle(client, body["reservationId"], outcome)


def test_a_run_rebuilds_the_model_from_the_newest_window_of_outcomes(world, team_key, pair, settings):
    settings.COSTSWITCH_LEARNING_WINDOW = 4
    settings.COSTSWITCH_LEARNING_PASSES = 2
    client = client_with_key(team_key[1])
    _reported(client, "old", ["failure"] * 6)
    _reported(client, "new", ["success"] * 4)

    summary = outcome_models_train()

    assert summary[str(world.org.pk)]["learned"] == 10  # every new outcome seen once...
    stored = LearnedOutcomeModel.objects.get(organization=world.org, model="cheap")
    model = learning.OutcomeModel.from_bytes(bytes(stored.weights))
    # ... but the model is the newest 4 only: the old failures have aged out of it.
    assert (stored.samples, model.samples, model.successes) == (4, 4, 4.0)
    newest = [
        (decode_features(Decision.objects.get(request_id=f"new-{i}").analysis[FEATURES_KEY]), 1.0)
        for i in range(4)
    ]
    assert model.to_bytes() == learning.fit(newest, passes=2).to_bytes()


def test_new_outcomes_rebuild_from_all_of_the_window_not_only_the_new_ones(
    world, team_key, pair, django_capture_on_commit_callbacks
):
    client = client_with_key(team_key[1])
    _reported(client, "first", ["failure"] * 6)
    with django_capture_on_commit_callbacks(execute=True):
        outcome_models_train()
    _reported(client, "second", ["success"] * 4)

    with django_capture_on_commit_callbacks(execute=True):
        summary = outcome_models_train()

    assert summary[str(world.org.pk)]["learned"] == 4
    state = OutcomeLearningState.objects.get(organization=world.org)
    assert (state.learned, state.version) == (10, 2)
    model = learning.OutcomeModel.from_bytes(
        bytes(LearnedOutcomeModel.objects.get(organization=world.org, model="cheap").weights)
    )
    assert (model.samples, model.successes) == (10, 4.0)
