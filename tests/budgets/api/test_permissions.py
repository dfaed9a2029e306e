"""Who may see and change what, endpoint by endpoint (DESIGN.md 3 and 5, budgets/principals.py).

Seven callers meet budgets on six scopes. Each cell of ACCESS says what a caller gets on a target:

    RW  sees it and changes it       reads 200, writes 200 / 201 / 204
    R   sees it, may not change it   reads 200, writes 403 and nothing changes
    --  does not know it exists      reads and writes 404 and nothing changes

The same cell governs the budget, its status, creating a budget on its scope and the status of
that scope. Usage and reservations have their own tables further down.
"""

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from budgets.choices import ReservationState, ScopeType
from budgets.models import Budget, BudgetPeriod, Reservation, UsageRecord
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget, user_budget
from tests.conftest import client_for, client_with_key

RW, R, NO = "RW", "R", "--"

TARGETS = ("org", "alpha", "beta", "bob", "carol", "other_org")

# fmt: off
ACCESS = {
    #              org  alpha beta  bob  carol other_org
    "alice":      (NO,  R,    NO,   RW,  NO,   NO),   # lead of alpha: manages her members' budgets
    "bob":        (NO,  R,    NO,   R,   NO,   NO),   # member of alpha: reads his team's and his own
    "carol":      (NO,  NO,   R,    NO,  R,    NO),   # member of beta
    "fiona":      (RW,  RW,   RW,   RW,  RW,   NO),   # finance: the whole organization, nothing else
    "omar":       (NO,  NO,   NO,   NO,  NO,   RW),   # admin of Globex: Acme does not exist for him
    "alpha_key":  (NO,  R,    NO,   NO,  NO,   NO),   # team alpha's service account
    "bob_key":    (NO,  NO,   NO,   R,   NO,   NO),   # bob's personal key
}

# What each kind of request answers, by access.
READ = {RW: 200, R: 200, NO: 404}
UPDATE = {RW: 200, R: 403, NO: 404}
ARCHIVE = {RW: 204, R: 403, NO: 404}
CREATE = {RW: 201, R: 403, NO: 404}
# fmt: on

CELLS = [
    pytest.param(caller, target, access, id=f"{caller}-{target}")
    for caller, row in ACCESS.items()
    for target, access in zip(TARGETS, row, strict=True)
]
CALLERS = list(ACCESS)


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def bob_key(world):
    """bob's personal API key: (ApiKey, secret)."""
    return make_api_key(user=world.bob)


@pytest.fixture
def budgets(world) -> dict[str, Budget]:
    """One budget on each target scope."""
    return {
        "org": BudgetFactory(organization=world.org, name="Acme monthly"),
        "alpha": team_budget(world.alpha, name="Alpha monthly"),
        "beta": team_budget(world.beta, name="Beta monthly"),
        "bob": user_budget(world.bob, name="Bob monthly"),
        "carol": user_budget(world.carol, name="Carol monthly"),
        "other_org": BudgetFactory(organization=world.other_org, name="Globex monthly"),
    }


@pytest.fixture
def client_of(world, team_key, bob_key):
    """The API client of a caller, by name."""
    keys = {"alpha_key": team_key[1], "bob_key": bob_key[1]}

    def client(name: str) -> APIClient:
        if name in keys:
            return client_with_key(keys[name])
        return client_for(getattr(world, name))

    return client


@pytest.fixture
def principal_of(world, team_key, bob_key):
    """The principal of a caller, by name, for writing ledger rows through the services."""
    keys = {"alpha_key": team_key[0], "bob_key": bob_key[0]}

    def principal(name: str):
        if name in keys:
            return principal_for_api_key(keys[name])
        return principal_for_user(getattr(world, name))

    return principal


def scope_of(world, target: str) -> tuple[str, int]:
    return {
        "org": (ScopeType.ORGANIZATION, world.org.pk),
        "alpha": (ScopeType.TEAM, world.alpha.pk),
        "beta": (ScopeType.TEAM, world.beta.pk),
        "bob": (ScopeType.USER, world.bob.pk),
        "carol": (ScopeType.USER, world.carol.pk),
        "other_org": (ScopeType.ORGANIZATION, world.other_org.pk),
    }[target]


