"""The models API (`/api/v1/models`, `/api/v1/providers`): everyone authenticated reads the shared
registry, only staff change it, every price edit leaves a PriceChange row, and bad input writes nothing.

The registry is deployment-wide, so there is no outsider here: omar (another organization) reads it
like everyone else. "Read-only" is everyone who is not staff, API keys included: writes answer 403.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import simplejson
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from models_registry.choices import PriceSource, ProviderKind, Tokenizer
from models_registry.models import ModelFallback, ModelProfile, PriceChange, Provider
from models_registry.services import Prices, model_fallbacks_set, model_update, price_changes_apply_due
from tests.budgets.factories import UserFactory
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

MODELS = "/api/v1/models"
PROVIDERS = "/api/v1/providers"

# Queries of one list page, whatever the number of rows: the count, the page (with its provider) and
# the prefetched fallback links. A session user costs none (force_authenticate).
LIST_QUERIES = 3
# The price history: the model (with its provider), its fallback links, the count and the page.
HISTORY_QUERIES = 4
# The providers: one query, unpaginated.
PROVIDER_QUERIES = 1


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def staff(world):
    return UserFactory(username="stan", is_staff=True, organization=world.org)


@pytest.fixture
def openai(db):
    return ProviderFactory(name="openai", display_name="OpenAI")


@pytest.fixture
def anthropic(db):
    return ProviderFactory(
        name="anthropic",
        display_name="Anthropic",
        kind=ProviderKind.ANTHROPIC,
        base_url="https://api.anthropic.com/v1",
        api_key_env="ANTHROPIC_API_KEY",
    )


@pytest.fixture
def gpt(openai):
    return ModelProfileFactory(
        id="gpt-4o",
        provider=openai,
        display_name="GPT-4o",
        family="gpt-4o",
        input_price_per_million=Decimal("2.50"),
        output_price_per_million=Decimal("10.00"),
        cached_input_price_per_million=Decimal("1.25"),
    )


@pytest.fixture
def catalog(openai, anthropic):
    """Five models that differ on every filtered attribute."""
    return {
        model.id: model
        for model in [
            ModelProfileFactory(
                id="gpt-4o",
                provider=openai,
                display_name="GPT-4o",
                family="gpt-4o",
                context_window=128_000,
                input_price_per_million=Decimal("2.5"),
                output_price_per_million=Decimal("10"),
                supports_tools=True,
                supports_vision=True,
                supports_json_mode=True,
            ),
            ModelProfileFactory(
                id="gpt-4o-mini",
                provider=openai,
                display_name="GPT-4o mini",
                family="gpt-4o",
                context_window=128_000,
                input_price_per_million=Decimal("0.15"),
                output_price_per_million=Decimal("0.6"),
                supports_tools=True,
                supports_vision=False,
                supports_json_mode=True,
            ),
            ModelProfileFactory(
                id="gpt-3.5-turbo",
                provider=openai,
                display_name="GPT-3.5 Turbo",
                family="gpt-3.5",
                tokenizer=Tokenizer.CL100K_BASE,
                context_window=16_385,
                max_output_tokens=4_096,
                input_price_per_million=Decimal("0.5"),
                output_price_per_million=Decimal("1.5"),
                supports_tools=False,
                supports_vision=False,
                supports_json_mode=False,
                is_active=False,
            ),
            ModelProfileFactory(
                id="claude-sonnet-4",
                provider=anthropic,
                display_name="Claude Sonnet 4",
                family="claude-sonnet",
                tokenizer=Tokenizer.CLAUDE,
                context_window=200_000,
                input_price_per_million=Decimal("3"),
                output_price_per_million=Decimal("15"),
                supports_tools=True,
                supports_vision=True,
                supports_json_mode=False,
            ),
            ModelProfileFactory(
                id="claude-haiku-3",
                provider=anthropic,
                display_name="Claude Haiku 3",
                family="claude-haiku",
                tokenizer=Tokenizer.CLAUDE,
                context_window=200_000,
                input_price_per_million=Decimal("0.25"),
                output_price_per_million=Decimal("1.25"),
                supports_tools=True,
                supports_vision=False,
                supports_json_mode=False,
                supports_streaming=False,
            ),
        ]
    }


def send(client: APIClient, method: str, url: str, body) -> "object":
    """Send exact JSON: Decimal goes out as a JSON number, never a float or a string."""
    raw = body if isinstance(body, str | bytes) else simplejson.dumps(body, use_decimal=True)
    return getattr(client, method)(url, data=raw, content_type="application/json")


def payload(response) -> dict:
    """The response body with every JSON number with a fraction read as an exact Decimal."""
    return json.loads(response.content, parse_float=Decimal)


def new_model(**changes) -> dict:
    body = {
        "id": "gemini-flash",
        "provider": "openai",
        "displayName": "Gemini Flash",
        "family": "gemini",
        "tokenizer": "gemini",
        "contextWindow": 1_000_000,
        "maxOutputTokens": 8_192,
        "inputPricePerMillion": Decimal("0.075"),
        "outputPricePerMillion": Decimal("0.3"),
        "cachedInputPricePerMillion": Decimal("0.01875"),
        "capabilities": {"tools": True, "vision": True, "jsonMode": True, "streaming": True},
        "quality": {"chat": 70, "code": 65},
        "typicalLatencyMs": 350,
        "notes": "Cheap and fast.",
    }
    body.update(changes)
    return body


def registry_state() -> dict:
    """Everything a write could touch, to prove that a refused one touched nothing."""
    return {
        "models": [model_to_dict(m, exclude=["fallbacks"]) for m in ModelProfile.objects.order_by("id")],
        "updated": list(ModelProfile.objects.order_by("id").values_list("updated_at", flat=True)),
        "fallbacks": list(ModelFallback.objects.values_list("model_id", "fallback_id", "position")),
        "price_changes": list(PriceChange.objects.values_list("id", "applied_at")),
        "providers": Provider.objects.count(),
    }


def non_staff_clients(world, team_key) -> dict[str, APIClient]:
    return {
        "alice": client_for(world.alice),
        "bob": client_for(world.bob),
        "fiona": client_for(world.fiona),
        "omar": client_for(world.omar),
        "team_key": client_with_key(team_key[1]),
    }


# --- reading ----------------------------------------------------------------------------------------


def test_the_list_shows_each_model_in_camel_case_with_its_prices_and_abilities(world, gpt):
    response = client_for(world.bob).get(MODELS)

    assert response.status_code == 200
    body = payload(response)
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == "gpt-4o"
    assert row["provider"] == "openai"
    assert row["displayName"] == "GPT-4o"
    assert row["currency"] == "USD"
    assert row["inputPricePerMillion"] == Decimal("2.5")
    assert row["outputPricePerMillion"] == 10
    assert row["cachedInputPricePerMillion"] == Decimal("1.25")
    assert row["capabilities"] == {"tools": True, "vision": False, "jsonMode": True, "streaming": True}
    assert row["quality"]["code"] == 80
    assert row["contextWindow"] == 128_000
    assert row["maxOutputTokens"] == 16_384
    assert row["active"] is True
    assert row["fallbacks"] == []
    assert "supportsTools" not in row and "qualityScores" not in row and "isActive" not in row


def test_money_is_rendered_as_exact_json_numbers(world, openai):
    ModelProfileFactory(
        id="tiny",
        provider=openai,
        input_price_per_million=Decimal("0.075"),
        output_price_per_million=Decimal("0.000000001"),
        cached_input_price_per_million=None,
    )

    response = client_for(world.bob).get(f"{MODELS}/tiny")

    assert response.status_code == 200
    assert b'"inputPricePerMillion": 0.075,' in response.content
    assert b'"outputPricePerMillion": 0.000000001,' in response.content
    assert b'"cachedInputPricePerMillion": null' in response.content
    assert payload(response)["outputPricePerMillion"] == Decimal("0.000000001")


def test_fallbacks_are_listed_in_their_chain_order(world, catalog):
    model_fallbacks_set(
        model=catalog["gpt-4o"], fallback_ids=["claude-sonnet-4", "gpt-4o-mini", "gpt-3.5-turbo"]
    )

    rows = {row["id"]: row for row in client_for(world.bob).get(MODELS).json()["results"]}
    detail = client_for(world.bob).get(f"{MODELS}/gpt-4o").json()

    assert rows["gpt-4o"]["fallbacks"] == ["claude-sonnet-4", "gpt-4o-mini", "gpt-3.5-turbo"]
    assert detail["fallbacks"] == ["claude-sonnet-4", "gpt-4o-mini", "gpt-3.5-turbo"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"claude-haiku-3", "claude-sonnet-4", "gpt-3.5-turbo", "gpt-4o", "gpt-4o-mini"}),
        ("provider=anthropic", {"claude-haiku-3", "claude-sonnet-4"}),
        (
            "provider=openai,anthropic",
            {"claude-haiku-3", "claude-sonnet-4", "gpt-3.5-turbo", "gpt-4o", "gpt-4o-mini"},
        ),
        ("provider=mistral", set()),
        ("capability=vision", {"claude-sonnet-4", "gpt-4o"}),
        ("capability=tools,vision,jsonMode", {"gpt-4o"}),
        ("capability=json_mode", {"gpt-4o", "gpt-4o-mini"}),
        ("capability=streaming", {"claude-sonnet-4", "gpt-3.5-turbo", "gpt-4o", "gpt-4o-mini"}),
        ("minInputPrice=2.5", {"claude-sonnet-4", "gpt-4o"}),
        ("maxInputPrice=0.25", {"claude-haiku-3", "gpt-4o-mini"}),
        ("minInputPrice=0.2&maxInputPrice=0.5", {"claude-haiku-3", "gpt-3.5-turbo"}),
        ("minOutputPrice=10", {"claude-sonnet-4", "gpt-4o"}),
        ("maxOutputPrice=1.25", {"claude-haiku-3", "gpt-4o-mini"}),
        ("minContextWindow=128001", {"claude-haiku-3", "claude-sonnet-4"}),
        ("active=false", {"gpt-3.5-turbo"}),
        ("active=true", {"claude-haiku-3", "claude-sonnet-4", "gpt-4o", "gpt-4o-mini"}),
        ("family=gpt-4o", {"gpt-4o", "gpt-4o-mini"}),
        ("tokenizer=claude", {"claude-haiku-3", "claude-sonnet-4"}),
        ("tokenizer=cl100k_base", {"gpt-3.5-turbo"}),
        ("search=MINI", {"gpt-4o-mini"}),
        ("search=sonnet", {"claude-sonnet-4"}),
        ("provider=openai&capability=tools&maxInputPrice=1", {"gpt-4o-mini"}),
    ],
)
def test_each_filter_narrows_the_list(world, catalog, query, expected):
    response = client_for(world.bob).get(f"{MODELS}?{query}")

    assert response.status_code == 200, response.content
    assert {row["id"] for row in response.json()["results"]} == expected


@pytest.mark.parametrize(
    "query",
    [
        "capability=tools,telepathy",
        "tokenizer=morse",
        "maxInputPrice=cheap",
        "minContextWindow=NaN",
        "active=maybe",
        "active=yes",
        "provider=open%00ai",
        "search=gpt%00",
    ],
)
def test_a_bad_filter_is_refused_instead_of_listing_everything(world, catalog, query):
    response = client_for(world.bob).get(f"{MODELS}?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_the_list_is_ordered_by_id(world, catalog):
    ids = [row["id"] for row in client_for(world.bob).get(MODELS).json()["results"]]

    assert ids == sorted(ids)


def test_the_list_runs_the_same_number_of_queries_for_3_and_10_models(world, openai, anthropic):
    client = client_for(world.bob)

    def add_models(start: int, count: int) -> None:
        for n in range(start, start + count):
            model = ModelProfileFactory(id=f"m-{n:02d}", provider=[openai, anthropic][n % 2])
            if n:
                model_fallbacks_set(model=model, fallback_ids=[f"m-{n - 1:02d}"])

    def list_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(MODELS)
        assert response.status_code == 200
        return len(queries), response.json()["count"]

    add_models(0, 3)
    few = list_queries()
    add_models(3, 7)
    many = list_queries()

    assert few == (LIST_QUERIES, 3)
    assert many == (LIST_QUERIES, 10)


def test_the_price_history_and_providers_run_the_same_number_of_queries_for_3_and_10_rows(world, gpt):
    client = client_for(world.bob)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    def add(start: int, count: int) -> None:
        for n in range(start, start + count):
            ProviderFactory(name=f"provider-{n:02d}")
            model_update(
                model=gpt,
                prices=Prices(Decimal(n + 1), Decimal(10), None),
                source="api",
                changed_by=world.alice,
            )

    add(0, 3)
    few = (queries(f"{MODELS}/gpt-4o/price-history"), queries(PROVIDERS))
    add(3, 7)
    many = (queries(f"{MODELS}/gpt-4o/price-history"), queries(PROVIDERS))

    assert few == many == (HISTORY_QUERIES, PROVIDER_QUERIES)
    assert PriceChange.objects.filter(model=gpt).count() == 10


@pytest.mark.parametrize("caller", ["alice", "bob", "fiona", "omar", "team_key", "staff"])
def test_every_authenticated_caller_reads_the_registry(world, team_key, staff, gpt, caller):
    client = client_for(staff) if caller == "staff" else non_staff_clients(world, team_key)[caller]

    for url in [
        MODELS,
        f"{MODELS}/gpt-4o",
        f"{MODELS}/gpt-4o/price-history",
        PROVIDERS,
        f"{PROVIDERS}/openai",
    ]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "url", [MODELS, f"{MODELS}/gpt-4o", f"{MODELS}/gpt-4o/price-history", PROVIDERS, f"{PROVIDERS}/openai"]
)
def test_an_anonymous_caller_reads_nothing(gpt, url):
    response = APIClient().get(url)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_providers_list_names_each_provider(world, openai, anthropic):
    response = client_for(world.bob).get(PROVIDERS)

    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "anthropic",
            "displayName": "Anthropic",
            "kind": "anthropic",
            "baseUrl": "https://api.anthropic.com/v1",
            "apiKeyEnv": "ANTHROPIC_API_KEY",
            "status": "active",
            "pricingUrl": "",
        },
        {
            "name": "openai",
            "displayName": "OpenAI",
            "kind": "openai",
            "baseUrl": "https://api.openai.com/v1",
            "apiKeyEnv": "OPENAI_API_KEY",
            "status": "active",
            "pricingUrl": "",
        },
    ]


def test_providers_are_read_only_even_for_staff(staff, openai):
    client = client_for(staff)

    assert client.post(PROVIDERS, {"name": "x", "displayName": "X"}, format="json").status_code == 405
    assert client.delete(f"{PROVIDERS}/openai").status_code == 405
    assert Provider.objects.filter(name="openai").exists()


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("get", "/price-history"), ("patch", ""), ("put", ""), ("delete", "")],
)
def test_an_unknown_model_is_unknown_model(staff, gpt, method, suffix):
    before = registry_state()

    client, url = client_for(staff), f"{MODELS}/gpt-5{suffix}"
    response = client.get(url) if method == "get" else send(client, method, url, new_model(id="gpt-5"))

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"
    assert registry_state() == before


# --- creating ---------------------------------------------------------------------------------------


def test_staff_create_a_model_and_its_first_price_history_row(staff, openai, gpt):
    response = send(client_for(staff), "post", MODELS, new_model(fallbacks=["gpt-4o"]))

    assert response.status_code == 201, response.content
    body = payload(response)
    assert body["id"] == "gemini-flash"
    assert body["inputPricePerMillion"] == Decimal("0.075")
    assert body["cachedInputPricePerMillion"] == Decimal("0.01875")
    assert body["capabilities"] == {"tools": True, "vision": True, "jsonMode": True, "streaming": True}
    assert body["quality"] == {"chat": 70, "code": 65}
    assert body["fallbacks"] == ["gpt-4o"]
    model = ModelProfile.objects.get(pk="gemini-flash")
    assert (model.provider, model.tokenizer, model.typical_latency_ms) == (openai, "gemini", 350)
    (change,) = PriceChange.objects.filter(model=model)
    assert (change.old_input_price_per_million, change.old_output_price_per_million) == (None, None)
    assert change.old_cached_input_price_per_million is None
    assert change.input_price_per_million == Decimal("0.075")
    assert change.output_price_per_million == Decimal("0.3")
    assert change.cached_input_price_per_million == Decimal("0.01875")
    assert change.source == PriceSource.API
    assert change.changed_by == staff
    assert change.applied_at is not None


def test_a_created_model_gets_defaults_for_what_was_not_given(staff, openai):
    body = {
        "id": "bare",
        "provider": "openai",
        "contextWindow": 8_000,
        "maxOutputTokens": 1_000,
        "inputPricePerMillion": 1,
        "outputPricePerMillion": 2,
    }

    response = send(client_for(staff), "post", MODELS, body)

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["displayName"] == "bare"
    assert created["capabilities"] == {"tools": False, "vision": False, "jsonMode": False, "streaming": True}
    assert created["cachedInputPricePerMillion"] is None
    assert created["active"] is True
    assert PriceChange.objects.filter(model_id="bare").count() == 1


def test_creating_an_existing_id_is_refused(staff, gpt):
    before = registry_state()

    response = send(client_for(staff), "post", MODELS, new_model(id="gpt-4o"))

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["details"] == {"id": ["Already exists."]}
    assert registry_state() == before


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"inputPricePerMillion": -1}, 400, "validation_error", "inputPricePerMillion"),
        (
            {"cachedInputPricePerMillion": Decimal("-0.01")},
            400,
            "validation_error",
            "cachedInputPricePerMillion",
        ),
        (
            {"outputPricePerMillion": Decimal("0.0000000001")},
            400,
            "validation_error",
            "outputPricePerMillion",
        ),
        ({"outputPricePerMillion": "cheap"}, 400, "validation_error", "outputPricePerMillion"),
        ({"maxOutputTokens": 1_000_001}, 400, "validation_error", "maxOutputTokens"),
        ({"contextWindow": 0}, 400, "validation_error", "contextWindow"),
        ({"colour": "blue"}, 400, "validation_error", "colour"),
        ({"capabilities": {"telepathy": True}}, 400, "validation_error", "capabilities"),
        ({"quality": {"chat": 101}}, 400, "validation_error", "quality"),
        ({"quality": {"chat": -1}}, 400, "validation_error", "quality"),
        ({"quality": {"poetry": 50}}, 400, "validation_error", "quality"),
        ({"fallbacks": ["gpt-5"]}, 404, "unknown_model", "fallbacks"),
        ({"fallbacks": ["gemini-flash"]}, 400, "validation_error", "fallbacks"),
        ({"fallbacks": ["gpt-4o", "gpt-4o"]}, 400, "validation_error", "fallbacks"),
        ({"provider": "acme-llm"}, 400, "validation_error", "provider"),
        ({"id": "Gemini Flash"}, 400, "validation_error", "id"),
        ({"id": None}, 400, "validation_error", "id"),
        ({"tokenizer": "morse"}, 400, "validation_error", "tokenizer"),
        ({"sourceUrl": "not a url"}, 400, "validation_error", "sourceUrl"),
    ],
)
def test_bad_input_on_create_is_refused_and_writes_nothing(staff, gpt, changes, status, code, field):
    before = registry_state()

    response = send(client_for(staff), "post", MODELS, new_model(**changes))

    assert response.status_code == status, response.content
    error = response.json()
    assert error["code"] == code
    assert error["status"] == status
    assert field in error["details"]
    assert error["message"]
    assert registry_state() == before


def test_a_deeply_nested_body_is_malformed_json_not_a_server_error(staff, openai):
    response = send(client_for(staff), "post", MODELS, '{"notes": ' + "[" * 100_000 + "]" * 100_000 + "}")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize("missing", ["id", "provider", "contextWindow", "inputPricePerMillion"])
def test_a_create_without_a_required_field_is_refused(staff, openai, missing):
    body = new_model()
    del body[missing]

    response = send(client_for(staff), "post", MODELS, body)

    assert response.status_code == 400
    assert response.json()["details"][missing] == ["This field is required."]
    assert not ModelProfile.objects.exists()


def test_malformed_json_is_refused(staff, openai):
    response = send(client_for(staff), "post", MODELS, '{"id": "x",')

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert not ModelProfile.objects.exists()


@pytest.mark.parametrize("caller", ["alice", "bob", "fiona", "omar", "team_key"])
def test_only_staff_create_models(world, team_key, openai, caller):
    response = send(non_staff_clients(world, team_key)[caller], "post", MODELS, new_model())

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not ModelProfile.objects.exists()
    assert not PriceChange.objects.exists()


def test_an_anonymous_caller_creates_nothing(openai):
    response = send(APIClient(), "post", MODELS, new_model())

    assert response.status_code == 401
    assert not ModelProfile.objects.exists()


# --- changing ---------------------------------------------------------------------------------------


def test_patching_a_price_records_old_and_new_prices(staff, gpt):
    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": Decimal("2.25")})

    assert response.status_code == 200, response.content
    body = payload(response)
    assert body["inputPricePerMillion"] == Decimal("2.25")
    assert body["outputPricePerMillion"] == 10
    gpt.refresh_from_db()
    assert gpt.input_price_per_million == Decimal("2.25")
    (change,) = PriceChange.objects.filter(model=gpt)
    assert change.old_input_price_per_million == Decimal("2.5")
    assert change.old_output_price_per_million == Decimal("10")
    assert change.old_cached_input_price_per_million == Decimal("1.25")
    assert change.input_price_per_million == Decimal("2.25")
    assert change.output_price_per_million == Decimal("10")
    assert change.cached_input_price_per_million == Decimal("1.25")
    assert (change.source, change.changed_by) == (PriceSource.API, staff)
    assert change.applied_at is not None


def test_patching_the_cached_price_to_null_records_it(staff, gpt):
    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", {"cachedInputPricePerMillion": None})

    assert response.status_code == 200
    assert response.json()["cachedInputPricePerMillion"] is None
    (change,) = PriceChange.objects.filter(model=gpt)
    assert (change.old_cached_input_price_per_million, change.cached_input_price_per_million) == (
        Decimal("1.25"),
        None,
    )


def test_patching_other_fields_records_no_price_change(staff, gpt):
    response = send(
        client_for(staff),
        "patch",
        f"{MODELS}/gpt-4o",
        {"displayName": "GPT-4o (2024-08)", "notes": "Flagship.", "typicalLatencyMs": 400},
    )

    assert response.status_code == 200, response.content
    assert response.json()["displayName"] == "GPT-4o (2024-08)"
    gpt.refresh_from_db()
    assert (gpt.notes, gpt.typical_latency_ms) == ("Flagship.", 400)
    assert not PriceChange.objects.exists()


def test_patching_the_same_price_again_records_nothing_new(staff, gpt):
    client = client_for(staff)

    first = send(client, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": Decimal("2.25")})
    second = send(client, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": Decimal("2.250")})
    unchanged = send(client, "patch", f"{MODELS}/gpt-4o", {"outputPricePerMillion": 10})

    assert (first.status_code, second.status_code, unchanged.status_code) == (200, 200, 200)
    assert PriceChange.objects.filter(model=gpt).count() == 1


def test_patching_one_capability_keeps_the_others(staff, gpt):
    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", {"capabilities": {"vision": True}})

    assert response.status_code == 200, response.content
    assert response.json()["capabilities"] == {
        "tools": True,
        "vision": True,
        "jsonMode": True,
        "streaming": True,
    }


def test_patching_fallbacks_replaces_the_chain_in_the_given_order(staff, catalog):
    client = client_for(staff)

    send(client, "patch", f"{MODELS}/gpt-4o", {"fallbacks": ["gpt-4o-mini", "claude-sonnet-4"]})
    response = send(client, "patch", f"{MODELS}/gpt-4o", {"fallbacks": ["claude-sonnet-4", "claude-haiku-3"]})

    assert response.status_code == 200, response.content
    assert response.json()["fallbacks"] == ["claude-sonnet-4", "claude-haiku-3"]
    assert list(ModelFallback.objects.filter(model_id="gpt-4o").values_list("fallback_id", "position")) == [
        ("claude-sonnet-4", 1),
        ("claude-haiku-3", 2),
    ]


def test_a_patch_that_fails_half_way_changes_nothing(staff, catalog):
    before = registry_state()

    response = send(
        client_for(staff),
        "patch",
        f"{MODELS}/gpt-4o",
        {"inputPricePerMillion": 1, "displayName": "Renamed", "fallbacks": ["gpt-5"]},
    )

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"
    assert registry_state() == before


def test_patching_max_output_tokens_beyond_the_stored_context_window_is_refused(staff, gpt):
    before = registry_state()

    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", {"maxOutputTokens": 128_001})

    assert response.status_code == 400
    assert "maxOutputTokens" in response.json()["details"]
    assert registry_state() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"inputPricePerMillion": -1}, "inputPricePerMillion"),
        ({"quality": {"code": 101}}, "quality"),
        ({"fallbacks": ["gpt-4o"]}, "fallbacks"),
        ({"provider": "acme-llm"}, "provider"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_input_on_patch_is_refused_and_writes_nothing(staff, gpt, changes, field):
    before = registry_state()

    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", changes)

    assert response.status_code == 400, response.content
    assert field in response.json()["details"]
    assert registry_state() == before


def test_a_future_price_waits_until_the_price_job_applies_it_once(staff, gpt):
    effective_at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    client = client_for(staff)

    response = send(
        client,
        "patch",
        f"{MODELS}/gpt-4o",
        {"inputPricePerMillion": 2, "outputPricePerMillion": 8, "effectiveAt": effective_at.isoformat()},
    )

    assert response.status_code == 200, response.content
    assert payload(response)["inputPricePerMillion"] == Decimal("2.5")
    (pending,) = PriceChange.objects.filter(model=gpt)
    assert pending.applied_at is None
    assert pending.effective_at == effective_at
    assert (pending.input_price_per_million, pending.output_price_per_million) == (2, 8)

    assert price_changes_apply_due(now=effective_at - timedelta(seconds=1)) == 0
    gpt.refresh_from_db()
    assert gpt.input_price_per_million == Decimal("2.5")

    assert price_changes_apply_due(now=effective_at) == 1
    assert price_changes_apply_due(now=effective_at + timedelta(hours=1)) == 0

    gpt.refresh_from_db()
    assert (gpt.input_price_per_million, gpt.output_price_per_million) == (2, 8)
    pending.refresh_from_db()
    assert pending.applied_at == effective_at
    assert (pending.old_input_price_per_million, pending.old_output_price_per_million) == (Decimal("2.5"), 10)
    assert PriceChange.objects.filter(model=gpt).count() == 1
    assert payload(client.get(f"{MODELS}/gpt-4o"))["inputPricePerMillion"] == 2


def test_scheduling_the_same_future_price_twice_records_it_once(staff, gpt):
    change = {"inputPricePerMillion": 2, "effectiveAt": (timezone.now() + timedelta(days=1)).isoformat()}
    client = client_for(staff)

    send(client, "patch", f"{MODELS}/gpt-4o", change)
    send(client, "patch", f"{MODELS}/gpt-4o", change)

    assert PriceChange.objects.pending().filter(model=gpt).count() == 1


def test_a_put_replaces_the_model(staff, catalog):
    body = new_model(id="gpt-4o", provider="anthropic", fallbacks=["gpt-4o-mini"])

    response = send(client_for(staff), "put", f"{MODELS}/gpt-4o", body)

    assert response.status_code == 200, response.content
    changed = payload(response)
    assert changed["provider"] == "anthropic"
    assert changed["displayName"] == "Gemini Flash"
    assert changed["inputPricePerMillion"] == Decimal("0.075")
    assert changed["fallbacks"] == ["gpt-4o-mini"]
    assert PriceChange.objects.filter(model_id="gpt-4o").count() == 1


def test_a_put_without_the_required_fields_is_refused(staff, gpt):
    before = registry_state()

    response = send(client_for(staff), "put", f"{MODELS}/gpt-4o", {"displayName": "Only this"})

    assert response.status_code == 400
    assert registry_state() == before


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_model_id_cannot_change(staff, gpt, method):
    before = registry_state()

    response = send(client_for(staff), method, f"{MODELS}/gpt-4o", new_model(id="gpt-4o-renamed"))

    assert response.status_code == 400
    assert response.json()["code"] == "id_immutable"
    assert registry_state() == before
    assert not ModelProfile.objects.filter(pk="gpt-4o-renamed").exists()


def test_repeating_the_model_id_in_a_patch_is_allowed(staff, gpt):
    response = send(client_for(staff), "patch", f"{MODELS}/gpt-4o", {"id": "gpt-4o", "notes": "Same id."})

    assert response.status_code == 200
    assert response.json()["notes"] == "Same id."


@pytest.mark.parametrize("caller", ["alice", "bob", "fiona", "omar", "team_key"])
@pytest.mark.parametrize("method", ["put", "patch"])
def test_only_staff_change_a_model(world, team_key, gpt, caller, method):
    before = registry_state()

    response = send(
        non_staff_clients(world, team_key)[caller],
        method,
        f"{MODELS}/gpt-4o",
        new_model(id="gpt-4o", inputPricePerMillion=0),
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert registry_state() == before


# --- deactivating -----------------------------------------------------------------------------------


def test_delete_deactivates_the_model_and_keeps_it(staff, world, gpt):
    response = client_for(staff).delete(f"{MODELS}/gpt-4o")

    assert response.status_code == 204
    assert response.content == b""
    gpt.refresh_from_db()
    assert gpt.is_active is False
    listed = client_for(world.bob).get(f"{MODELS}?active=false").json()["results"]
    assert [row["id"] for row in listed] == ["gpt-4o"]
    assert client_for(staff).delete(f"{MODELS}/gpt-4o").status_code == 204


@pytest.mark.parametrize("caller", ["alice", "bob", "fiona", "omar", "team_key"])
def test_only_staff_deactivate_a_model(world, team_key, gpt, caller):
    before = registry_state()

    response = non_staff_clients(world, team_key)[caller].delete(f"{MODELS}/gpt-4o")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert registry_state() == before


def test_an_anonymous_caller_changes_nothing(gpt):
    before = registry_state()

    assert send(APIClient(), "patch", f"{MODELS}/gpt-4o", {"notes": "x"}).status_code == 401
    assert APIClient().delete(f"{MODELS}/gpt-4o").status_code == 401
    assert registry_state() == before


# --- price history ----------------------------------------------------------------------------------


def test_the_price_history_lists_the_newest_change_first(staff, world, openai):
    client = client_for(staff)
    send(client, "post", MODELS, new_model())
    for price in ["0.08", "0.09"]:
        send(client, "patch", f"{MODELS}/gemini-flash", {"inputPricePerMillion": Decimal(price)})

    response = client_for(world.bob).get(f"{MODELS}/gemini-flash/price-history")

    assert response.status_code == 200
    body = payload(response)
    assert body["count"] == 3
    rows = body["results"]
    assert [row["inputPricePerMillion"] for row in rows] == [
        Decimal("0.09"),
        Decimal("0.08"),
        Decimal("0.075"),
    ]
    assert [row["oldInputPricePerMillion"] for row in rows] == [Decimal("0.08"), Decimal("0.075"), None]
    assert {row["changedBy"] for row in rows} == {"stan"}
    assert {row["source"] for row in rows} == {"api"}
    assert rows[0]["model"] == "gemini-flash"
    assert set(rows[0]) >= {"effectiveAt", "appliedAt", "recordedAt", "sourceDetail"}


def test_a_scheduled_price_heads_the_history_as_pending(staff, gpt):
    client = client_for(staff)
    send(client, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": 2})
    send(
        client,
        "patch",
        f"{MODELS}/gpt-4o",
        {"inputPricePerMillion": 1, "effectiveAt": (timezone.now() + timedelta(days=1)).isoformat()},
    )

    rows = client.get(f"{MODELS}/gpt-4o/price-history").json()["results"]

    assert [(row["inputPricePerMillion"], row["appliedAt"] is None) for row in rows] == [
        (1, True),
        (2, False),
    ]


def test_the_price_history_of_one_model_shows_only_its_changes(staff, catalog):
    client = client_for(staff)
    send(client, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": 2})
    send(client, "patch", f"{MODELS}/gpt-4o-mini", {"inputPricePerMillion": Decimal("0.1")})

    rows = client.get(f"{MODELS}/gpt-4o-mini/price-history").json()["results"]

    assert [row["model"] for row in rows] == ["gpt-4o-mini"]


def test_effective_at_without_a_price_or_on_create_is_refused(staff, openai):
    model = ModelProfileFactory(id="steady", provider=openai)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    before = registry_state()

    patch = send(client_for(staff), "patch", f"{MODELS}/{model.pk}", {"notes": "x", "effectiveAt": later})
    create = send(client_for(staff), "post", MODELS, {**new_model(), "effectiveAt": later})

    assert patch.status_code == create.status_code == 400
    assert patch.json()["details"]["effectiveAt"] and create.json()["details"]["effectiveAt"]
    assert registry_state() == before
