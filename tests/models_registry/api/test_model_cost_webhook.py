"""`POST /api/v1/webhooks/model-cost-update`: a signed price feed.

A delivery is verified (size, timestamp, signature) before its body is read, applied at most once
(a replayed delivery is refused, a re-signed event is acknowledged as a duplicate), and a refused one
writes nothing: no PriceChange, no InboundWebhook row, no price moves.
"""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import simplejson
from django.utils import timezone
from rest_framework.test import APIClient

from costswitch.models import InboundWebhook, WebhookStatus
from costswitch.webhooks import sign
from models_registry.choices import PriceSource
from models_registry.models import ModelProfile, PriceChange
from models_registry.services import price_changes_apply_due
from tests.budgets.factories import UserFactory
from tests.conftest import client_for
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

URL = "/api/v1/webhooks/model-cost-update"
SECRET = "whsec-test-0123456789"


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def secret(settings):
    settings.COSTSWITCH_WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.fixture
def models(db):
    openai = ProviderFactory(name="openai")
    return {
        "gpt-4o": ModelProfileFactory(
            id="gpt-4o",
            provider=openai,
            input_price_per_million=Decimal("2.5"),
            output_price_per_million=Decimal("10"),
            cached_input_price_per_million=Decimal("1.25"),
        ),
        "gpt-4o-mini": ModelProfileFactory(
            id="gpt-4o-mini",
            provider=openai,
            input_price_per_million=Decimal("0.15"),
            output_price_per_million=Decimal("0.6"),
            cached_input_price_per_million=Decimal("0.075"),
        ),
    }


def event(event_id: str = "evt_1", **updates) -> dict:
    """A delivery body: `event(gpt_4o=("2", "8"))` sets gpt-4o's input and output prices."""
    updates = updates or {"gpt_4o": ("2", "8")}
    return {
        "eventId": event_id,
        "source": "pricing-bot",
        "updates": [
            {
                "modelId": model.replace("_", "-"),
                "inputPricePerMillion": Decimal(prices[0]),
                "outputPricePerMillion": Decimal(prices[1]),
            }
            for model, prices in updates.items()
        ],
    }


def encode(body) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return simplejson.dumps(body, use_decimal=True).encode()


def deliver(body, *, timestamp=None, signature=None, secret: str = SECRET, headers: dict | None = None):
    """POST raw bytes signed as a sender would; `timestamp`/`signature` override the honest ones."""
    raw = encode(body)
    timestamp = str(int(time.time())) if timestamp is None else str(timestamp)
    signature = sign(raw, timestamp, secret) if signature is None else signature
    sent = {"HTTP_X_COSTSWITCH_TIMESTAMP": timestamp, "HTTP_X_COSTSWITCH_SIGNATURE": signature}
    if headers is not None:
        sent = headers
    return APIClient().post(URL, data=raw, content_type="application/json", **sent)


def prices(model_id: str) -> tuple:
    model = ModelProfile.objects.get(pk=model_id)
    return model.input_price_per_million, model.output_price_per_million, model.cached_input_price_per_million


def assert_nothing_written(before: dict) -> None:
    assert not PriceChange.objects.exists()
    assert not InboundWebhook.objects.exists()
    assert {model_id: prices(model_id) for model_id in before} == before


@pytest.fixture
def untouched(models) -> dict:
    """The prices before the request, for assert_nothing_written."""
    return {model_id: prices(model_id) for model_id in models}


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    error = response.json()
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]


# --- a good delivery --------------------------------------------------------------------------------


