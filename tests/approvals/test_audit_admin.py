"""Changes made in Django admin are audited with the admin user and the request id; the log itself
is read-only in the admin."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.forms import MultiWidget
from django.test import RequestFactory
from django.urls import reverse

from approvals.models import AuditEntry
from budgets.models import ApiKey, Budget
from tests.budgets.factories import UserFactory, make_api_key, team_budget


@pytest.fixture
def staff(world):
    return UserFactory(username="root", organization=None, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def change_form_data(response) -> dict:
    """What the admin change page would post back unchanged: its form, inlines and management forms."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for field in form:
            value = field.value()  # as the page renders it
            if isinstance(field.field.widget, MultiWidget):
                parts = value if isinstance(value, list | tuple) else field.field.widget.decompress(value)
                for index, part in enumerate(parts):
                    data[f"{field.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(value, bool):
                if value:
                    data[field.html_name] = "on"
            else:
                data[field.html_name] = "" if value is None else value
    return data


def test_a_budget_change_in_the_admin_is_recorded_with_the_admin_and_request_id(staff_client, staff, world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    page = staff_client.get(url(Budget, "change", budget.pk))
    form = {**change_form_data(page), "limit": "75"}

    response = staff_client.post(url(Budget, "change", budget.pk), form, HTTP_X_REQUEST_ID="req-admin-1")

    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.filter(object_type="budgets.budget", object_id=str(budget.pk)).latest(
        "sequence"
    )
    assert entry.action == "budget.updated"
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == ("user", str(staff.pk), "root")
    assert entry.request_id == "req-admin-1"
    assert (entry.before, entry.after) == ({"limit": "100"}, {"limit": "75"})


def test_an_api_key_change_in_the_admin_is_recorded(staff_client, staff, world):
    api_key, _ = make_api_key(team=world.alpha)
    page = staff_client.get(url(ApiKey, "change", api_key.pk))
    form = {**change_form_data(page), "critical": "on"}

    assert staff_client.post(url(ApiKey, "change", api_key.pk), form).status_code == 302

    entry = AuditEntry.objects.filter(object_type="budgets.apikey", object_id=str(api_key.pk)).latest(
        "sequence"
    )
    assert (entry.before, entry.after) == ({"critical": False}, {"critical": True})
    assert entry.actor_id == str(staff.pk)


def test_the_log_is_read_only_in_the_admin(staff_client, staff, world):
    entry = AuditEntry.objects.order_by("sequence").first()
    request = RequestFactory().get("/")
    request.user = staff
    model_admin = admin.site._registry[AuditEntry]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)

    changelist = staff_client.get(url(AuditEntry, "changelist"), {"q": "alpha"})
    assert changelist.status_code == 200 and changelist.context["cl"].result_count >= 1
    assert staff_client.get(url(AuditEntry, "change", entry.pk)).status_code == 200
    assert staff_client.post(url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
