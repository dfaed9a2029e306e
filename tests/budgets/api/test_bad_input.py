"""Bad input gets a 4xx JSON error with a stable code and a message naming what was wrong, and
writes nothing: no budget, threshold, usage, charge or reservation, and no period figure moves."""

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from budgets.models import (
    Budget,
    BudgetPeriod,
    Reservation,
    ReservationHold,
    Threshold,
    UsageCharge,
    UsageRecord,
)
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget, user_budget
from tests.conftest import client_for, client_with_key

BUDGETS = "/api/v1/budgets"
USAGE = "/api/v1/usage"
RESERVATIONS = "/api/v1/reservations"


@dataclass
class Ctx:
    world: Any
    budget: Budget
    reservation: Reservation
    clients: dict


@pytest.fixture
def ctx(world, team_key) -> Ctx:
    """Budgets on bob's chain, spend already recorded (so periods exist) and one pending hold."""
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))
    BudgetFactory(organization=world.org, name="Acme monthly", limit=Decimal("1000"))
    user_budget(world.bob, name="Bob monthly", limit=Decimal("50"))
    bob = principal_for_user(world.bob)
    usage_record_many(principal=bob, reports=[UsageReport(request_id="seen-1", cost=Decimal("1"), model="m")])
    reservation = reservation_authorize(principal=bob, request_id="held-1", amount=Decimal("2")).reservation
    clients = {
        "fiona": client_for(world.fiona),
        "bob": client_for(world.bob),
        "key": client_with_key(team_key[1]),
    }
    return Ctx(world=world, budget=budget, reservation=reservation, clients=clients)


def snapshot() -> dict:
    return {
        "budgets": sorted(Budget.objects.values_list("pk", "name", "limit", "is_active", "ends_at")),
        "thresholds": sorted(Threshold.objects.values_list("budget_id", "percent")),
        "usage": UsageRecord.objects.count(),
        "charges": UsageCharge.objects.count(),
        "reservations": sorted(Reservation.objects.values_list("pk", "state", "amount")),
        "holds": ReservationHold.objects.count(),
        "periods": sorted(BudgetPeriod.objects.values_list("pk", "limit", "spent", "reserved")),
    }


class Raw(str):
    """A request body sent byte for byte (not JSON-encoded by the test client)."""


def with_literal(body: dict, field: str, literal: str) -> Raw:
    """`body` as JSON with `field` set to a literal the JSON encoder would refuse to write."""
    return Raw(json.dumps({**body, field: "__LITERAL__"}).replace('"__LITERAL__"', literal))


def budget_body(c: Ctx, **changes) -> dict:
    body = {"name": "New", "scopeType": "team", "scopeId": c.world.alpha.pk, "limit": 100}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def usage_body(**changes) -> dict:
    return {"requestId": "new-1", "cost": 0.5, "model": "gpt-4o-mini", **changes}


def authorize_body(**changes) -> dict:
    return {"requestId": "new-hold", "amount": 1, "model": "gpt-4o-mini", **changes}


def batch(bad_index: int, bad: dict, size: int = 4) -> list[dict]:
    items = [usage_body(requestId=f"b-{i}") for i in range(size)]
    items[bad_index] = {**items[bad_index], **bad}
    return items


@dataclass
class Case:
    who: str
    method: str
    url: Any  # str, or a function of Ctx
    body: Any  # JSON-able, Raw, or a function of Ctx returning either
    status: int
    code: str
    mentions: tuple[str, ...] = ()


def budget_url(c: Ctx) -> str:
    return f"{BUDGETS}/{c.budget.pk}"


def settle_url(c: Ctx) -> str:
    return f"{RESERVATIONS}/{c.reservation.pk}/settle"


