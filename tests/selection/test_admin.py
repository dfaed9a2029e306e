"""Steering rules are edited in Django admin as versions; decisions are read-only there."""

import pytest
from django.test import Client

from selection.models import Decision, RuleSetVersion
from tests.budgets.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

VALID = """rules:
  - name: deny-low
    when:
      - type: request
        priority: low
    then:
      - type: deny
        reason: paused"""
ADD_URL = "/admin/selection/rulesetversion/add/"


@pytest.fixture
def admin_client():
    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def test_invalid_yaml_is_refused_with_line_and_field(admin_client):
    client, _ = admin_client
    org = OrganizationFactory()
    page = client.post(
        ADD_URL, {"organization": org.pk, "source": "rules:\n  - name: a\n    priority: yes\n    then: []\n"}
    )
    assert page.status_code == 200
    errors = " ".join(page.context["adminform"].form.errors["source"])
    assert "line 3: rules[0].priority" in errors and "line 4: rules[0].then" in errors
    assert not RuleSetVersion.objects.exists()


def test_saving_publishes_numbered_versions_and_never_edits_one(
    admin_client, django_capture_on_commit_callbacks
):
    client, user = admin_client
    org = OrganizationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(ADD_URL, {"organization": org.pk, "source": VALID, "note": "first"})
    first = RuleSetVersion.objects.get()
    assert (first.version, first.rule_count, first.created_by) == (1, 1, user)
    change_url = f"/admin/selection/rulesetversion/{first.pk}/change/"
    assert client.get(change_url).status_code == 200
    edited = client.post(change_url, {"organization": org.pk, "source": "rules: []\n"})
    assert edited.status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        client.post(change_url, {"organization": org.pk, "source": "rules: []\n", "_saveasnew": "1"})
    assert list(RuleSetVersion.objects.order_by("version").values_list("version", "rule_count")) == [
        (1, 1),
        (2, 0),
    ]
    first.refresh_from_db()
    assert first.source == VALID


def test_decisions_are_listed_but_cannot_be_changed(admin_client):
    client, _ = admin_client
    org = OrganizationFactory()
    decision = Decision.objects.create(
        organization=org,
        request_id="r1",
        outcome="admitted",
        strategy="balanced",
        task_type="chat",
        complexity=0.1,
        quality_requirement=60,
        selected_model="good",
    )
    page = client.get("/admin/selection/decision/?q=r1")
    assert page.status_code == 200 and "good" in page.content.decode()
    assert client.post(f"/admin/selection/decision/{decision.pk}/delete/", {"post": "yes"}).status_code == 403