def assert_answer(response, status: int) -> None:
    """The expected status; a refusal is the JSON error contract."""
    assert response.status_code == status, response.content
    if status >= 400:
        body = response.json()
        assert body["status"] == status
        assert isinstance(body["code"], str) and body["code"]
        assert isinstance(body["message"], str) and body["message"]
        if status == 403:
            assert body["code"] in {"permission_denied", "not_a_member"}


def budget_state(budget: Budget) -> dict:
    """Everything a write could change: the row, its thresholds, its periods."""
    budget = Budget.objects.get(pk=budget.pk)
    return {
        "budget": model_to_dict(budget) | {"updated_at": budget.updated_at},
        "thresholds": list(budget.thresholds.values_list("percent", "actions")),
        "periods": list(BudgetPeriod.objects.filter(budget=budget).values("limit", "spent", "reserved")),
    }


def ledger_state() -> dict:
    return {
        "usage": UsageRecord.objects.count(),
        "reservations": list(Reservation.objects.values_list("pk", "state")),
        "periods": list(BudgetPeriod.objects.order_by("pk").values_list("pk", "spent", "reserved")),
    }


NEW_ALERTS = [{"threshold": 80, "actions": ["notify"]}]
PATCH_BODY = {"name": "Renamed", "limit": 999, "alerts": NEW_ALERTS}
PUT_BODY = {
    "name": "Renamed",
    "limit": 999,
    "endDate": None,
    "alerts": NEW_ALERTS,
    "restrictedModels": ["gpt-4o"],
    "maxCostPerRequest": None,
    "isActive": True,
}


# --- budgets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/status"], ids=["detail", "status"])
@pytest.mark.parametrize(("caller", "target", "access"), CELLS)
def test_it_shows_a_budget_and_its_status_only_to_those_who_may_see_it(
    client_of, budgets, caller, target, access, suffix
):
    response = client_of(caller).get(f"/api/v1/budgets/{budgets[target].pk}{suffix}")

    assert_answer(response, READ[access])
    if READ[access] == 200:
        assert response.json()[{"": "id", "/status": "budgetId"}[suffix]] == budgets[target].pk


@pytest.mark.parametrize("caller", CALLERS)
def test_it_lists_exactly_the_budgets_the_caller_may_see(client_of, budgets, caller):
    visible = {budgets[t].pk for t, access in zip(TARGETS, ACCESS[caller], strict=True) if access != NO}

    response = client_of(caller).get("/api/v1/budgets")

    assert_answer(response, 200)
    assert {item["id"] for item in response.json()["results"]} == visible
    assert response.json()["count"] == len(visible)


@pytest.mark.parametrize("method, body", [("patch", PATCH_BODY), ("put", PUT_BODY)], ids=["patch", "put"])
@pytest.mark.parametrize(("caller", "target", "access"), CELLS)
def test_it_lets_only_managers_change_a_budget(client_of, budgets, caller, target, access, method, body):
    budget = budgets[target]
    before = budget_state(budget)

    response = getattr(client_of(caller), method)(f"/api/v1/budgets/{budget.pk}", body, format="json")

    assert_answer(response, UPDATE[access])
    after = budget_state(budget)
    if UPDATE[access] == 200:
        assert (after["budget"]["name"], after["budget"]["limit"]) == ("Renamed", Decimal(999))
        assert after["thresholds"] == [(Decimal(80), ["notify"])]
    else:
        assert after == before


@pytest.mark.parametrize(("caller", "target", "access"), CELLS)
def test_it_lets_only_managers_archive_a_budget(client_of, budgets, caller, target, access):
    budget = budgets[target]
    before = budget_state(budget)

    response = client_of(caller).delete(f"/api/v1/budgets/{budget.pk}")

    assert_answer(response, ARCHIVE[access])
    assert Budget.objects.filter(pk=budget.pk).exists(), "archiving never deletes"
    if ARCHIVE[access] == 204:
        assert not Budget.objects.get(pk=budget.pk).is_active
    else:
        assert budget_state(budget) == before


