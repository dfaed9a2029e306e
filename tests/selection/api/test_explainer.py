"""The explainer over HTTP: one decision, a request's decisions, recent decisions with filters,
statistics with savings, hypothetical explanations, and who may read which decision."""

from datetime import UTC, datetime
from decimal import Decimal
from textwrap import dedent

import pytest
import simplejson
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from budgets.models import BudgetPeriod, Reservation
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from selection.models import Decision
from selection.outcome_learning import FEATURES_KEY
from selection.services import rule_set_publish
from tests.budgets.factories import make_api_key, team_budget
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory
from tests.selection.conftest import quality

SELECT = "/api/v1/models/select"
EXPLAINER = "/api/v1/explainer"
HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
COMPONENTS = {"cost", "quality", "taskFit", "history"}


def exact(response) -> dict:
    return simplejson.loads(response.content, parse_float=Decimal)


def select(client, *, messages=HELLO, **body):
    request = body.pop("request", {})
    return client.post(SELECT, {"request": {"messages": messages, **request}, **body}, format="json")


def generate(client, *, messages=HELLO, **body):
    request = body.pop("request", {})
    return client.post(
        f"{EXPLAINER}/generate", {"request": {"messages": messages, **request}, **body}, format="json"
    )


def request_ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [d["requestId"] for d in response.json()["results"]]


def spend(api_key, amount: str) -> None:
    usage_record_many(
        principal=principal_for_api_key(api_key),
        reports=[UsageReport(request_id=f"earlier-{amount}", cost=Decimal(amount), model="standard")],
    )


@pytest.fixture
def key_client(world, team_key):
    return client_with_key(team_key[1])


@pytest.fixture
def alpha_budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


# --- one decision -------------------------------------------------------------------------------------


def test_one_decision_is_explained_in_full(world, ladder, key_client, alpha_budget):
    selected = select(key_client, request={"tools": [TOOL]}, requestId="with-tools").json()

    response = key_client.get(f"{EXPLAINER}/{selected['decisionId']}")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["decisionId"], body["requestId"], body["outcome"], body["refusal"]) == (
        selected["decisionId"],
        "with-tools",
        "admitted",
        None,
    )
    assert body["path"] == SELECT
    assert (body["selectedModel"], body["reservationId"]) == (
        selected["selectedModel"],
        selected["reservationId"],
    )
    assert (body["teamId"], body["userId"]) == (world.alpha.pk, None)
    assert body["latencyMs"] > 0

    weights = body["weights"]
    assert set(weights) == COMPONENTS
    assert sum(weights.values()) == pytest.approx(1, abs=1e-3)

    candidates = body["candidates"]
    assert candidates[0]["model"] == body["selectedModel"]
    assert {c["model"] for c in candidates} == {"premium", "standard", "good"}
    for candidate in candidates:
        assert set(candidate["components"]) == COMPONENTS
        assert all(0 <= value <= 1 for value in candidate["components"].values())
        expected = sum(weights[name] * value for name, value in candidate["components"].items())
        assert candidate["score"] == pytest.approx(expected, abs=1e-3)
    assert body["rejections"] == [
        {"model": "weak", "code": "missing_capability", "reason": "Does not support tools."}
    ]

    analysis = body["analysis"]
    assert (analysis["taskType"], analysis["complexity"]) == (body["taskType"], body["complexity"])
    assert analysis["requiredCapabilities"] == ["tools"]
    assert analysis["features"]["tools"] == 1
    # Stored for learning from outcomes, never shown: hashed words can be read back with a dictionary.
    assert FEATURES_KEY in Decision.objects.get(pk=body["decisionId"]).analysis
    assert "textFeatures" not in analysis

    budget = body["budget"]
    assert budget["drivingBudgetId"] == alpha_budget.pk
    assert budget["aggregateStatus"] == "normal"
    [snapshot] = budget["budgets"]
    assert (snapshot["budgetId"], snapshot["scopeType"], snapshot["status"]) == (
        alpha_budget.pk,
        "team",
        "normal",
    )
    assert Decimal(snapshot["limit"]) == Decimal("100")


