"""Per-model rate limits: read and written through the models API (staff) and edited in admin."""

from decimal import Decimal

import pytest
from django.test import Client

from models_registry.choices import PriceSource
from models_registry.models import ModelProfile
from models_registry.services import model_update
from tests.budgets.factories import UserFactory
from tests.conftest import client_for
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(world):
    return UserFactory(username="stan", is_staff=True, organization=world.org)


@pytest.fixture
def model(db):
    return ModelProfileFactory(id="gpt-4o", provider=ProviderFactory(name="openai"))


def test_the_models_api_shows_the_limits(world, model):
    ModelProfile.objects.filter(pk=model.pk).update(requests_per_minute=500)
    body = client_for(world.bob).get("/api/v1/models/gpt-4o").json()
    assert (body["requestsPerMinute"], body["tokensPerMinute"]) == (500, None)


def test_staff_set_and_clear_the_limits(staff, model):
    client = client_for(staff)
    response = client.patch(
        "/api/v1/models/gpt-4o", {"requestsPerMinute": 600, "tokensPerMinute": 200_000}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["requestsPerMinute"], response.json()["tokensPerMinute"]) == (600, 200_000)
    model.refresh_from_db()
    assert (model.requests_per_minute, model.tokens_per_minute) == (600, 200_000)
    response = client.patch("/api/v1/models/gpt-4o", {"requestsPerMinute": None}, format="json")
    assert response.status_code == 200
    model.refresh_from_db()
    assert (model.requests_per_minute, model.tokens_per_minute) == (None, 200_000)


@pytest.mark.parametrize("value", [0, -5, 2**31, "many"])
def test_a_limit_must_be_a_positive_integer(staff, model, value):
    response = client_for(staff).patch("/api/v1/models/gpt-4o", {"tokensPerMinute": value}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["message"].startswith("tokensPerMinute:")
    model.refresh_from_db()
    assert model.tokens_per_minute is None


def test_a_new_model_may_come_with_limits(staff, model):
    body = {
        "id": "cheap-one",
        "provider": "openai",
        "contextWindow": 128_000,
        "maxOutputTokens": 4_096,
        "inputPricePerMillion": 1,
        "outputPricePerMillion": 2,
        "requestsPerMinute": 60,
    }
    response = client_for(staff).post("/api/v1/models", body, format="json")
    assert response.status_code == 201, response.json()
    assert ModelProfile.objects.get(pk="cheap-one").requests_per_minute == 60


def test_only_staff_change_the_limits(world, model):
    response = client_for(world.fiona).patch("/api/v1/models/gpt-4o", {"requestsPerMinute": 1}, format="json")
    assert response.status_code == 403
    model.refresh_from_db()
    assert model.requests_per_minute is None


def test_the_limits_are_edited_in_admin(model):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/models_registry/modelprofile/{model.pk}/change/"
    form = client.get(url).context["adminform"].form
    assert {"requests_per_minute", "tokens_per_minute"} <= set(form.fields)
    data = {name: value for name, value in form.initial.items() if value is not None and name != "fallbacks"}
    for flag in (
        "supports_tools",
        "supports_vision",
        "supports_json_mode",
        "supports_streaming",
        "is_active",
    ):
        if not data.get(flag):
            data.pop(flag, None)
    data.update(
        {
            "provider": model.provider_id,
            "quality_scores": '{"chat": 80}',
            "requests_per_minute": "90",
            "tokens_per_minute": "",
            "fallback_links-TOTAL_FORMS": "0",
            "fallback_links-INITIAL_FORMS": "0",
            "price_changes-TOTAL_FORMS": "0",
            "price_changes-INITIAL_FORMS": "0",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )
    model.refresh_from_db()
    assert (model.requests_per_minute, model.tokens_per_minute) == (90, None)
    assert model.input_price_per_million == Decimal("2.50")


def test_the_service_updates_the_limits(model):
    result = model_update(model=model, profile={"tokens_per_minute": 1000}, source=PriceSource.API)
    assert result.changed_fields == ["tokens_per_minute"]