def test_a_signed_delivery_applies_the_new_prices(models):
    response = deliver(event("evt_1", gpt_4o=("2", "8"), gpt_4o_mini=("0.15", "0.6")))

    assert response.status_code == 200, response.content
    assert response.json() == {
        "eventId": "evt_1",
        "status": "processed",
        "applied": ["gpt-4o"],
        "scheduled": [],
        "unchanged": ["gpt-4o-mini"],
    }
    assert prices("gpt-4o") == (Decimal("2"), Decimal("8"), Decimal("1.25"))
    (change,) = PriceChange.objects.all()
    assert change.model_id == "gpt-4o"
    assert change.source == PriceSource.WEBHOOK
    assert "evt_1" in change.source_detail
    assert "pricing-bot" in change.source_detail
    assert change.changed_by is None
    assert (change.old_input_price_per_million, change.old_output_price_per_million) == (
        Decimal("2.5"),
        Decimal("10"),
    )
    assert change.applied_at is not None


def test_the_delivery_is_stored_raw_with_its_result(models):
    raw = encode(event("evt_1"))

    deliver(raw)

    (webhook,) = InboundWebhook.objects.all()
    assert webhook.endpoint == "model-cost-update"
    assert webhook.event_id == "evt_1"
    assert webhook.body == raw.decode()
    assert webhook.status == WebhookStatus.PROCESSED
    assert webhook.processed_at is not None
    assert webhook.result == {"applied": ["gpt-4o"], "scheduled": [], "unchanged": []}


def test_prices_arrive_exactly(models):
    body = (
        '{"eventId": "evt_exact", "updates": [{"modelId": "gpt-4o", "inputPricePerMillion": 0.000000001,'
        ' "outputPricePerMillion": 12345678901.123456789, "cachedInputPricePerMillion": 0.075}]}'
    )

    assert deliver(body).status_code == 200

    assert prices("gpt-4o") == (Decimal("0.000000001"), Decimal("12345678901.123456789"), Decimal("0.075"))


def test_a_missing_cached_price_keeps_the_model_s_and_null_clears_it(models):
    deliver(event("evt_1", gpt_4o=("2", "8")))
    assert prices("gpt-4o")[2] == Decimal("1.25")

    body = event("evt_2", gpt_4o=("2", "8"))
    body["updates"][0]["cachedInputPricePerMillion"] = None
    assert deliver(body).json()["applied"] == ["gpt-4o"]

    assert prices("gpt-4o")[2] is None


def test_a_future_effective_at_schedules_the_change(models):
    effective_at = (timezone.now() + timedelta(days=7)).replace(microsecond=0)
    body = event("evt_future", gpt_4o=("2", "8"))
    body["updates"][0]["effectiveAt"] = effective_at.isoformat()

    response = deliver(body)

    assert response.status_code == 200, response.content
    assert (response.json()["applied"], response.json()["scheduled"]) == ([], ["gpt-4o"])
    assert prices("gpt-4o")[:2] == (Decimal("2.5"), Decimal("10"))
    (pending,) = PriceChange.objects.all()
    assert (pending.applied_at, pending.effective_at) == (None, effective_at)

    assert price_changes_apply_due(now=effective_at) == 1
    assert price_changes_apply_due(now=effective_at) == 0
    assert prices("gpt-4o")[:2] == (Decimal("2"), Decimal("8"))


def test_a_signature_surrounded_by_spaces_is_accepted(models):
    raw = encode(event("evt_1"))
    timestamp = str(int(time.time()))

    response = deliver(raw, timestamp=timestamp, signature=f"  {sign(raw, timestamp, SECRET)} ")

    assert response.status_code == 200, response.content


def test_a_signature_without_its_sha256_prefix_is_refused(untouched):
    raw = encode(event("evt_1"))
    timestamp = str(int(time.time()))

    response = deliver(
        raw, timestamp=timestamp, signature=sign(raw, timestamp, SECRET).removeprefix("sha256=")
    )

    refused(response, 401, "signature_invalid")
    assert_nothing_written(untouched)


def test_the_webhook_ignores_who_is_logged_in(models):
    staff = UserFactory(is_staff=True)
    raw = encode(event("evt_1"))
    timestamp = str(int(time.time()))
    client = client_for(staff)

    response = client.post(
        URL,
        data=raw,
        content_type="application/json",
        HTTP_X_COSTSWITCH_TIMESTAMP=timestamp,
        HTTP_X_COSTSWITCH_SIGNATURE="sha256=" + "0" * 64,
    )

    refused(response, 401, "signature_invalid")


