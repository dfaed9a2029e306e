"""Price edits made in Django admin land in the price history with the admin as author."""

from decimal import Decimal

import pytest
from django.test import Client

from models_registry.choices import PriceSource
from models_registry.models import ModelProfile, PriceChange
from tests.budgets.factories import UserFactory
from tests.models_registry.factories import ModelProfileFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def test_the_model_list_shows_prices_and_filters_by_capability(admin_client):
    client, _ = admin_client
    ModelProfileFactory(id="sees-images", supports_vision=True, input_price_per_million=Decimal("3.125"))
    ModelProfileFactory(id="text-only", supports_vision=False)
    page = client.get("/admin/models_registry/modelprofile/?supports_vision__exact=1")
    assert page.status_code == 200
    html = page.content.decode()
    assert "sees-images" in html and "text-only" not in html and "3.125" in html


def test_a_price_edit_in_admin_is_recorded_with_its_author(admin_client):
    client, user = admin_client
    model = ModelProfileFactory(id="edited", input_price_per_million=Decimal("2.5"))
    form = client.get(f"/admin/models_registry/modelprofile/{model.pk}/change/").context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "fallbacks"}
    data.update(
        {
            "provider": model.provider_id,
            "quality_scores": '{"chat": 80}',
            "input_price_per_million": "1.75",
            "fallback_links-TOTAL_FORMS": "0",
            "fallback_links-INITIAL_FORMS": "0",
            "price_changes-TOTAL_FORMS": "0",
            "price_changes-INITIAL_FORMS": "0",
        }
    )
    for flag in (
        "supports_tools",
        "supports_vision",
        "supports_json_mode",
        "supports_streaming",
        "is_active",
    ):
        if not data.get(flag):
            data.pop(flag, None)
    response = client.post(f"/admin/models_registry/modelprofile/{model.pk}/change/", data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )

    model = ModelProfile.objects.get(pk="edited")
    assert model.input_price_per_million == Decimal("1.75")
    change = PriceChange.objects.get(model=model)
    assert change.source == PriceSource.ADMIN and change.changed_by == user
    assert change.old_input_price_per_million == Decimal("2.5")
