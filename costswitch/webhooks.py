"""Signed inbound webhooks: verify, refuse replays, store raw, apply each event once.

A sender signs every delivery with the shared secret (`COSTSWITCH_WEBHOOK_SECRET`):

    X-Costswitch-Timestamp: 1764028800                      (Unix seconds)
    X-Costswitch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

Deliveries older or newer than five minutes are refused, so a captured request cannot be replayed
later; a delivery whose signature was already seen is refused too. The same event sent again with a
fresh signature (a sender retry) is acknowledged as a duplicate and not applied again.
"""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

from costswitch.api.parsers import parse_json
from costswitch.errors import Conflict, DomainError, ValidationFailed
from costswitch.models import InboundWebhook, WebhookStatus

TIMESTAMP_HEADER = "X-Costswitch-Timestamp"
SIGNATURE_HEADER = "X-Costswitch-Signature"
TOLERANCE = timedelta(minutes=5)
SIGNATURE_PREFIX = "sha256="


class SignatureRejected(DomainError):
    status = 401
    code = "signature_invalid"


class WebhooksNotConfigured(DomainError):
    status = 503
    code = "webhooks_not_configured"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


@dataclass(frozen=True)
class SignedDelivery:
    signature: str
    signed_at: datetime
    body: bytes
    payload: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.payload["event_id"])


def sign(body: bytes, timestamp: int | str, secret: str) -> str:
    """The signature header value for a body sent at `timestamp` (also what senders compute)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_delivery(request: Request, *, now: datetime | None = None) -> SignedDelivery:
    """Check size, timestamp and signature before the body is even parsed; then parse it."""
    secret = settings.COSTSWITCH_WEBHOOK_SECRET
    if not secret:
        raise WebhooksNotConfigured("Webhooks are disabled: COSTSWITCH_WEBHOOK_SECRET is not set.")
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > settings.COSTSWITCH_WEBHOOK_MAX_BYTES:
        raise PayloadTooLarge(f"Webhook bodies are limited to {settings.COSTSWITCH_WEBHOOK_MAX_BYTES} bytes.")
    body = request.body  # the raw bytes the signature covers; request.data is never touched
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise SignatureRejected(
            f"Signed webhooks need the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers.",
            code="signature_missing",
        )
    # isdigit() alone also accepts "²" and "١٢" (non-ASCII digits), which int() rejects or misreads.
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be Unix seconds.", code="timestamp_invalid")
    now = now or timezone.now()
    # Compared as numbers first: a far-off timestamp would overflow datetime (or int()) into a 500.
    if len(timestamp) > 12 or abs(now.timestamp() - int(timestamp)) > TOLERANCE.total_seconds():
        raise SignatureRejected(
            "The delivery's timestamp is more than 5 minutes away from now; sign it again and resend.",
            code="timestamp_out_of_tolerance",
        )
    signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
    if not hmac.compare_digest(sign(body, timestamp, secret).encode(), signature.strip().encode()):
        raise SignatureRejected("The signature does not match the body and timestamp.")
    try:
        # UTF-8, as it is stored: json.loads(bytes) would also accept UTF-16 and -32.
        payload = parse_json(body, "utf-8")
    except ParseError as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc.detail}", code="parse_error") from exc
    if not isinstance(payload, dict):
        raise ValidationFailed("The body must be a JSON object.")
    if not isinstance(payload.get("event_id"), str) or not payload["event_id"].strip():
        raise ValidationFailed(
            "eventId is required: it makes re-sent events harmless.", details={"eventId": ["Required."]}
        )
    return SignedDelivery(
        signature=signature.strip().removeprefix(SIGNATURE_PREFIX),
        signed_at=signed_at,
        body=body,
        payload=payload,
    )


@dataclass(frozen=True)
class Receipt:
    webhook: InboundWebhook
    duplicate: bool


def webhook_receive(*, endpoint: str, delivery: SignedDelivery, apply: Callable[[], dict]) -> Receipt:
    """Store the delivery and apply it in one transaction: stored and applied once, or neither."""
    previous = InboundWebhook.objects.filter(endpoint=endpoint, event_id=delivery.event_id).first()
    if previous is not None and previous.signature != delivery.signature:
        return Receipt(previous, duplicate=True)
    try:
        with transaction.atomic():
            webhook = InboundWebhook.objects.create(
                endpoint=endpoint,
                event_id=delivery.event_id,
                signature=delivery.signature,
                signed_at=delivery.signed_at,
                body=delivery.body.decode(),
            )
            webhook.result = apply()
            webhook.status = WebhookStatus.PROCESSED
            webhook.processed_at = timezone.now()
            webhook.save(update_fields=["result", "status", "processed_at"])
    except IntegrityError:
        previous = InboundWebhook.objects.filter(endpoint=endpoint, event_id=delivery.event_id).first()
        if previous is not None and previous.signature != delivery.signature:
            return Receipt(previous, duplicate=True)
        raise Conflict(
            "This delivery was already received; replays are refused.", code="webhook_replayed"
        ) from None
    return Receipt(webhook, duplicate=False)