# --- replays and re-sent events ---------------------------------------------------------------------


def test_the_exact_same_delivery_twice_is_refused_the_second_time(models):
    raw = encode(event("evt_1", gpt_4o=("2", "8")))
    timestamp = str(int(time.time()))

    first = deliver(raw, timestamp=timestamp)
    second = deliver(raw, timestamp=timestamp)

    assert first.status_code == 200
    refused(second, 409, "webhook_replayed")
    assert PriceChange.objects.count() == 1
    assert InboundWebhook.objects.count() == 1
    assert prices("gpt-4o")[:2] == (Decimal("2"), Decimal("8"))


def test_the_same_event_signed_again_is_a_duplicate_and_not_applied_again(models):
    deliver(event("evt_1", gpt_4o=("2", "8")), timestamp=int(time.time()) - 10)
    # Someone changes the price in between: a retried event must not put the old feed price back.
    ModelProfile.objects.filter(pk="gpt-4o").update(input_price_per_million=Decimal("3"))

    response = deliver(event("evt_1", gpt_4o=("2", "8")), timestamp=int(time.time()))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "duplicate"
    assert response.json()["eventId"] == "evt_1"
    assert PriceChange.objects.count() == 1
    assert InboundWebhook.objects.count() == 1
    assert prices("gpt-4o")[0] == Decimal("3")


def test_a_duplicate_event_with_other_prices_is_not_applied_either(models):
    deliver(event("evt_1", gpt_4o=("2", "8")), timestamp=int(time.time()) - 10)

    response = deliver(event("evt_1", gpt_4o=("1", "4")))

    assert response.json()["status"] == "duplicate"
    assert prices("gpt-4o")[:2] == (Decimal("2"), Decimal("8"))


def test_the_same_event_id_on_another_endpoint_does_not_count(models):
    InboundWebhook.objects.create(
        endpoint="other-feed", event_id="evt_1", signature="f" * 64, signed_at=timezone.now(), body="{}"
    )

    response = deliver(event("evt_1"))

    assert response.json()["status"] == "processed"
    assert prices("gpt-4o")[:2] == (Decimal("2"), Decimal("8"))


def test_a_price_already_in_force_is_reported_unchanged(models):
    response = deliver(event("evt_1", gpt_4o=("2.50", "10.000")))

    assert response.json()["unchanged"] == ["gpt-4o"]
    assert not PriceChange.objects.exists()
    assert InboundWebhook.objects.count() == 1


# --- refused before the body is read ----------------------------------------------------------------


def test_it_refuses_every_delivery_while_no_secret_is_set(settings, untouched):
    settings.COSTSWITCH_WEBHOOK_SECRET = ""

    response = deliver(event("evt_1"), secret="anything")

    refused(response, 503, "webhooks_not_configured")
    assert_nothing_written(untouched)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400])
def test_it_refuses_a_timestamp_more_than_five_minutes_away(untouched, age):
    response = deliver(event("evt_1"), timestamp=int(time.time()) - age)

    refused(response, 401, "timestamp_out_of_tolerance")
    assert_nothing_written(untouched)


@pytest.mark.parametrize("age", [0, 290, -290])
def test_it_accepts_a_timestamp_within_five_minutes(models, age):
    assert deliver(event("evt_1"), timestamp=int(time.time()) - age).status_code == 200


@pytest.mark.parametrize("timestamp", ["99999999999999", "9" * 5000, "0"])
def test_it_refuses_an_absurd_timestamp_as_out_of_tolerance(untouched, timestamp):
    response = deliver(event("evt_1"), timestamp=timestamp)

    refused(response, 401, "timestamp_out_of_tolerance")
    assert_nothing_written(untouched)


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "1764028800.5", "-1764028800", "2026-11-25T07:00:00Z", "\u00b2", "\u0661\u0662"],
)
def test_it_refuses_a_timestamp_that_is_not_unix_seconds(untouched, timestamp):
    response = deliver(event("evt_1"), timestamp=timestamp)

    refused(response, 401, "timestamp_invalid")
    assert_nothing_written(untouched)