@pytest.mark.parametrize(("caller", "target", "access"), CELLS)
def test_it_lets_only_managers_create_a_budget_on_a_scope(client_of, world, budgets, caller, target, access):
    scope_type, scope_id = scope_of(world, target)
    count_before = Budget.objects.count()

    response = client_of(caller).post(
        "/api/v1/budgets",
        {"name": "New", "scopeType": scope_type, "scopeId": scope_id, "limit": 10},
        format="json",
    )

    assert_answer(response, CREATE[access])
    assert Budget.objects.count() - count_before == int(CREATE[access] == 201)
    if CREATE[access] == 201:
        assert (response.json()["scopeType"], response.json()["scopeId"]) == (scope_type, scope_id)


@pytest.mark.parametrize(("caller", "target", "access"), CELLS)
def test_it_shows_a_scope_status_only_to_those_who_may_see_the_scope(
    client_of, world, budgets, caller, target, access
):
    scope_type, scope_id = scope_of(world, target)

    response = client_of(caller).get(f"/api/v1/budgets/status/{scope_type}/{scope_id}")

    assert_answer(response, READ[access])
    if READ[access] == 200:
        assert [b["budgetId"] for b in response.json()["budgets"]] == [budgets[target].pk]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/budgets/status/user/999999",
        "/api/v1/budgets/status/team/999999",
        "/api/v1/budgets/status/galaxy/1",
    ],
)
def test_it_answers_404_for_scopes_that_do_not_exist(client_of, world, caller, path):
    assert_answer(client_of(caller).get(path), 404)


# --- usage and reservations: who sees which ledger rows ---------------------------------------------

# Each reporter writes one usage record and one reservation as itself (bob's book to alpha/bob, the
# team key's to alpha alone, omar's to Globex). A caller sees exactly the rows listed here.
# fmt: off
LEDGER_VISIBLE = {
    "alice":     {"alice", "bob", "alpha_key", "bob_key"},           # everything booked to alpha
    "bob":       {"alice", "bob", "alpha_key", "bob_key"},           # his team's spend is his team's budget
    "carol":     {"carol"},
    "fiona":     {"alice", "bob", "carol", "alpha_key", "bob_key"},  # all of Acme
    "omar":      {"omar"},
    "alpha_key": {"alpha_key"},                                      # a key sees what it reported
    "bob_key":   {"bob_key"},
}
# fmt: on
REPORTERS = ("alice", "bob", "carol", "alpha_key", "bob_key", "omar")


@pytest.fixture
def ledger_rows(principal_of) -> dict[str, dict[str, int]]:
    """{"usage" | "reservations": {reporter: id}}."""
    rows = {"usage": {}, "reservations": {}}
    for reporter in REPORTERS:
        principal = principal_of(reporter)
        usage = usage_record_many(
            principal=principal,
            reports=[UsageReport(request_id=f"u-{reporter}", cost=Decimal("0.5"), model="m")],
        )
        reservation = reservation_authorize(
            principal=principal, request_id=f"r-{reporter}", amount=Decimal(1)
        )
        rows["usage"][reporter] = usage.records[0].pk
        rows["reservations"][reporter] = reservation.reservation.pk
    return rows


def _row_id(kind: str, item: dict) -> int:
    return item["id"] if kind == "usage" else item["reservationId"]


@pytest.mark.parametrize("kind", ["usage", "reservations"])
@pytest.mark.parametrize("caller", CALLERS)
def test_it_lists_exactly_the_ledger_rows_the_caller_may_see(client_of, ledger_rows, caller, kind):
    response = client_of(caller).get(f"/api/v1/{kind}")

    assert_answer(response, 200)
    expected = {ledger_rows[kind][reporter] for reporter in LEDGER_VISIBLE[caller]}
    assert {_row_id(kind, item) for item in response.json()["results"]} == expected