# A table reads best one case per entry; the formatter would put every argument on its own line.
# fmt: off
CASES = {
    # --- POST /budgets ---
    "budget-unknown-scope-type": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, scopeType="galaxy"), 400, "validation_error",
        ("scopeType", "galaxy"),
    ),
    "budget-unknown-scope-id": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, scopeId=987654), 404, "unknown_scope", ("987654",)
    ),
    "budget-scope-id-not-an-integer": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, scopeId="team-456"), 400, "validation_error",
        ("scopeId",),
    ),
    "budget-other-orgs-team": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, scopeId=c.world.other_team.pk), 404,
        "unknown_scope", ("team",),
    ),
    "budget-other-orgs-user": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, scopeType="user", scopeId=c.world.omar.pk), 404,
        "unknown_scope", ("user",),
    ),
    "budget-other-org": Case(
        "fiona", "post", BUDGETS,
        lambda c: budget_body(c, scopeType="organization", scopeId=c.world.other_org.pk), 404,
        "unknown_scope", ("organization",),
    ),
    "budget-negative-limit": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit=-1), 400, "validation_error",
        ("limit", "greater than or equal to 0"),
    ),
    "budget-non-numeric-limit": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit="abc"), 400, "validation_error",
        ("limit", "valid number"),
    ),
    "budget-limit-1e30": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "1e30"), 400,
        "validation_error", ("limit", "digits"),
    ),
    "budget-limit-1E+30": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "1E+30"), 400,
        "validation_error", ("limit", "digits"),
    ),
    "budget-limit-1e30-string": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit="1e30"), 400, "validation_error", ("limit",)
    ),
    "budget-limit-huge-integer": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit=10**30), 400, "validation_error", ("limit",)
    ),
    "budget-limit-NaN-literal": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "NaN"), 400,
        "malformed_json", ("NaN",),
    ),
    "budget-limit-Infinity-literal": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "Infinity"), 400,
        "malformed_json", ("Infinity",),
    ),
    "budget-limit-minus-Infinity-literal": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "-Infinity"), 400,
        "malformed_json", ("Infinity",),
    ),
    "budget-limit-NaN-string": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit="NaN"), 400, "validation_error", ("limit",)
    ),
    "budget-limit-Infinity-string": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limit="Infinity"), 400, "validation_error",
        ("limit",),
    ),
    "budget-limit-too-many-decimals": Case(
        "fiona", "post", BUDGETS, lambda c: with_literal(budget_body(c), "limit", "0.0000000001"), 400,
        "validation_error", ("limit", "9 decimal places"),
    ),
    "budget-malformed-json": Case(
        "fiona", "post", BUDGETS, Raw('{"name": "New", "limit": '), 400, "malformed_json", ("JSON",)
    ),
    "budget-array-body": Case(
        "fiona", "post", BUDGETS, lambda c: [budget_body(c)], 400, "validation_error", ("dictionary", "list")
    ),
    "budget-unknown-field": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, limitt=5), 400, "validation_error",
        ("limitt", "Unknown field"),
    ),
    "budget-empty-body": Case("fiona", "post", BUDGETS, Raw(""), 400, "validation_error", ("required",)),
    "budget-custom-without-end": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, period="custom"), 400, "end_date_required",
        ("endDate",),
    ),
    "budget-end-before-start": Case(
        "fiona", "post", BUDGETS,
        lambda c: budget_body(c, startDate="2026-03-01T00:00:00Z", endDate="2026-02-01T00:00:00Z"), 400,
        "end_before_start", ("endDate", "startDate"),
    ),
    "budget-unknown-threshold-action": Case(
        "fiona", "post", BUDGETS,
        lambda c: budget_body(
            c, alerts=[{"threshold": 50, "actions": ["notify"]}, {"threshold": 80, "actions": ["explode"]}]
        ),
        400, "validation_error", ("alerts[1].actions[0]", "explode"),
    ),
    "budget-threshold-out-of-range": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, alerts=[{"threshold": 0, "actions": ["notify"]}]),
        400, "validation_error", ("alerts[0].threshold",),
    ),
    "budget-duplicate-threshold-percents": Case(
        "fiona", "post", BUDGETS,
        lambda c: budget_body(
            c, alerts=[{"threshold": 80, "actions": ["notify"]}, {"threshold": 80.0, "actions": ["block"]}]
        ),
        400, "validation_error", ("alerts", "once"),
    ),
    "budget-currency-eur": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, currency="EUR"), 400, "unsupported_currency",
        ("EUR", "USD"),
    ),
    "budget-negative-max-cost-per-request": Case(
        "fiona", "post", BUDGETS, lambda c: budget_body(c, maxCostPerRequest=-0.5), 400, "validation_error",
        ("maxCostPerRequest",),
    ),
    "budget-member-creates": Case(
        "bob", "post", BUDGETS, lambda c: budget_body(c), 403, "permission_denied", ("team",)
    ),
    # --- PATCH /budgets/{id} ---
    "patch-negative-limit": Case(
        "fiona", "patch", budget_url, {"limit": -5}, 400, "validation_error", ("limit",)
    ),
    "patch-non-numeric-limit": Case(
        "fiona", "patch", budget_url, {"limit": "abc"}, 400, "validation_error", ("limit",)
    ),
    "patch-unknown-field": Case(
        "fiona", "patch", budget_url, {"name": "Renamed", "limitt": 5}, 400, "validation_error", ("limitt",)
    ),
    "patch-end-before-start-renames-nothing": Case(
        "fiona", "patch", budget_url, {"name": "Renamed", "endDate": "2019-01-01T00:00:00Z"}, 400,
        "end_before_start", ("endDate",),
    ),
    "patch-duplicate-threshold-percents": Case(
        "fiona", "patch", budget_url,
        {"alerts": [{"threshold": 60, "actions": ["notify"]}, {"threshold": 60, "actions": ["notify"]}]},
        400, "validation_error", ("alerts",),
    ),
    "patch-array-body": Case(
        "fiona", "patch", budget_url, [{"limit": 5}], 400, "validation_error", ("dictionary",)
    ),
    "patch-other-orgs-budget": Case(
        "omar", "patch", budget_url, {"limit": 5}, 404, "not_found", ("Budget",)
    ),
    # --- POST /usage ---
    "usage-negative-cost": Case(
        "key", "post", USAGE, usage_body(cost=-0.01), 400, "validation_error", ("cost", "greater than")
    ),
    "usage-non-numeric-cost": Case(
        "key", "post", USAGE, usage_body(cost="abc"), 400, "validation_error", ("cost", "valid number")
    ),
    "usage-cost-1e30": Case(
        "key", "post", USAGE, with_literal(usage_body(), "cost", "1e30"), 400, "validation_error", ("cost",)
    ),
    "usage-cost-NaN-literal": Case(
        "key", "post", USAGE, with_literal(usage_body(), "cost", "NaN"), 400, "malformed_json", ("NaN",)
    ),
    "usage-cost-Infinity-literal": Case(
        "key", "post", USAGE, with_literal(usage_body(), "cost", "Infinity"), 400, "malformed_json",
        ("Infinity",),
    ),
    "usage-cost-too-many-decimals": Case(
        "key", "post", USAGE, with_literal(usage_body(), "cost", "0.0000000001"), 400, "validation_error",
        ("cost", "decimal places"),
    ),
    "usage-negative-tokens": Case(
        "key", "post", USAGE, usage_body(inputTokens=-1), 400, "validation_error", ("inputTokens",)
    ),
    "usage-malformed-json": Case("key", "post", USAGE, Raw('{"requestId": "x",'), 400, "malformed_json", ()),
    "usage-scalar-body": Case("key", "post", USAGE, Raw("42"), 400, "validation_error", ("usage object",)),
    "usage-unknown-field": Case(
        "key", "post", USAGE, usage_body(costt=1), 400, "validation_error", ("costt", "Unknown field")
    ),
    "usage-empty-body": Case("key", "post", USAGE, Raw(""), 400, "validation_error", ("required",)),
    "usage-other-orgs-team": Case(
        "key", "post", USAGE, lambda c: usage_body(teamId=c.world.other_team.pk), 404, "unknown_team",
        ("Team",),
    ),
    "usage-other-orgs-user": Case(
        "key", "post", USAGE, lambda c: usage_body(userId=c.world.omar.pk), 404, "unknown_user", ("User",)
    ),
    "usage-unknown-team": Case(
        "key", "post", USAGE, usage_body(teamId=987654), 404, "unknown_team", ("987654",)
    ),
    "usage-team-outside-the-key": Case(
        "key", "post", USAGE, lambda c: usage_body(teamId=c.world.beta.pk), 403, "permission_denied", ()
    ),
    "usage-currency-eur": Case(
        "key", "post", USAGE, usage_body(currency="EUR"), 400, "validation_error", ("currency", "USD")
    ),
    "usage-occurred-in-the-future": Case(
        "key", "post", USAGE, usage_body(occurredAt="2999-01-01T00:00:00Z"), 400, "future_timestamp",
        ("occurredAt", "future"),
    ),
    "usage-occurred-at-not-a-date": Case(
        "key", "post", USAGE, usage_body(occurredAt="yesterday"), 400, "validation_error", ("occurredAt",)
    ),
    "usage-duplicate-request-id-different-cost": Case(
        "key", "post", USAGE, usage_body(requestId="seen-1", cost=2, model="m"), 409, "idempotency_conflict",
        ("seen-1",),
    ),
    "usage-batch-one-bad-item": Case(
        "key", "post", USAGE, {"items": batch(2, {"cost": -1})}, 400, "validation_error",
        ("items[2].cost",),
    ),
    "usage-batch-list-one-bad-item": Case(
        "key", "post", USAGE, batch(2, {"cost": "abc"}), 400, "validation_error", ("items[2].cost",)
    ),
    "usage-batch-item-unknown-field": Case(
        "key", "post", USAGE, {"items": batch(1, {"modell": "x"})}, 400, "validation_error",
        ("items[1].modell",),
    ),
    "usage-batch-item-in-the-future": Case(
        "key", "post", USAGE, {"items": batch(3, {"occurredAt": "2999-01-01T00:00:00Z"})}, 400,
        "future_timestamp", ("items[3].occurredAt",),
    ),
    "usage-batch-item-other-orgs-team": Case(
        "key", "post", USAGE, lambda c: {"items": batch(3, {"teamId": c.world.other_team.pk})}, 404,
        "unknown_team", (),
    ),
    "usage-batch-item-replays-with-different-cost": Case(
        "key", "post", USAGE, {"items": batch(1, {"requestId": "seen-1", "cost": 3, "model": "m"})}, 409,
        "idempotency_conflict", ("seen-1",),
    ),
    "usage-batch-same-request-id-twice-differently": Case(
        "key", "post", USAGE, {"items": batch(1, {"requestId": "b-0", "cost": 9})}, 409,
        "idempotency_conflict", ("b-0",),
    ),
    "usage-batch-above-1000": Case(
        "key", "post", USAGE, {"items": [usage_body(requestId=f"big-{i}") for i in range(1001)]}, 400,
        "validation_error", ("items", "1000", "1001"),
    ),
    "usage-batch-empty": Case("key", "post", USAGE, {"items": []}, 400, "validation_error", ("items",)),
    # --- POST /reservations (authorize) ---
    "authorize-negative-amount": Case(
        "bob", "post", RESERVATIONS, authorize_body(amount=-1), 400, "validation_error", ("amount",)
    ),
    "authorize-non-numeric-amount": Case(
        "bob", "post", RESERVATIONS, authorize_body(amount="abc"), 400, "validation_error",
        ("amount", "valid number"),
    ),
    "authorize-amount-1E+30": Case(
        "bob", "post", RESERVATIONS, with_literal(authorize_body(), "amount", "1E+30"), 400,
        "validation_error", ("amount",),
    ),
    "authorize-amount-NaN-literal": Case(
        "bob", "post", RESERVATIONS, with_literal(authorize_body(), "amount", "NaN"), 400, "malformed_json",
        ("NaN",),
    ),
    "authorize-amount-too-many-decimals": Case(
        "bob", "post", RESERVATIONS, authorize_body(amount="1.0000000001"), 400, "validation_error",
        ("amount",),
    ),
    "authorize-array-body": Case(
        "bob", "post", RESERVATIONS, [authorize_body()], 400, "validation_error", ("dictionary",)
    ),
    "authorize-unknown-field": Case(
        "bob", "post", RESERVATIONS, authorize_body(ammount=1), 400, "validation_error", ("ammount",)
    ),
    "authorize-empty-body": Case(
        "bob", "post", RESERVATIONS, Raw(""), 400, "validation_error", ("required",)
    ),
    "authorize-other-orgs-team": Case(
        "bob", "post", RESERVATIONS, lambda c: authorize_body(teamId=c.world.other_team.pk), 404,
        "unknown_team", (),
    ),
    "authorize-other-orgs-user": Case(
        "bob", "post", RESERVATIONS, lambda c: authorize_body(userId=c.world.omar.pk), 404, "unknown_user", ()
    ),
    "authorize-same-request-id-different-amount": Case(
        "bob", "post", RESERVATIONS, authorize_body(requestId="held-1", amount=3), 409,
        "idempotency_conflict", ("held-1",),
    ),
    "authorize-request-already-charged": Case(
        "bob", "post", RESERVATIONS, authorize_body(requestId="seen-1"), 409, "request_already_charged",
        ("seen-1",),
    ),
    "authorize-over-the-limit": Case(
        "bob", "post", RESERVATIONS, authorize_body(amount=49), 402, "budget_exceeded", ("Bob monthly",)
    ),
    # --- POST /reservations/{id}/settle ---
    "settle-negative-cost": Case("bob", "post", settle_url, {"cost": -1}, 400, "validation_error", ("cost",)),
    "settle-non-numeric-cost": Case(
        "bob", "post", settle_url, {"cost": "abc"}, 400, "validation_error", ("cost",)
    ),
    "settle-unknown-field": Case(
        "bob", "post", settle_url, {"cost": 1, "requestId": "other"}, 400, "validation_error", ("requestId",)
    ),
    "settle-malformed-json": Case("bob", "post", settle_url, Raw("{cost: 1}"), 400, "malformed_json", ()),
    "settle-array-body": Case("bob", "post", settle_url, [{"cost": 1}], 400, "validation_error", ()),
    "settle-unknown-reservation": Case(
        "bob", "post", f"{RESERVATIONS}/987654/settle", {"cost": 1}, 404, "not_found", ("987654",)
    ),
    "settle-someone-elses-reservation": Case(
        "omar", "post", settle_url, {"cost": 1}, 404, "not_found", ("Reservation",)
    ),
    # --- GET /budgets/status/{scopeType}/{scopeId} ---
    "status-unknown-scope-type": Case(
        "fiona", "get", lambda c: f"{BUDGETS}/status/galaxy/{c.world.org.pk}", None, 404, "unknown_scope",
        ("galaxy",),
    ),
    "status-other-orgs-team": Case(
        "fiona", "get", lambda c: f"{BUDGETS}/status/team/{c.world.other_team.pk}", None, 404,
        "unknown_scope", ("team",),
    ),
    "status-unknown-user": Case(
        "fiona", "get", f"{BUDGETS}/status/user/987654", None, 404, "unknown_scope", ("987654",)
    ),
}
# fmt: on


