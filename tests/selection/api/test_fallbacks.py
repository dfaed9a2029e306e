"""GET /api/v1/models/fallbacks/{modelId}: a model's registered fallback chain, in order, with each
step's prices and whether it can serve now."""

from decimal import Decimal

import pytest
import simplejson
from rest_framework.test import APIClient

from models_registry.services import model_fallbacks_set
from tests.conftest import client_for
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

URL = "/api/v1/models/fallbacks/{}"


def exact(response) -> dict:
    return simplejson.loads(response.content, parse_float=Decimal)


@pytest.fixture
def bob(world):
    return client_for(world.bob)


def test_it_lists_the_chain_in_registered_order_with_prices(world, ladder, bob):
    ladder["good"].context_window = 64_000
    ladder["good"].save()
    model_fallbacks_set(model=ladder["standard"], fallback_ids=["good", "weak", "premium"])

    response = bob.get(URL.format("standard"))

    assert response.status_code == 200, response.json()
    body = exact(response)
    assert (body["modelId"], body["usable"]) == ("standard", True)
    assert body["fallbacks"][0] == {
        "position": 1,
        "modelId": "good",
        "provider": "openai",
        "providerStatus": "active",
        "usable": True,
        "inputPricePerMillion": Decimal("0.15"),
        "outputPricePerMillion": Decimal("0.6"),
        "contextWindow": 64_000,
    }
    assert [(f["position"], f["modelId"]) for f in body["fallbacks"]] == [
        (1, "good"),
        (2, "weak"),
        (3, "premium"),
    ]
    assert [(f["inputPricePerMillion"], f["outputPricePerMillion"]) for f in body["fallbacks"][1:]] == [
        (Decimal("0.05"), Decimal("0.2")),
        (Decimal("15"), Decimal("75")),
    ]


def test_a_step_that_cannot_serve_is_listed_as_unusable(world, ladder, bob):
    ladder["good"].is_active = False
    ladder["good"].save()
    ladder["weak"].provider = ProviderFactory(name="cheapco", status="disabled")
    ladder["weak"].save()
    ladder["premium"].provider = ProviderFactory(name="slowco", status="degraded")
    ladder["premium"].save()
    model_fallbacks_set(model=ladder["standard"], fallback_ids=["good", "weak", "premium"])

    body = bob.get(URL.format("standard")).json()

    assert [(f["modelId"], f["provider"], f["providerStatus"], f["usable"]) for f in body["fallbacks"]] == [
        ("good", "openai", "active", False),  # inactive in the registry
        ("weak", "cheapco", "disabled", False),
        ("premium", "slowco", "degraded", True),  # degraded still serves
    ]


def test_an_unusable_model_still_shows_its_chain(world, ladder, bob):
    ladder["premium"].is_active = False
    ladder["premium"].save()
    model_fallbacks_set(model=ladder["premium"], fallback_ids=["standard"])

    body = bob.get(URL.format("premium")).json()

    assert (body["modelId"], body["usable"]) == ("premium", False)
    assert [(f["modelId"], f["usable"]) for f in body["fallbacks"]] == [("standard", True)]


def test_a_model_without_fallbacks_has_an_empty_chain(world, ladder, bob):
    response = bob.get(URL.format("good"))

    assert response.status_code == 200
    assert response.json() == {"modelId": "good", "usable": True, "fallbacks": []}


def test_model_ids_with_dots_are_found(world, bob):
    ModelProfileFactory(id="gpt-4.1-mini")

    response = bob.get(URL.format("gpt-4.1-mini"))

    assert response.status_code == 200, response.json()
    assert response.json()["modelId"] == "gpt-4.1-mini"


def test_an_unknown_model_is_a_404(world, ladder, bob):
    response = bob.get(URL.format("gpt-9"))

    assert response.status_code == 404
    body = response.json()
    assert (body["status"], body["code"]) == (404, "unknown_model")
    assert "gpt-9" in body["message"]


def test_a_changed_chain_is_served_on_the_next_request(
    world, ladder, bob, django_capture_on_commit_callbacks
):
    model_fallbacks_set(model=ladder["standard"], fallback_ids=["good", "weak"])
    assert [f["modelId"] for f in bob.get(URL.format("standard")).json()["fallbacks"]] == ["good", "weak"]

    with django_capture_on_commit_callbacks(execute=True):
        model_fallbacks_set(model=ladder["standard"], fallback_ids=["weak"])

    assert [f["modelId"] for f in bob.get(URL.format("standard")).json()["fallbacks"]] == ["weak"]


def test_the_chain_needs_a_caller(world, ladder):
    response = APIClient().get(URL.format("standard"))

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