def test_it_refuses_a_bad_signature(untouched):
    response = deliver(event("evt_1"), signature="sha256=" + "0" * 64)

    refused(response, 401, "signature_invalid")
    assert_nothing_written(untouched)


def test_it_refuses_a_signature_made_with_another_secret(untouched):
    refused(deliver(event("evt_1"), secret="not-the-secret"), 401, "signature_invalid")
    assert_nothing_written(untouched)


def test_it_refuses_a_body_changed_after_signing(untouched):
    signed = encode(event("evt_1", gpt_4o=("2", "8")))
    timestamp = str(int(time.time()))

    response = deliver(
        encode(event("evt_1", gpt_4o=("0", "0"))),
        timestamp=timestamp,
        signature=sign(signed, timestamp, SECRET),
    )

    refused(response, 401, "signature_invalid")
    assert_nothing_written(untouched)


def test_it_refuses_a_signature_moved_to_another_timestamp(untouched):
    raw = encode(event("evt_1"))
    now = int(time.time())

    response = deliver(raw, timestamp=now, signature=sign(raw, now - 60, SECRET))

    refused(response, 401, "signature_invalid")
    assert_nothing_written(untouched)


@pytest.mark.parametrize("signature", ["sha256=\u00e9" + "0" * 63, "\u00ff", "sha1=abc"])
def test_it_refuses_a_garbled_signature(untouched, signature):
    refused(deliver(event("evt_1"), signature=signature), 401, "signature_invalid")
    assert_nothing_written(untouched)


@pytest.mark.parametrize("missing", ["HTTP_X_COSTSWITCH_TIMESTAMP", "HTTP_X_COSTSWITCH_SIGNATURE", "both"])
def test_it_refuses_a_delivery_without_its_signature_headers(untouched, missing):
    raw = encode(event("evt_1"))
    timestamp = str(int(time.time()))
    headers = {
        "HTTP_X_COSTSWITCH_TIMESTAMP": timestamp,
        "HTTP_X_COSTSWITCH_SIGNATURE": sign(raw, timestamp, SECRET),
    }
    for name in list(headers):
        if missing in (name, "both"):
            del headers[name]

    refused(deliver(raw, headers=headers), 401, "signature_missing")
    assert_nothing_written(untouched)


def test_it_refuses_a_body_over_the_size_limit(settings, untouched):
    raw = encode(event("evt_1"))
    settings.COSTSWITCH_WEBHOOK_MAX_BYTES = len(raw) - 1

    refused(deliver(raw), 413, "payload_too_large")
    assert_nothing_written(untouched)


def test_a_body_exactly_at_the_size_limit_is_accepted(settings, models):
    raw = encode(event("evt_1"))
    settings.COSTSWITCH_WEBHOOK_MAX_BYTES = len(raw)

    assert deliver(raw).status_code == 200


# --- refused after the signature checks out ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"eventId": "evt_1", "updates": [',
        b"",
        b"\xff\xfe not utf-8",
        simplejson.dumps(event(), use_decimal=True).encode("utf-16"),
        b'{"eventId": "evt_1", "n": ' + b"1" * 5000 + b"}",
        b'{"eventId": "evt_1", "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"eventId": "evt_1", "n": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}",
    ],
    ids=["truncated", "empty", "not-utf-8", "utf-16", "huge-integer", "deeply-nested", "nested-objects"],
)
def test_it_refuses_a_validly_signed_body_that_is_not_json(untouched, raw):
    response = deliver(raw)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] in {"parse_error", "validation_error"}
    assert_nothing_written(untouched)


