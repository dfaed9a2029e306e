"""`/api/v1/cost-analysis/...` over HTTP: validated parameters, camelCase JSON, CSV, and scopes."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import simplejson

from tests.analytics.cost_factories import admitted, usage
from tests.analytics.factories import budgets_for, registry
from tests.budgets.factories import make_api_key
from tests.conftest import client_for, client_with_key

BASE = "/api/v1/cost-analysis"
AUGUST = {"since": "2025-08-01T00:00:00Z", "until": "2025-09-01T00:00:00Z"}


def _json(response):
    return simplejson.loads(response.content, use_decimal=True)


@pytest.fixture
def ledger(world):
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    usage(
        world.org,
        "r1",
        "0.30",
        at=datetime(2025, 8, 4, 10, tzinfo=UTC),
        team=world.alpha,
        user=world.bob,
        model="gpt-4o",
        provider="openai",
        input_tokens=1000,
        output_tokens=200,
        outcome="success",
    )
    usage(
        world.org,
        "r2",
        "0.10",
        at=datetime(2025, 8, 5, tzinfo=UTC),
        team=world.alpha,
        user=world.alice,
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=500,
        output_tokens=100,
    )
    usage(
        world.org,
        "r3",
        "0.50",
        at=datetime(2025, 8, 12, tzinfo=UTC),
        team=world.beta,
        user=world.carol,
        model="claude-sonnet-4",
        provider="anthropic",
        input_tokens=2000,
        output_tokens=300,
    )
    usage(world.other_org, "r4", "9.99", at=datetime(2025, 8, 4, tzinfo=UTC), team=world.other_team)
    return world


def test_summary_in_camel_case(ledger):
    response = client_for(ledger.fiona).get(f"{BASE}/summary", AUGUST)
    assert response.status_code == 200
    body = _json(response)
    assert body["requests"] == 3
    assert body["cost"] == Decimal("0.9")
    assert body["inputTokens"] == 3500
    assert body["outputTokens"] == 600
    assert body["averageCostPerRequest"] == Decimal("0.3")
    assert body["costPerSuccessfulRequest"] == Decimal("0.9")
    assert body["currency"] == "USD"


def test_a_team_lead_summary_holds_only_her_team(ledger):
    body = _json(client_for(ledger.alice).get(f"{BASE}/summary", AUGUST))
    assert (body["requests"], body["cost"]) == (2, Decimal("0.4"))


def test_a_team_key_sees_its_own_rows_only(ledger):
    _, secret = make_api_key(team=ledger.beta)
    body = _json(client_with_key(secret).get(f"{BASE}/summary", AUGUST))
    assert body["requests"] == 0  # keys see what they reported themselves


def test_another_organization_gets_404_for_a_scope_and_nothing_otherwise(ledger):
    omar = client_for(ledger.omar)
    response = omar.get(f"{BASE}/summary", {**AUGUST, "scope": f"team:{ledger.alpha.pk}"})
    assert response.status_code == 404
    assert _json(response)["code"] == "unknown_scope"
    assert _json(omar.get(f"{BASE}/summary", AUGUST))["cost"] == Decimal("9.99")


def test_a_lead_asking_for_another_team_gets_404(ledger):
    response = client_for(ledger.alice).get(f"{BASE}/by-model", {**AUGUST, "scope": f"team:{ledger.beta.pk}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2025-09-01T00:00:00Z", "until": "2025-08-01T00:00:00Z"}, "since"),
        ({"scope": "galaxy:1"}, "scope"),
        ({"groupby": "team"}, "groupby"),
    ],
)
def test_bad_parameters_are_refused_with_a_message(ledger, params, field):
    response = client_for(ledger.fiona).get(f"{BASE}/summary", params)
    assert response.status_code == 400
    body = _json(response)
    assert body["code"] == "validation_error"
    assert field in body["message"]


def test_by_scope_and_interval_are_validated(ledger):
    fiona = client_for(ledger.fiona)
    assert fiona.get(f"{BASE}/by-scope", {"groupBy": "colour"}).status_code == 400
    assert fiona.get(f"{BASE}/trends", {"interval": "hour"}).status_code == 400


def test_by_provider_and_by_scope(ledger):
    fiona = client_for(ledger.fiona)
    providers = _json(fiona.get(f"{BASE}/by-provider", AUGUST))["results"]
    assert [(r["key"], r["requests"], r["cost"]) for r in providers] == [
        ("anthropic", 1, Decimal("0.5")),
        ("openai", 2, Decimal("0.4")),
    ]
    users = _json(fiona.get(f"{BASE}/by-scope", {**AUGUST, "groupBy": "user"}))
    assert users["groupBy"] == "user"
    assert [(r["label"], r["cost"]) for r in users["results"]] == [
        ("carol", Decimal("0.5")),
        ("bob", Decimal("0.3")),
        ("alice", Decimal("0.1")),
    ]


def test_trends_weekly(ledger):
    body = _json(client_for(ledger.fiona).get(f"{BASE}/trends", {**AUGUST, "interval": "week"}))
    assert body["timeZone"] == "UTC"
    assert [(r["periodStart"], r["cost"]) for r in body["results"]] == [
        ("2025-07-28", Decimal(0)),
        ("2025-08-04", Decimal("0.4")),
        ("2025-08-11", Decimal("0.5")),
        ("2025-08-18", Decimal(0)),
        ("2025-08-25", Decimal(0)),
    ]


def test_csv_export_by_format_or_accept(ledger):
    fiona = client_for(ledger.fiona)
    response = fiona.get(f"{BASE}/by-model", {**AUGUST, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0].split(",")[:3] == ["key", "label", "requests"]
    assert lines[1].startswith("claude-sonnet-4,claude-sonnet-4,1,0,0,2000,300,0.5,")
    assert len(lines) == 4
    by_accept = fiona.get(f"{BASE}/summary", AUGUST, HTTP_ACCEPT="text/csv")
    header, row = by_accept.content.decode().splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["cost"] == "0.9"


def test_csv_errors_are_still_json(ledger):
    response = client_for(ledger.fiona).get(f"{BASE}/summary", {"format": "csv", "since": "soon"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert _json(response)["code"] == "validation_error"


def test_forecast_and_recommendations_answer(ledger):
    fiona = client_for(ledger.fiona)
    forecast = _json(fiona.get(f"{BASE}/forecast"))
    assert len(forecast["results"]) == 3  # the org budget and both team budgets
    assert {"projectedTotal", "limitReachedOn", "projectedHigh"} <= set(forecast["results"][0])
    alice = _json(client_for(ledger.alice).get(f"{BASE}/forecast"))
    assert [r["scopeName"] for r in alice["results"]] == ["Alpha"]
    assert (
        client_for(ledger.omar)
        .get(f"{BASE}/forecast", {"budget": forecast["results"][0]["budgetId"]})
        .status_code
        == 404
    )
    assert fiona.get(f"{BASE}/recommendations").status_code == 200


def test_savings_over_http(ledger):
    admitted(
        ledger.org,
        "d1",
        requested="gpt-4o",
        selected="gpt-4o-mini",
        team=ledger.alpha,
        user=ledger.bob,
        at=datetime(2025, 8, 4, tzinfo=UTC),
        settle={"cost": "0.21", "input_tokens": 1_000_000, "output_tokens": 100_000, "outcome": "success"},
    )
    body = _json(client_for(ledger.alice).get(f"{BASE}/savings", {**AUGUST, "groupBy": "team"}))
    assert body["savings"] == Decimal("3.29")
    assert body["downgraded"]["successRate"] == Decimal("100")
    assert [g["label"] for g in body["groups"]] == ["Alpha"]
    csv_lines = client_for(ledger.alice).get(
        f"{BASE}/savings", {**AUGUST, "groupBy": "team", "format": "csv"}
    )
    assert "downgraded.successRate" in csv_lines.content.decode().splitlines()[0]
    assert client_for(ledger.carol).get(f"{BASE}/savings", AUGUST).json()["compared"] == 0


def test_anonymous_callers_are_refused(ledger, client):
    assert client.get(f"{BASE}/summary").status_code in (401, 403)