def test_a_refused_decision_explains_why(world, ladder, key_client):
    refused = select(key_client, maxCost="0.000001", requestId="penny").json()

    body = key_client.get(f"{EXPLAINER}/{refused['details']['decisionId']}").json()

    assert (body["outcome"], body["selectedModel"], body["reservationId"]) == ("refused", None, None)
    assert body["refusal"] == {"code": "budget_exceeded", "message": refused["message"]}
    assert {r["model"]: r["code"] for r in body["rejections"]} == dict.fromkeys(
        ["premium", "standard", "good", "weak"], "over_cost_limit"
    )
    assert body["candidates"] == [] and body["alternatives"] == []


def test_an_unknown_decision_is_a_404(world, ladder, key_client):
    response = key_client.get(f"{EXPLAINER}/987654")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- by request id ------------------------------------------------------------------------------------


def test_a_requests_decisions_are_listed_newest_first(world, ladder, key_client):
    refused = select(key_client, maxCost="0.000001", requestId="job-7")
    admitted = select(key_client, requestId="job-7")
    select(key_client, requestId="job-8")

    response = key_client.get(f"{EXPLAINER}/request/job-7")

    assert (refused.status_code, admitted.status_code) == (402, 201)
    results = response.json()["results"]
    assert [(d["decisionId"], d["outcome"]) for d in results] == [
        (admitted.json()["decisionId"], "admitted"),
        (refused.json()["details"]["decisionId"], "refused"),
    ]
    assert key_client.get(f"{EXPLAINER}/request/job-9").status_code == 404


# --- recent: filters and pagination -------------------------------------------------------------------


@pytest.fixture
def history(world, ladder, key_client, django_capture_on_commit_callbacks):
    """Decisions of team alpha's key and of carol (team beta); r1 made long ago."""
    with django_capture_on_commit_callbacks(execute=True):
        rule_set_publish(
            organization=world.org,
            source=dedent(
                """
                rules:
                  - name: tagged-to-weak
                    when:
                      - type: metadata
                        tags: [cheap]
                    then:
                      - type: route-to
                        model: weak
                """
            ),
        )
    select(key_client, requestId="r1")
    select(key_client, request={"model": "premium"}, requestId="r2")
    select(key_client, request={"taskType": "code"}, requestId="r3")
    select(key_client, maxCost="0.000001", requestId="r4")
    select(key_client, tags=["cheap"], requestId="r5")
    select(client_for(world.carol), requestId="c1")
    Decision.objects.filter(request_id="r1").update(created_at=datetime(2025, 1, 1, tzinfo=UTC))


# query -> request ids listed, newest first
FILTERS = {
    "": ["c1", "r5", "r4", "r3", "r2", "r1"],
    "model=premium": ["r2"],
    "outcome=refused": ["r4"],
    "outcome=admitted": ["c1", "r5", "r3", "r2", "r1"],
    "taskType=code": ["r3"],
    "refusalCode=budget_exceeded": ["r4"],
    "rule=tagged-to-weak": ["r5"],
    "teamId={beta}": ["c1"],
    "userId={carol}": ["c1"],
    "until=2025-06-01T00:00:00Z": ["r1"],
    "since=2025-06-01T00:00:00Z&outcome=admitted&teamId={alpha}": ["r5", "r3", "r2"],
}


def test_recent_filters_by_what_the_explainer_shows(world, history):
    fiona = client_for(world.fiona)
    ids = {"alpha": world.alpha.pk, "beta": world.beta.pk, "carol": world.carol.pk}

    listed = {query: request_ids(fiona.get(f"{EXPLAINER}/recent?{query.format(**ids)}")) for query in FILTERS}

    assert listed == FILTERS


def test_recent_pages_through_decisions(world, history):
    fiona = client_for(world.fiona)

    first = fiona.get(f"{EXPLAINER}/recent?pageSize=4").json()
    second = fiona.get(first["next"]).json()

    assert first["count"] == second["count"] == 6
    assert [d["requestId"] for d in first["results"]] == ["c1", "r5", "r4", "r3"]
    assert [d["requestId"] for d in second["results"]] == ["r2", "r1"]
    assert second["next"] is None


def test_a_bad_filter_value_is_a_400_not_an_unfiltered_list(world, history):
    response = client_for(world.fiona).get(f"{EXPLAINER}/recent?outcome=maybe")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_recent_runs_the_same_queries_however_many_decisions_it_shows(world, ladder, key_client):
    for n in range(2):
        select(key_client, requestId=f"first-{n}")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert key_client.get(f"{EXPLAINER}/recent").status_code == 200
        return len(captured)

    few = queries()
    for n in range(4):
        select(key_client, request={"model": "premium"}, requestId=f"more-{n}")

    # The key, the count and the page: nothing per decision.
    assert queries() == few == 3