@pytest.mark.parametrize("raw", [b"[]", b'"evt_1"', b"null", b"42"])
def test_it_refuses_a_body_that_is_not_an_object(untouched, raw):
    refused(deliver(raw), 400, "validation_error")
    assert_nothing_written(untouched)


@pytest.mark.parametrize("event_id", [None, "", "   ", 42, ["evt_1"]], ids=repr)
def test_it_refuses_a_delivery_without_an_event_id(untouched, event_id):
    body = event()
    if event_id is None:
        del body["eventId"]
    else:
        body["eventId"] = event_id

    response = deliver(body)

    refused(response, 400, "validation_error")
    assert "eventId" in response.json()["details"]
    assert_nothing_written(untouched)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"updates": []}, "updates"),
        ({"updates": "gpt-4o"}, "updates"),
        ({"colour": "blue"}, "colour"),
        ({"eventId": "e" * 201}, "eventId"),
        ({"eventId": "evt\u00001"}, "eventId"),
    ],
)
def test_it_refuses_an_event_that_is_not_valid(untouched, change, field):
    body = {**event(), **change}

    response = deliver(body)

    refused(response, 400, "validation_error")
    assert field in response.json()["details"]
    assert_nothing_written(untouched)


@pytest.mark.parametrize(
    "update",
    [
        {"modelId": "gpt-4o", "inputPricePerMillion": -1, "outputPricePerMillion": 8},
        {"modelId": "gpt-4o", "inputPricePerMillion": "NaN", "outputPricePerMillion": 8},
        {"modelId": "gpt-4o", "inputPricePerMillion": 0.0000000001, "outputPricePerMillion": 8},
        {"modelId": "gpt-4o", "outputPricePerMillion": 8},
        {"modelId": "gpt-4o", "inputPricePerMillion": 2, "outputPricePerMillion": 8, "effectiveAt": "soon"},
        {"modelId": "gpt-4o", "inputPricePerMillion": 2, "outputPricePerMillion": 8, "discount": 1},
    ],
)
def test_it_refuses_a_bad_price_update_and_applies_none_of_the_event(untouched, update):
    body = event("evt_1", gpt_4o_mini=("0.1", "0.4"))
    body["updates"].append(update)

    response = deliver(body)

    refused(response, 400, "validation_error")
    assert "updates" in response.json()["details"]
    assert_nothing_written(untouched)


def test_it_refuses_an_unknown_model_and_applies_none_of_the_event(untouched):
    response = deliver(event("evt_1", gpt_4o=("2", "8"), gpt_5=("1", "4"), o9=("1", "4")))

    refused(response, 404, "unknown_model")
    assert response.json()["details"] == {"models": ["gpt-5", "o9"]}
    assert_nothing_written(untouched)


def test_an_event_refused_for_an_unknown_model_can_be_sent_again_once_fixed(untouched):
    refused(deliver(event("evt_1", gpt_5=("1", "4"))), 404, "unknown_model")

    response = deliver(event("evt_1", gpt_4o=("2", "8")))

    assert response.json()["status"] == "processed"
    assert prices("gpt-4o")[:2] == (Decimal("2"), Decimal("8"))


def test_only_post_is_allowed(untouched):
    assert APIClient().get(URL).status_code == 405
    assert_nothing_written(untouched)


def test_the_delivery_body_is_what_the_signature_covers_not_a_reparsed_copy(models):
    # Same JSON, different bytes: the signature is over the exact bytes sent.
    raw = (
        b'{"updates":[{"modelId":"gpt-4o","inputPricePerMillion":2,"outputPricePerMillion":8}],'
        b'"eventId":"evt_1"}'
    )
    timestamp = str(int(time.time()))
    reformatted = json.dumps(json.loads(raw), indent=2).encode()

    refused(
        deliver(reformatted, timestamp=timestamp, signature=sign(raw, timestamp, SECRET)),
        401,
        "signature_invalid",
    )
    assert deliver(raw, timestamp=timestamp).status_code == 200
