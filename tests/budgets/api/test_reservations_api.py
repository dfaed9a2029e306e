"""Two-phase spend over HTTP: authorize (hold) -> settle | release, and exact money in JSON."""

import re
from decimal import Decimal

import pytest
import simplejson

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, ReservationHold, UsageCharge, UsageRecord
from tests.budgets.factories import BudgetFactory, team_budget, user_budget
from tests.conftest import client_for, client_with_key

URL = "/api/v1/reservations"


@pytest.fixture
def chain(world):
    """Budgets on bob's chain: org 1000, team alpha 100, bob 20."""
    return {
        "org": BudgetFactory(organization=world.org, name="Acme monthly", limit=Decimal("1000")),
        "team": team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100")),
        "user": user_budget(world.bob, name="Bob monthly", limit=Decimal("20")),
    }


@pytest.fixture
def bob(world):
    return client_for(world.bob)


def exact(response) -> dict:
    return simplejson.loads(response.content, parse_float=Decimal)


def raw_number(response, key: str) -> str:
    """The literal text of the first `"key": <number>` in the body, exactly as sent."""
    found = re.search(rf'"{key}":\s*([^,}}\]\s]+)', response.content.decode())
    assert found, response.content
    return found.group(1)


def period_of(budget) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget)


def authorize(client, request_id="r-1", amount="5", **extra):
    return client.post(
        URL, {"requestId": request_id, "amount": amount, "model": "gpt-4o", **extra}, format="json"
    )


# --- authorize ------------------------------------------------------------------------------------


def test_authorize_holds_the_amount_on_every_budget_of_the_chain(world, chain, bob):
    response = authorize(bob, amount="5.5")

    assert response.status_code == 201, response.content
    body = exact(response)
    reservation = Reservation.objects.get()
    assert body["reservationId"] == reservation.pk
    assert (body["requestId"], body["state"], body["amount"], body["model"]) == (
        "r-1",
        "pending",
        Decimal("5.5"),
        "gpt-4o",
    )
    assert (body["teamId"], body["userId"], body["replayed"]) == (world.alpha.pk, world.bob.pk, False)
    assert body["finishedAt"] is None
    assert sorted((h["budgetId"], h["amount"]) for h in body["holds"]) == sorted(
        (b.pk, Decimal("5.5")) for b in chain.values()
    )
    for budget in chain.values():
        assert (period_of(budget).reserved, period_of(budget).spent) == (Decimal("5.5"), Decimal("0"))


def test_a_retried_authorize_returns_the_same_hold(world, chain, bob):
    first = authorize(bob)
    again = authorize(bob)

    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert again.json()["reservationId"] == first.json()["reservationId"]
    assert period_of(chain["org"]).reserved == Decimal("5")
    assert ReservationHold.objects.count() == 3


def test_over_the_limit_is_refused_naming_the_budget_and_nothing_is_reserved(world, chain, bob):
    response = authorize(bob, amount="20.000000001")

    assert response.status_code == 402
    body = exact(response)
    assert body["code"] == "budget_exceeded"
    assert "Bob monthly" in body["message"]
    assert body["details"] == {
        "budgetId": chain["user"].pk,
        "available": Decimal("20"),
        "requested": Decimal("20.000000001"),
    }
    assert not Reservation.objects.exists()
    assert not ReservationHold.objects.exists()
    assert not BudgetPeriod.objects.filter(reserved__gt=0).exists()


def test_exactly_the_remaining_room_can_be_held(world, chain, bob):
    assert authorize(bob, amount="20").status_code == 201
    refused = authorize(bob, request_id="r-2", amount="0.000000001")

    assert refused.status_code == 402
    assert exact(refused)["details"]["available"] == 0


def test_a_team_key_holds_on_its_team_and_the_organization(world, chain, team_key):
    response = authorize(client_with_key(team_key[1]))

    assert response.status_code == 201, response.content
    assert {h["budgetId"] for h in response.json()["holds"]} == {chain["org"].pk, chain["team"].pk}
    assert (response.json()["teamId"], response.json()["userId"]) == (world.alpha.pk, None)


# --- settle ---------------------------------------------------------------------------------------


def test_settle_records_the_actual_cost_and_releases_the_rest(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]

    response = bob.post(
        f"{URL}/{reservation_id}/settle", {"cost": "1.25", "outputTokens": 300}, format="json"
    )

    assert response.status_code == 201, response.content
    body = exact(response)
    usage = UsageRecord.objects.get()
    assert body["id"] == usage.pk
    assert (body["requestId"], body["source"], body["cost"], body["model"]) == (
        "r-1",
        "reservation",
        Decimal("1.25"),
        "gpt-4o",
    )
    assert (body["reservationId"], body["outputTokens"], body["teamId"], body["userId"]) == (
        reservation_id,
        300,
        world.alpha.pk,
        world.bob.pk,
    )
    for budget in chain.values():
        assert (period_of(budget).spent, period_of(budget).reserved) == (Decimal("1.25"), Decimal("0"))
    assert Reservation.objects.get().state == ReservationState.SETTLED
    assert UsageCharge.objects.count() == 3


