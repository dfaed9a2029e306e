"""What the audit log records, wherever a change is made: creates, updates (changed fields only),
deletes; who did it and in which request; never secrets, never ledger or last-used noise."""

from decimal import Decimal

import pytest
from django.test import RequestFactory

from approvals.audit import record
from approvals.models import AuditEntry
from budgets.choices import Role
from budgets.models import ApiKey, Budget, Membership, Threshold
from budgets.principals import principal_for_user
from budgets.services.budgets import ThresholdSpec, budget_update
from budgets.services.keys import api_key_revoke
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from costswitch import context, logs
from costswitch.authentication import ApiKeyAuthentication
from models_registry.services import Prices, model_fallbacks_set, model_update
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget
from tests.conftest import client_with_key
from tests.models_registry.factories import ModelProfileFactory


def entries_about(obj, pk=None) -> list[AuditEntry]:
    """Entries about `obj` (pass the pk of a deleted object: deleting clears it)."""
    pk = obj.pk if pk is None else pk
    entries = AuditEntry.objects.filter(object_type=obj._meta.label_lower, object_id=str(pk))
    return list(entries.order_by("sequence"))


def test_a_budget_change_records_only_the_changed_fields_with_actor_and_request(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    logs.open_context(request_id="req-audit-1")
    try:
        with context.acting_as(world.fiona):
            budget_update(principal=principal_for_user(world.fiona), budget=budget, limit=Decimal("75.5"))
    finally:
        logs.clear_context()

    entry = entries_about(budget)[-1]
    assert entry.action == "budget.updated"
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == ("user", str(world.fiona.pk), "fiona")
    assert entry.before == {"limit": "100"} and entry.after == {"limit": "75.5"}
    assert entry.request_id == "req-audit-1"
    assert (entry.organization_id, entry.team_id) == (world.org.pk, world.alpha.pk)
    assert entry.object_repr == budget.name


def test_a_create_records_the_whole_row_and_a_delete_the_row_it_removed(world):
    budget = team_budget(world.alpha, thresholds=[])
    created = entries_about(budget)[0]
    assert created.action == "budget.created" and created.before is None
    assert created.after["limit"] == "100" and created.after["team_id"] == world.alpha.pk
    assert created.actor_type == "system"  # no request, nobody bound

    threshold = Threshold.objects.create(budget=budget, percent=Decimal("80"), actions=["notify"])
    threshold_id = threshold.pk
    threshold.delete()
    made, removed = entries_about(threshold, threshold_id)
    assert (made.action, removed.action) == ("threshold.created", "threshold.deleted")
    assert removed.before == {
        "id": threshold_id,
        "budget_id": budget.pk,
        "percent": "80",
        "actions": ["notify"],
    }
    assert removed.after is None
    # Thresholds belong to their budget's organization and team.
    assert (removed.organization_id, removed.team_id) == (world.org.pk, world.alpha.pk)


def test_a_save_that_changes_nothing_records_nothing(world):
    budget = BudgetFactory(organization=world.org)
    count = AuditEntry.objects.count()
    budget.save()  # updated_at moves, nothing else
    Budget.objects.get(pk=budget.pk).save()
    assert AuditEntry.objects.count() == count


def test_a_role_change_is_recorded(world):
    membership = Membership.objects.get(user=world.bob)
    membership.role = Role.TEAM_LEAD
    membership.save()
    entry = entries_about(membership)[-1]
    assert (entry.before, entry.after) == ({"role": "member"}, {"role": "team_lead"})
    assert (entry.organization_id, entry.team_id, entry.subject_user_id) == (
        world.org.pk,
        world.alpha.pk,
        world.bob.pk,
    )


def test_api_keys_are_recorded_without_their_hash(world):
    api_key, secret = make_api_key(team=world.alpha)
    api_key_revoke(api_key=api_key)

    created, revoked = entries_about(api_key)
    assert "key_hash" not in created.after and created.after["prefix"] == api_key.prefix
    assert revoked.action == "apikey.updated" and list(revoked.after) == ["revoked_at"]
    serialized = str(list(AuditEntry.objects.values_list("before", "after")))
    assert api_key.key_hash not in serialized and secret not in serialized


def test_last_used_updates_of_api_keys_record_nothing(world, team_key):
    api_key, secret = team_key
    count = AuditEntry.objects.count()

    assert client_with_key(secret).get("/api/v1/budgets").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None  # the authentication did write it
    api_key.last_used_at = None
    api_key.save()  # a save of last_used_at alone is bookkeeping too
    api_key.save(update_fields=["last_used_at"])

    assert AuditEntry.objects.count() == count


def test_the_ledger_is_not_tracked(world):
    BudgetFactory(organization=world.org)
    count = AuditEntry.objects.count()
    fiona = principal_for_user(world.fiona)
    usage_record_many(principal=fiona, reports=[UsageReport(request_id="u1", cost=Decimal("1"), model="m")])
    reservation_authorize(principal=fiona, request_id="r1", amount=Decimal("1"))
    assert AuditEntry.objects.count() == count


def test_price_changes_of_the_shared_registry_are_recorded(world):
    model = ModelProfileFactory(id="gpt-audit")
    model_update(
        model=model, prices=Prices(Decimal("3"), Decimal("12"), None), source="api", changed_by=world.alice
    )

    update = [e for e in entries_about(model) if e.action == "modelprofile.updated"][-1]
    assert update.before["input_price_per_million"] == "2.5"
    assert update.after["input_price_per_million"] == "3"
    assert update.organization_id is None  # the registry is shared by every organization
    assert AuditEntry.objects.filter(
        object_type="models_registry.pricechange", action="pricechange.created"
    ).exists()


def test_an_explicit_record_keeps_the_reason_and_strips_secrets(world):
    budget = team_budget(world.alpha)
    entry = record(
        action="override.approve",
        obj=budget,
        actor=world.fiona,
        before={"state": "pending", "key_hash": "abc"},
        after={"state": "approved", "amount": Decimal("12.50")},
        reason="Launch week",
    )
    assert entry.before == {"state": "pending"}
    assert entry.after == {"state": "approved", "amount": "12.5"}
    assert entry.reason == "Launch week" and entry.actor_label == "fiona"
    assert entry.team_id == world.alpha.pk


def test_the_request_binding_finds_the_api_key_or_the_session_user(world, team_key):
    api_key, secret = team_key
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    request.user, request.auth = ApiKeyAuthentication().authenticate(request)
    assert context.request_actor(request)() == api_key

    request = RequestFactory().get("/")
    request.user = world.alice
    assert context.request_actor(request)() == world.alice

    entry = record(action="test.api_key", obj=world.alpha, actor=ApiKey.objects.get(pk=api_key.pk))
    assert (entry.actor_type, entry.actor_id) == ("api_key", str(api_key.pk))
    assert entry.actor_label.startswith(api_key.prefix)


def test_entries_cannot_be_changed_or_deleted_through_the_orm(world):
    entry = AuditEntry.objects.order_by("sequence").first()
    entry.reason = "rewritten"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""


def test_thresholds_and_fallbacks_replaced_by_services_are_each_recorded(world):
    budget = team_budget(world.alpha, thresholds=[])
    with context.acting_as(world.fiona):
        budget_update(
            principal=principal_for_user(world.fiona),
            budget=budget,
            thresholds=[ThresholdSpec(Decimal("60"), ("notify",)), ThresholdSpec(Decimal("90"), ("block",))],
        )
    created = AuditEntry.objects.filter(action="threshold.created", team_id=world.alpha.pk)
    assert sorted(entry.after["percent"] for entry in created) == ["60", "90"]
    assert {entry.actor_label for entry in created} == {"fiona"}

    model, first, second = ModelProfileFactory(), ModelProfileFactory(), ModelProfileFactory()
    model_fallbacks_set(model=model, fallback_ids=[first.pk, second.pk])
    links = AuditEntry.objects.filter(action="modelfallback.created").order_by("sequence")
    assert [(entry.after["fallback_id"], entry.after["position"]) for entry in links] == [
        (first.pk, 1),
        (second.pk, 2),
    ]