@pytest.mark.parametrize("kind", ["usage", "reservations"])
@pytest.mark.parametrize("caller", CALLERS)
def test_it_shows_a_ledger_row_only_to_those_who_may_see_it(client_of, ledger_rows, caller, kind):
    client = client_of(caller)
    answers = {reporter: client.get(f"/api/v1/{kind}/{pk}") for reporter, pk in ledger_rows[kind].items()}

    assert {reporter for reporter, response in answers.items() if response.status_code == 200} == (
        LEDGER_VISIBLE[caller]
    )
    for reporter in set(REPORTERS) - LEDGER_VISIBLE[caller]:
        assert_answer(answers[reporter], 404)


# --- usage and reservations: whom a caller may book spend to -----------------------------------------

# A name in a body is the id of that persona or team in the world fixture.
# fmt: off
REFUSED_ATTRIBUTIONS = [
    # caller       body                                    status
    ("bob",       {"teamId": "beta"},                      403),  # a team he is not in
    ("bob",       {"userId": "alice"},                     403),  # a teammate
    ("bob",       {"userId": "carol"},                     403),  # someone in another team
    ("bob",       {"teamId": "other_team"},                404),  # another org's team does not exist
    ("bob",       {"userId": "omar"},                      404),  # nor another org's user
    ("carol",     {"teamId": "beta", "userId": "bob"},     403),  # bob is not in beta
    ("alice",     {"userId": "carol"},                     403),  # lead of alpha, carol is in beta
    ("alice",     {"teamId": "beta"},                      403),
    ("alpha_key", {"teamId": "beta"},                      403),
    ("alpha_key", {"userId": "carol"},                     403),
    ("bob_key",   {"userId": "alice"},                     403),
    ("bob_key",   {"teamId": "beta"},                      403),
    ("fiona",     {"teamId": "other_team"},                404),  # finance ends at the org's edge
    ("omar",      {"teamId": "alpha"},                     404),
    ("omar",      {"userId": "bob"},                       404),
]

ALLOWED_ATTRIBUTIONS = [
    # caller       body                                    booked to (team, user)
    ("bob",       {},                                      ("alpha", "bob")),
    ("bob",       {"teamId": "alpha"},                     ("alpha", "bob")),   # still his own spend
    ("bob",       {"userId": "bob"},                       ("alpha", "bob")),
    ("alice",     {"userId": "bob"},                       ("alpha", "bob")),   # a lead books for members
    ("alice",     {"teamId": "alpha"},                     ("alpha", None)),    # ... or for the team alone
    ("fiona",     {"userId": "carol"},                     ("beta", "carol")),
    ("fiona",     {"teamId": "alpha", "userId": "bob"},    ("alpha", "bob")),
    ("alpha_key", {},                                      ("alpha", None)),
    ("alpha_key", {"userId": "bob"},                       ("alpha", "bob")),
    ("bob_key",   {},                                      ("alpha", "bob")),
    ("bob_key",   {"teamId": "alpha"},                     ("alpha", "bob")),
    ("omar",      {},                                      ("other_team", "omar")),
]
# fmt: on


def _ids(world, body: dict) -> dict:
    return {key: getattr(world, name).pk for key, name in body.items()}


def _spend_body(kind: str, request_id: str) -> dict:
    return {
        "usage": {"requestId": request_id, "model": "gpt-4o-mini", "cost": 0.25},
        "reservations": {"requestId": request_id, "amount": 0.25},
    }[kind]


@pytest.mark.parametrize("kind", ["usage", "reservations"])
@pytest.mark.parametrize(("caller", "body", "status"), REFUSED_ATTRIBUTIONS)
def test_it_refuses_to_book_spend_outside_the_callers_reach_and_writes_nothing(
    client_of, world, budgets, caller, body, status, kind
):
    before = ledger_state()

    response = client_of(caller).post(
        f"/api/v1/{kind}", _spend_body(kind, "r-1") | _ids(world, body), format="json"
    )

    assert_answer(response, status)
    assert ledger_state() == before


@pytest.mark.parametrize(("caller", "body", "status"), REFUSED_ATTRIBUTIONS)
def test_it_refuses_a_whole_usage_batch_when_one_item_is_out_of_reach(
    client_of, world, budgets, caller, body, status
):
    before = ledger_state()
    items = [_spend_body("usage", "ok-1"), _spend_body("usage", "bad-1") | _ids(world, body)]

    response = client_of(caller).post("/api/v1/usage", {"items": items}, format="json")

    assert_answer(response, status)
    assert ledger_state() == before


