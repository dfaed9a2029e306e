"""An API key's rate limits are set when it is created and edited later, in admin."""

import pytest
from django.urls import reverse

from budgets.models import ApiKey
from budgets.services.keys import api_key_create
from tests.budgets.factories import UserFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, world):
    client.force_login(UserFactory(username="root", organization=None, is_staff=True, is_superuser=True))
    return client


def test_a_key_is_created_with_its_limits(staff_client, world):
    response = staff_client.post(
        reverse("admin:budgets_apikey_add"),
        {
            "name": "batch",
            "organization": world.org.pk,
            "team": world.alpha.pk,
            "user": "",
            "requests_per_minute": "120",
            "tokens_per_minute": "",
        },
    )
    assert response.status_code == 302
    api_key = ApiKey.objects.get(name="batch")
    assert (api_key.requests_per_minute, api_key.tokens_per_minute) == (120, None)


def test_the_limits_of_a_key_are_edited_in_admin(staff_client, world):
    api_key, _ = make_api_key(team=world.alpha)
    url = reverse("admin:budgets_apikey_change", args=[api_key.pk])
    response = staff_client.post(
        url, {"name": api_key.name, "requests_per_minute": "30", "tokens_per_minute": "90000"}
    )
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )
    api_key.refresh_from_db()
    assert (api_key.requests_per_minute, api_key.tokens_per_minute) == (30, 90_000)


def test_a_zero_limit_is_refused(staff_client, world):
    api_key, _ = make_api_key(team=world.alpha)
    url = reverse("admin:budgets_apikey_change", args=[api_key.pk])
    response = staff_client.post(url, {"name": api_key.name, "requests_per_minute": "0"})
    assert response.status_code == 200
    assert "requests_per_minute" in response.context["adminform"].form.errors
    api_key.refresh_from_db()
    assert api_key.requests_per_minute is None


def test_the_service_takes_the_limits(world):
    api_key, _ = api_key_create(
        organization=world.org, name="svc", team=world.alpha, requests_per_minute=5, tokens_per_minute=50
    )
    api_key.refresh_from_db()
    assert (api_key.requests_per_minute, api_key.tokens_per_minute) == (5, 50)
