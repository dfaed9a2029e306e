"""`/api/v1/audit`: changes made through the API are recorded with their caller and request id, and
the log reads back filtered, paginated and scoped to what the caller may see."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from approvals.audit import record
from approvals.models import AuditEntry
from tests.budgets.factories import BudgetFactory, team_budget, user_budget
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory

URL = "/api/v1/audit"


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {entry["id"] for entry in response.json()["results"]}


def entry_about(obj, action: str) -> AuditEntry:
    return AuditEntry.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk), action=action
    ).latest("sequence")


def test_a_budget_change_through_the_api_is_recorded_with_caller_and_request_id(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))

    response = client_for(world.fiona).patch(
        f"/api/v1/budgets/{budget.pk}",
        {"limit": 250, "name": "Alpha (raised)"},
        format="json",
        HTTP_X_REQUEST_ID="req-api-42",
    )

    assert response.status_code == 200, response.content
    entry = entry_about(budget, "budget.updated")
    assert (entry.actor_type, entry.actor_id) == ("user", str(world.fiona.pk))
    assert entry.request_id == "req-api-42"
    assert entry.before == {"limit": "100", "name": budget.name}
    assert entry.after == {"limit": "250", "name": "Alpha (raised)"}


def test_a_refused_change_leaves_no_entry(world):
    budget = team_budget(world.beta)
    count = AuditEntry.objects.count()
    response = client_for(world.alice).patch(f"/api/v1/budgets/{budget.pk}", {"limit": 1}, format="json")
    assert response.status_code in (403, 404)
    assert AuditEntry.objects.count() == count


def test_finance_reads_its_organizations_entries_and_the_registrys_but_no_other_organizations(world):
    ours = team_budget(world.beta)
    theirs = team_budget(world.other_team)
    model = ModelProfileFactory(id="audit-model")

    seen = ids(client_for(world.fiona).get(URL, {"pageSize": 500}))

    assert entry_about(ours, "budget.created").pk in seen
    assert entry_about(model, "modelprofile.created").pk in seen
    assert entry_about(theirs, "budget.created").pk not in seen
    visible = Q(organization_id=world.org.pk) | Q(organization_id__isnull=True)
    assert seen == set(AuditEntry.objects.filter(visible).values_list("pk", flat=True))


def test_a_team_lead_reads_entries_about_her_teams_and_their_members_only(world):
    alpha_budget = team_budget(world.alpha)
    bob_budget = user_budget(world.bob)
    beta_budget = team_budget(world.beta)
    org_budget = BudgetFactory(organization=world.org)

    seen = ids(client_for(world.alice).get(URL, {"pageSize": 500}))

    assert entry_about(alpha_budget, "budget.created").pk in seen
    assert entry_about(bob_budget, "budget.created").pk in seen
    assert entry_about(beta_budget, "budget.created").pk not in seen
    assert entry_about(org_budget, "budget.created").pk not in seen
    hidden = entry_about(beta_budget, "budget.created")
    assert client_for(world.alice).get(f"{URL}/{hidden.pk}").status_code == 404


def test_members_and_api_keys_are_refused(world, team_key):
    for response in (
        client_for(world.bob).get(URL),
        client_for(world.carol).get(f"{URL}/{AuditEntry.objects.first().pk}"),
        client_with_key(team_key[1]).get(URL),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "audit_forbidden"


def test_another_organizations_entry_does_not_exist_for_the_caller(world):
    ours = entry_about(team_budget(world.alpha), "budget.created")
    response = client_for(world.omar).get(f"{URL}/{ours.pk}")
    assert response.status_code == 404
    assert ours.pk not in ids(client_for(world.omar).get(URL, {"pageSize": 500}))


def test_one_entry_reads_back_in_camel_case(world):
    budget = team_budget(world.alpha)
    entry = record(
        action="budget.review",
        obj=budget,
        actor=world.fiona,
        before={"max_cost_per_request": None},
        after={"max_cost_per_request": Decimal("0.5")},
        reason="Too many expensive calls",
        request_id="req-7",
    )

    body = client_for(world.fiona).get(f"{URL}/{entry.pk}").json()

    assert body == {
        "id": entry.pk,
        "sequence": entry.sequence,
        "occurredAt": body["occurredAt"],
        "actor": {"type": "user", "id": str(world.fiona.pk), "label": "fiona"},
        "action": "budget.review",
        "objectType": "budgets.budget",
        "objectId": str(budget.pk),
        "objectRepr": budget.name,
        "organizationId": world.org.pk,
        "teamId": world.alpha.pk,
        "subjectUserId": None,
        "before": {"maxCostPerRequest": None},
        "after": {"maxCostPerRequest": "0.5"},
        "reason": "Too many expensive calls",
        "requestId": "req-7",
        "prevHash": entry.prev_hash,
        "hash": entry.hash,
    }


def test_it_filters_by_action_object_actor_request_and_time(world):
    budget = team_budget(world.alpha)
    mine = record(action="budget.review", obj=budget, actor=world.fiona, request_id="req-f")
    record(action="budget.review", obj=budget, request_id="req-s")
    client = client_for(world.fiona)

    assert ids(client.get(URL, {"action": "budget.review", "actor": f"user:{world.fiona.pk}"})) == {mine.pk}
    assert ids(client.get(URL, {"requestId": "req-f"})) == {mine.pk}
    about = ids(client.get(URL, {"objectType": "budgets.budget", "objectId": budget.pk, "pageSize": 500}))
    assert about == set(
        AuditEntry.objects.filter(object_type="budgets.budget", object_id=str(budget.pk)).values_list(
            "pk", flat=True
        )
    )
    system = ids(client.get(URL, {"actor": "system", "action": "budget.review"}))
    assert mine.pk not in system and len(system) == 1
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids(client.get(URL, {"since": later})) == set()
    assert mine.pk in ids(client.get(URL, {"until": later, "action": "budget.review"}))


@pytest.mark.parametrize("query", [{"actor": "bob"}, {"actorType": "robot"}, {"since": "yesterday"}])
def test_a_bad_filter_is_a_400(world, query):
    response = client_for(world.fiona).get(URL, query)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_the_list_runs_a_fixed_number_of_queries(world):
    client = client_for(world.fiona)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    few = queries()
    for _ in range(20):
        team_budget(world.alpha)
    assert queries() == few


def test_the_audit_endpoints_make_a_clean_schema():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert {"/api/v1/audit/", "/api/v1/audit/{id}/"} <= set(schema["paths"])
    problems = [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "audit" in message.lower()
    ]
    assert problems == []