# --- stats --------------------------------------------------------------------------------------------


def test_stats_count_decisions_and_the_savings_of_switching(
    world, ladder, team_key, key_client, alpha_budget
):
    # standard within 5 points of premium: at 72% a request for premium is swapped for it.
    ladder["standard"].quality_scores = quality(92)
    ladder["standard"].save()
    spend(team_key[0], "72")
    ask = {"maxTokens": 1000}
    swapped = select(key_client, request={"model": "premium", **ask}, requestId="swap").json()
    kept = select(key_client, request={"model": "good", **ask}, requestId="kept").json()
    select(key_client, request=ask, requestId="plain")
    select(key_client, request=ask, maxCost="0.000001", requestId="refused")

    response = key_client.get(f"{EXPLAINER}/stats")

    assert (swapped["selectedModel"], kept["selectedModel"]) == ("standard", "good")
    body = exact(response)
    assert (body["decisions"], body["admitted"], body["refused"]) == (4, 3, 1)
    assert body["byModel"] == [{"model": "good", "count": 2}, {"model": "standard", "count": 1}]
    assert body["byTaskType"] == [{"taskType": "chat", "count": 4}]
    # Every decision moved balanced -> cost_optimized at 70%, and the swap is one more change.
    assert body["reasons"] == [{"reason": "threshold:prefer-cheaper", "count": 5}]
    rows = Decision.objects.filter(outcome="admitted", requested_model_cost__isnull=False)
    assert sum(d.requested_model_cost - d.estimated_cost for d in rows) == Decimal("0.065175")
    # 14 prompt tokens and 1000 out: premium 0.07521, standard 0.010035, good 0.0006021.
    assert body["savings"] == {
        "compared": 2,
        "switched": 1,
        "total": Decimal("0.065175"),
        "average": Decimal("0.0325875"),
        "percent": body["savings"]["percent"],
    }
    assert Decimal(str(body["savings"]["percent"])) == Decimal("85.96")  # 0.065175 of 0.0758121, floored
    latencies = Decision.objects.values_list("latency_us", flat=True)
    assert float(body["averageLatencyMs"]) == pytest.approx(sum(latencies) / len(latencies) / 1000, abs=1e-3)


def test_stats_cover_the_last_30_days_unless_told_otherwise(world, ladder, key_client):
    select(key_client, requestId="old")
    select(key_client, requestId="new")
    Decision.objects.filter(request_id="old").update(created_at=datetime(2025, 1, 1, tzinfo=UTC))

    recent = key_client.get(f"{EXPLAINER}/stats").json()
    old = key_client.get(f"{EXPLAINER}/stats?since=2024-12-01T00:00:00Z&until=2025-02-01T00:00:00Z").json()
    backwards = key_client.get(f"{EXPLAINER}/stats?since=2025-02-01T00:00:00Z&until=2024-12-01T00:00:00Z")

    assert (recent["decisions"], old["decisions"]) == (1, 1)
    assert backwards.status_code == 400 and backwards.json()["code"] == "validation_error"
    assert key_client.get(f"{EXPLAINER}/stats?since=yesterday").status_code == 400


def test_stats_with_nothing_to_count_are_zero_not_errors(world, ladder, key_client):
    body = key_client.get(f"{EXPLAINER}/stats").json()

    assert (body["decisions"], body["averageLatencyMs"], body["byModel"]) == (0, None, [])
    assert body["savings"] == {"compared": 0, "switched": 0, "total": 0, "average": None, "percent": None}


def test_stats_count_refusals_by_their_code(world, ladder, key_client):
    select(key_client, maxCost="0.000001")

    body = key_client.get(f"{EXPLAINER}/stats").json()

    assert body["byRefusal"] == [{"code": "budget_exceeded", "count": 1}]


def test_asking_for_auto_is_not_counted_as_a_switch(world, ladder, key_client):
    ModelProfileFactory(id="gpt-4o", quality_scores=quality(80))  # the default model: the savings baseline
    select(key_client, request={"model": "auto"}, requestId="auto")
    select(key_client, requestId="plain")

    savings = key_client.get(f"{EXPLAINER}/stats").json()["savings"]

    assert (savings["compared"], savings["switched"]) == (2, 0)