def _send(c: Ctx, case: Case):
    client = c.clients.get(case.who) or client_for(getattr(c.world, case.who))
    url = case.url(c) if callable(case.url) else case.url
    body = case.body(c) if callable(case.body) else case.body
    if case.method == "get":
        return client.get(url)
    send = getattr(client, case.method)
    if isinstance(body, Raw):
        return send(url, data=str(body), content_type="application/json")
    return send(url, body, format="json")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_with_a_json_error_and_writes_nothing(ctx, case):
    before = snapshot()

    response = _send(ctx, case)

    assert response.status_code == case.status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == case.status
    assert body["code"] == case.code
    for mention in case.mentions:
        assert mention in body["message"], body
    assert snapshot() == before


def test_the_error_details_name_every_offending_field(ctx):
    body = {"name": "", "scopeType": "team", "scopeId": ctx.world.alpha.pk, "limit": -1}

    response = ctx.clients["fiona"].post(BUDGETS, body, format="json")

    assert response.status_code == 400
    assert set(response.json()["details"]) == {"name", "limit"}


# --- retries charge once ------------------------------------------------------------------------


def test_a_retried_usage_report_charges_once(ctx):
    key = ctx.clients["key"]
    body = usage_body(requestId="retry-1", cost="0.25", inputTokens=10)
    spent_before = BudgetPeriod.objects.get(budget=ctx.budget).spent

    first = key.post(USAGE, body, format="json")
    again = key.post(USAGE, body, format="json")

    assert (first.status_code, first.json()["replayed"]) == (201, False)
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert again.json()["id"] == first.json()["id"]
    assert UsageRecord.objects.filter(request_id="retry-1").count() == 1
    assert BudgetPeriod.objects.get(budget=ctx.budget).spent == spent_before + Decimal("0.25")