@pytest.mark.parametrize("kind", ["usage", "reservations"])
@pytest.mark.parametrize(("caller", "body", "booked_to"), ALLOWED_ATTRIBUTIONS)
def test_it_books_spend_to_the_team_and_user_the_caller_may_charge(
    client_of, world, budgets, caller, body, booked_to, kind
):
    response = client_of(caller).post(
        f"/api/v1/{kind}", _spend_body(kind, "r-1") | _ids(world, body), format="json"
    )

    assert_answer(response, 201)
    team, user = (getattr(world, name).pk if name else None for name in booked_to)
    assert (response.json()["teamId"], response.json()["userId"]) == (team, user)


def test_it_charges_a_members_user_budget_even_when_she_names_her_team(client_of, budgets):
    response = client_of("bob").post(
        "/api/v1/usage", _spend_body("usage", "r-1") | {"teamId": budgets["alpha"].team_id}, format="json"
    )

    assert_answer(response, 201)
    assert BudgetPeriod.objects.get(budget=budgets["bob"]).spent == Decimal("0.25")


# --- reservations: settling or releasing someone else's hold ------------------------------------------

# fmt: off
TOUCH = [
    # holder       caller       answer: 404 means "no such reservation" to that caller
    ("bob",       "bob",       "ok"),   # the holder
    ("bob",       "alice",     "ok"),   # his lead
    ("bob",       "fiona",     "ok"),   # finance
    ("bob",       "carol",     404),
    ("bob",       "alpha_key", 404),    # the team key did not make it
    ("bob",       "bob_key",   404),    # nor did bob's key: a key touches only its own holds
    ("bob",       "omar",      404),
    ("alpha_key", "alpha_key", "ok"),
    ("alpha_key", "alice",     "ok"),
    ("alpha_key", "bob",       404),    # a member sees the team's hold but may not finish it
    ("alpha_key", "bob_key",   404),
    ("alpha_key", "carol",     404),
    ("alpha_key", "omar",      404),
    ("bob_key",   "bob_key",   "ok"),
    ("bob_key",   "bob",       404),
    ("bob_key",   "alpha_key", 404),
]
# fmt: on
FINISH = {
    "settle": ({"cost": 0.1, "model": "gpt-4o-mini"}, 201, ReservationState.SETTLED),
    "release": ({}, 200, ReservationState.RELEASED),
}


@pytest.mark.parametrize("action", list(FINISH))
@pytest.mark.parametrize(("holder", "caller", "answer"), TOUCH)
def test_it_lets_only_the_holder_and_its_managers_finish_a_reservation(
    client_of, principal_of, budgets, holder, caller, answer, action
):
    reservation = reservation_authorize(
        principal=principal_of(holder), request_id="r-1", amount=Decimal(1)
    ).reservation
    body, ok_status, final_state = FINISH[action]
    before = ledger_state()

    response = client_of(caller).post(f"/api/v1/reservations/{reservation.pk}/{action}", body, format="json")

    reservation.refresh_from_db()
    if answer == "ok":
        assert_answer(response, ok_status)
        assert reservation.state == final_state
    else:
        assert_answer(response, answer)
        assert reservation.state == ReservationState.PENDING
        assert ledger_state() == before


# --- callers that are nobody ----------------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/budgets"),
    ("post", "/api/v1/budgets"),
    ("get", "/api/v1/budgets/{budget}"),
    ("patch", "/api/v1/budgets/{budget}"),
    ("put", "/api/v1/budgets/{budget}"),
    ("delete", "/api/v1/budgets/{budget}"),
    ("get", "/api/v1/budgets/{budget}/status"),
    ("get", "/api/v1/budgets/status/team/{team}"),
    ("get", "/api/v1/usage"),
    ("post", "/api/v1/usage"),
    ("get", "/api/v1/usage/{usage}"),
    ("get", "/api/v1/reservations"),
    ("post", "/api/v1/reservations"),
    ("get", "/api/v1/reservations/{reservation}"),
    ("post", "/api/v1/reservations/{reservation}/settle"),
    ("post", "/api/v1/reservations/{reservation}/release"),
]
ANONYMOUS = {
    "no credentials": ({}, "not_authenticated"),
    "unknown key": ({"HTTP_AUTHORIZATION": "Bearer cs_unknown"}, "authentication_failed"),
    "malformed key": ({"HTTP_AUTHORIZATION": "Bearer not-a-key"}, "authentication_failed"),
}