def test_a_replayed_settle_returns_the_same_record_and_charges_once(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]
    settle = f"{URL}/{reservation_id}/settle"

    first = bob.post(settle, {"cost": "2"}, format="json")
    again = bob.post(settle, {"cost": "2"}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert again.json()["id"] == first.json()["id"]
    assert UsageRecord.objects.count() == 1
    assert period_of(chain["org"]).spent == Decimal("2")


def test_a_replayed_settle_with_another_cost_is_a_conflict(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]
    bob.post(f"{URL}/{reservation_id}/settle", {"cost": "2"}, format="json")

    response = bob.post(f"{URL}/{reservation_id}/settle", {"cost": "3"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert period_of(chain["org"]).spent == Decimal("2")


def test_a_settle_above_the_hold_is_still_recorded(world, chain, bob):
    """The call happened: the ledger records what it really cost, even past the limit."""
    reservation_id = authorize(bob, amount="19").json()["reservationId"]

    response = bob.post(f"{URL}/{reservation_id}/settle", {"cost": "25"}, format="json")

    assert response.status_code == 201
    user_period = period_of(chain["user"])
    assert (user_period.spent, user_period.reserved) == (Decimal("25"), Decimal("0"))


def test_an_outsider_cannot_settle(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]

    response = client_for(world.omar).post(f"{URL}/{reservation_id}/settle", {"cost": "1"}, format="json")

    assert response.status_code == 404
    assert not UsageRecord.objects.exists()


# --- release --------------------------------------------------------------------------------------


def test_release_drops_the_hold_and_is_idempotent(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]

    first = bob.post(f"{URL}/{reservation_id}/release")
    again = bob.post(f"{URL}/{reservation_id}/release")

    assert first.status_code == again.status_code == 200
    assert first.json()["state"] == again.json()["state"] == "released"
    assert first.json()["finishedAt"] is not None
    for budget in chain.values():
        assert (period_of(budget).spent, period_of(budget).reserved) == (Decimal("0"), Decimal("0"))
    assert authorize(bob, request_id="r-2", amount="20").status_code == 201


def test_settle_after_release_still_records_the_spend(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]
    bob.post(f"{URL}/{reservation_id}/release")

    response = bob.post(f"{URL}/{reservation_id}/settle", {"cost": "3"}, format="json")

    assert response.status_code == 201
    for budget in chain.values():
        assert (period_of(budget).spent, period_of(budget).reserved) == (Decimal("3"), Decimal("0"))
    assert Reservation.objects.get().state == ReservationState.SETTLED


def test_release_after_settle_is_a_conflict(world, chain, bob):
    reservation_id = authorize(bob).json()["reservationId"]
    bob.post(f"{URL}/{reservation_id}/settle", {"cost": "3"}, format="json")

    response = bob.post(f"{URL}/{reservation_id}/release")

    assert response.status_code == 409
    assert response.json()["code"] == "already_settled"
    assert period_of(chain["org"]).spent == Decimal("3")


# --- exact money in JSON --------------------------------------------------------------------------


def test_a_nano_dollar_round_trips_exactly(world, chain, bob):
    # Sent as raw JSON text: the test client's encoder would turn a Decimal into a float first.
    held = bob.post(URL, '{"requestId": "r-1", "amount": 0.000000001}', content_type="application/json")
    reservation_id = held.json()["reservationId"]
    settled = bob.post(
        f"{URL}/{reservation_id}/settle", '{"cost": 0.000000001}', content_type="application/json"
    )

    assert settled.status_code == 201
    for response, key in ((held, "amount"), (settled, "cost")):
        literal = raw_number(response, key)
        assert not literal.startswith('"'), "money must be a JSON number, not a string"
        assert literal == "0.000000001", "plain notation, as a person would write it"
        assert exact(response)[key] == Decimal("0.000000001")
    assert period_of(chain["org"]).spent == Decimal("0.000000001")


def test_sums_are_exact_where_floats_would_drift(world, chain, team_key):
    key = client_with_key(team_key[1])
    for request_id, cost in (("a", "0.1"), ("b", "0.2")):
        assert (
            key.post(
                "/api/v1/usage", {"requestId": request_id, "cost": cost, "model": "m"}, format="json"
            ).status_code
            == 201
        )

    response = client_for(world.fiona).get(f"/api/v1/budgets/{chain['team'].pk}/status")

    assert raw_number(response, "currentAmount") == "0.3"
    assert raw_number(response, "remaining") == "99.7"


def test_twenty_significant_digits_survive(world):
    body = {
        "name": "Big",
        "scopeType": "organization",
        "scopeId": world.org.pk,
        "limit": "12345678901.123456789",
    }

    response = client_for(world.fiona).post("/api/v1/budgets", body, format="json")

    assert response.status_code == 201, response.content
    assert raw_number(response, "limit") == "12345678901.123456789"