def test_the_idempotency_key_header_stands_in_for_a_missing_request_id(ctx):
    key = ctx.clients["key"]
    body = {"cost": "0.75", "model": "gpt-4o-mini"}
    spent_before = BudgetPeriod.objects.get(budget=ctx.budget).spent

    first = key.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY="idem-42")
    again = key.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY="idem-42")

    assert (first.status_code, first.json()["replayed"], first.json()["requestId"]) == (201, False, "idem-42")
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert UsageRecord.objects.filter(request_id="idem-42").count() == 1
    assert BudgetPeriod.objects.get(budget=ctx.budget).spent == spent_before + Decimal("0.75")


def test_the_same_idempotency_key_with_a_different_cost_is_a_conflict(ctx):
    key = ctx.clients["key"]
    key.post(USAGE, {"cost": "0.75", "model": "m"}, format="json", HTTP_IDEMPOTENCY_KEY="idem-43")
    before = snapshot()

    response = key.post(USAGE, {"cost": "0.8", "model": "m"}, format="json", HTTP_IDEMPOTENCY_KEY="idem-43")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert snapshot() == before


def test_a_retried_batch_charges_once(ctx):
    key = ctx.clients["key"]
    items = [usage_body(requestId=f"rb-{i}", cost="0.1") for i in range(3)]

    first = key.post(USAGE, {"items": items}, format="json")
    again = key.post(USAGE, items, format="json")

    assert (first.status_code, first.json()["created"], first.json()["replayed"]) == (201, 3, 0)
    assert (again.status_code, again.json()["created"], again.json()["replayed"]) == (200, 0, 3)
    assert [i["id"] for i in again.json()["items"]] == [i["id"] for i in first.json()["items"]]
    assert UsageRecord.objects.filter(request_id__startswith="rb-").count() == 3
    assert UsageCharge.objects.filter(usage__request_id__startswith="rb-").count() == 3 * 2  # org + team