@pytest.mark.parametrize("credentials", list(ANONYMOUS))
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_it_answers_401_to_callers_without_valid_credentials_and_changes_nothing(
    world, budgets, ledger_rows, method, path, credentials
):
    headers, code = ANONYMOUS[credentials]
    url = path.format(
        budget=budgets["alpha"].pk,
        team=world.alpha.pk,
        usage=ledger_rows["usage"]["bob"],
        reservation=ledger_rows["reservations"]["bob"],
    )
    before = (ledger_state(), budget_state(budgets["alpha"]), Budget.objects.count())
    body = {"requestId": "anon", "model": "m", "cost": 1, "amount": 1, "name": "x", "limit": 1}
    payload = {"data": body, "format": "json"} if method in {"post", "put", "patch"} else {}

    response = getattr(APIClient(), method)(url, **payload, **headers)

    assert_answer(response, 401)
    assert response.json()["code"] == code
    assert (ledger_state(), budget_state(budgets["alpha"]), Budget.objects.count()) == before


# --- request ids: someone else's reveals nothing --------------------------------------------------------

# Request ids are unique per organization. Reusing one answers as a replay only to a caller who may
# finish the first request (as for settle and release); anyone else learns nothing about it.
# fmt: off
REPLAYS = [
    # first caller  then         answer
    ("bob",        "bob",       "replayed"),
    ("bob",        "alice",     "replayed"),
    ("bob",        "fiona",     "replayed"),
    ("bob",        "carol",     409),
    ("bob",        "alpha_key", 409),
    ("bob",        "bob_key",   409),
    ("alpha_key",  "alpha_key", "replayed"),
    ("alpha_key",  "bob",       409),
    ("alpha_key",  "carol",     409),
    ("carol",      "bob",       409),
    ("carol",      "alice",     409),
]
# fmt: on


@pytest.mark.parametrize("kind", ["usage", "reservations"])
@pytest.mark.parametrize(("first", "then", "answer"), REPLAYS)
def test_it_replays_a_request_id_only_to_those_who_may_finish_the_first_request(
    client_of, budgets, first, then, answer, kind
):
    original = client_of(first).post(f"/api/v1/{kind}", _spend_body(kind, "shared"), format="json")
    assert_answer(original, 201)
    before = ledger_state()

    response = client_of(then).post(f"/api/v1/{kind}", _spend_body(kind, "shared"), format="json")

    if answer == "replayed":
        assert_answer(response, 200)
        assert response.json() | {"replayed": False} == original.json()
    else:
        assert_answer(response, answer)
        assert "0.25" not in response.content.decode(), "the first request's amount stays private"
    assert ledger_state() == before


@pytest.mark.parametrize("kind", ["usage", "reservations"])
def test_it_tells_a_stranger_nothing_about_someone_elses_request_even_with_other_amounts(
    client_of, budgets, kind
):
    assert_answer(client_of("bob").post(f"/api/v1/{kind}", _spend_body(kind, "shared"), format="json"), 201)
    different = _spend_body(kind, "shared") | {"cost": 7, "amount": 7}
    different = {key: value for key, value in different.items() if key in _spend_body(kind, "x")}

    response = client_of("carol").post(f"/api/v1/{kind}", different, format="json")

    assert_answer(response, 409)
    assert "0.25" not in response.content.decode()


def test_it_does_not_let_a_team_lead_raise_her_own_budget(world):
    own = user_budget(world.alice, limit=Decimal("10"))
    response = client_for(world.alice).patch(f"/api/v1/budgets/{own.pk}", {"limit": 1000}, format="json")
    assert_answer(response, 403)
    own.refresh_from_db()
    assert own.limit == Decimal("10")