# --- who sees what ------------------------------------------------------------------------------------


@pytest.fixture
def decisions_of_everyone(world, ladder, team_key):
    """One decision each by team alpha's key, bob, carol and (in Globex) omar."""
    select(client_with_key(team_key[1]), requestId="alpha-key")
    for person in ("bob", "carol", "omar"):
        select(client_for(getattr(world, person)), requestId=person)
    return {d.request_id: d.pk for d in Decision.objects.all()}


# viewer -> request ids of the decisions it may read (list, one by id, by request id, stats)
VISIBLE = {
    "alpha_key": {"alpha-key"},
    "other_alpha_key": set(),  # a key sees only its own decisions, not its team's
    "bob": {"alpha-key", "bob"},  # a member: his team's decisions
    "alice": {"alpha-key", "bob"},
    "carol": {"carol"},
    "fiona": {"alpha-key", "bob", "carol"},  # finance: the whole organization
    "omar": {"omar"},  # nothing crosses organizations
}


def test_each_caller_sees_only_the_decisions_in_their_scope(world, team_key, decisions_of_everyone):
    clients = {
        "alpha_key": client_with_key(team_key[1]),
        "other_alpha_key": client_with_key(make_api_key(team=world.alpha)[1]),
        **{name: client_for(getattr(world, name)) for name in ("bob", "alice", "carol", "fiona", "omar")},
    }

    def seen(client) -> dict[str, set[str]]:
        by_id = {
            r for r, pk in decisions_of_everyone.items() if client.get(f"{EXPLAINER}/{pk}").status_code == 200
        }
        by_request = {
            r for r in decisions_of_everyone if client.get(f"{EXPLAINER}/request/{r}").status_code == 200
        }
        stats = client.get(f"{EXPLAINER}/stats").json()["decisions"]
        return {
            "listed": set(request_ids(client.get(f"{EXPLAINER}/recent"))),
            "by_id": by_id,
            "by_request": by_request,
            "stats": stats,
        }

    assert {viewer: seen(client) for viewer, client in clients.items()} == {
        viewer: {"listed": ids, "by_id": ids, "by_request": ids, "stats": len(ids)}
        for viewer, ids in VISIBLE.items()
    }


def test_the_explainer_needs_a_caller(world, ladder, decisions_of_everyone):
    response = APIClient().get(f"{EXPLAINER}/{decisions_of_everyone['bob']}")

    assert response.status_code == 401


# --- generate: explain without reserving or storing ---------------------------------------------------


def test_generate_explains_and_stores_or_reserves_nothing(world, ladder, key_client, alpha_budget):
    select(key_client, requestId="real")
    before = (
        Decision.objects.count(),
        Reservation.objects.count(),
        list(BudgetPeriod.objects.values("reserved")),
    )

    response = generate(key_client, request={"tools": [TOOL]}, requestId="what-if", strategy="cost_optimized")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["decisionId"], body["reservationId"], body["createdAt"]) == (None, None, None)
    assert (body["outcome"], body["requestId"], body["selectedModel"]) == ("admitted", "what-if", "good")
    assert [c["model"] for c in body["candidates"]] == ["good", "standard", "premium"]
    assert body["rejections"][0]["code"] == "missing_capability"
    assert set(body["weights"]) == COMPONENTS and body["budget"]["drivingBudgetId"] == alpha_budget.pk
    after = (
        Decision.objects.count(),
        Reservation.objects.count(),
        list(BudgetPeriod.objects.values("reserved")),
    )
    assert after == before
    # Nothing was taken, so the same request id is still free for a real selection.
    assert select(key_client, requestId="what-if").status_code == 201


def test_generate_of_a_refused_request_answers_the_refusal_and_stores_nothing(world, ladder, key_client):
    response = generate(key_client, maxCost="0.000001")

    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "budget_exceeded" and "decisionId" not in body["details"]
    assert not Decision.objects.exists() and not Reservation.objects.exists()


def test_generate_validates_like_select(world, ladder, key_client):
    response = generate(key_client, request={"model": "gpt-9"})

    assert response.status_code == 400 and response.json()["code"] == "unknown_model"
