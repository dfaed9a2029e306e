"""Signed inbound webhooks: verify, refuse replays, store raw, apply each event once.

A sender signs every delivery with the shared secret (`COSTSWITCH_WEBHOOK_SECRET`):

    X-Costswitch-Timestamp: 1764028800                      (Unix seconds)
    X-Costswitch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

Deliveries older or newer than five minutes are refused, so a captured request cannot be replayed
later; a delivery whose signature was already seen is refused too. The same event sent again with a
fresh signature (a sender retry) is acknowledged as a duplicate and not applied again.

Two ways to apply a delivery: `webhook_receive` stores and applies it in one transaction (quick,
synchronous work such as a price update); `webhook_store` stores it raw first (status `received`)
and a Celery task (`costswitch.tasks.process_inbound_webhook`) applies it with the processor
registered for its endpoint (`register_processor`), retrying transient failures. Nothing is lost
when processing fails: the raw delivery stays, and `webhooks_requeue_stuck` (beat) sends deliveries
still `received` after a while to the worker again.
"""

import hashlib
import hmac
import logging
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

logger = logging.getLogger(__name__)

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


def _store_once(endpoint: str, delivery: SignedDelivery, then: Callable[[InboundWebhook], None]) -> Receipt:
    """Store the delivery and run `then` on it in one transaction. A re-sent event (same id, new
    signature) is a duplicate; the same signature again is a replay and refused."""
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
            then(webhook)
    except IntegrityError:
        previous = InboundWebhook.objects.filter(endpoint=endpoint, event_id=delivery.event_id).first()
        if previous is not None and previous.signature != delivery.signature:
            return Receipt(previous, duplicate=True)
        raise Conflict(
            "This delivery was already received; replays are refused.", code="webhook_replayed"
        ) from None
    return Receipt(webhook, duplicate=False)


def webhook_receive(*, endpoint: str, delivery: SignedDelivery, apply: Callable[[], dict]) -> Receipt:
    """Store the delivery and apply it in one transaction: stored and applied once, or neither."""

    def applied(webhook: InboundWebhook) -> None:
        webhook.result = apply()
        webhook.status = WebhookStatus.PROCESSED
        webhook.processed_at = timezone.now()
        webhook.save(update_fields=["result", "status", "processed_at"])

    return _store_once(endpoint, delivery, applied)


# --- The async path: store raw, then process in a Celery task ------------------------------------

Processor = Callable[[InboundWebhook], dict]
_PROCESSORS: dict[str, Processor] = {}
# A delivery whose processor failed this many times (transient errors) is marked failed.
MAX_ATTEMPTS = 5
# A delivery still `received` this long after it arrived was never processed (broker down, worker
# killed after retries ran out): the sweep sends it to the worker again.
STUCK_AFTER = timedelta(minutes=5)


def register_processor(endpoint: str, processor: Processor) -> None:
    """Say how deliveries to `endpoint` are applied; call it from your AppConfig.ready(), so the web
    process and the worker both know it. The processor gets the stored InboundWebhook (parse
    `webhook.body` with `parse_json`), runs inside a transaction that holds the delivery's row lock,
    and returns a JSON-able result. Raising a DomainError marks the delivery failed for good (bad
    content); any other exception is transient: the task retries it."""
    _PROCESSORS[endpoint] = processor


def webhook_store(*, endpoint: str, delivery: SignedDelivery) -> Receipt:
    """Store a verified delivery raw (status received) and have the worker apply it once committed.
    Replays are refused and re-sent events acknowledged as duplicates, as in `webhook_receive`."""
    if endpoint not in _PROCESSORS:
        raise LookupError(f"no webhook processor registered for {endpoint!r}")

    def enqueue(webhook: InboundWebhook) -> None:
        transaction.on_commit(lambda: webhook_enqueue(webhook_id=webhook.pk))

    return _store_once(endpoint, delivery, enqueue)


def webhook_enqueue(*, webhook_id: int) -> None:
    """Hand a stored delivery to the worker. A broker that is down loses nothing: the delivery is
    stored and the sweep sends it again later."""
    from costswitch.tasks import process_inbound_webhook

    try:
        process_inbound_webhook.delay(webhook_id)
    except Exception:
        logger.warning(
            "could not enqueue inbound webhook %s; the sweep retries it", webhook_id, exc_info=True
        )


def webhook_process(*, webhook_id: int) -> InboundWebhook | None:
    """Apply one stored delivery with its endpoint's processor, at most once: the row is locked
    while it is applied and anything but a `received` delivery is left alone, so a redelivered or
    concurrent task does nothing. A transient failure is counted and raised (the task retries);
    a DomainError, or too many failures, marks the delivery failed with the reason."""
    failure: Exception | None = None
    with transaction.atomic():
        webhook = InboundWebhook.objects.select_for_update().filter(pk=webhook_id).first()
        if webhook is None or webhook.status != WebhookStatus.RECEIVED:
            return webhook
        processor = _PROCESSORS.get(webhook.endpoint)
        try:
            if processor is None:
                raise DomainError(
                    f"No processor is registered for {webhook.endpoint!r}.", code="no_processor"
                )
            with transaction.atomic():
                result = processor(webhook)
        except DomainError as exc:
            webhook.status = WebhookStatus.FAILED
            webhook.error = f"{exc.code}: {exc.message}"
        except Exception as exc:
            failure = exc
            webhook.attempts += 1
            webhook.error = f"{type(exc).__name__}: {exc}"[:2000]
            if webhook.attempts >= MAX_ATTEMPTS:
                webhook.status = WebhookStatus.FAILED
        else:
            webhook.status = WebhookStatus.PROCESSED
            webhook.result = result
            webhook.error = ""
            webhook.processed_at = timezone.now()
        webhook.save(update_fields=["status", "result", "error", "attempts", "processed_at"])
    logger.info(
        "inbound webhook %s:%s is %s",
        webhook.endpoint,
        webhook.event_id,
        webhook.status,
        extra={"webhook_id": webhook.pk, "attempts": webhook.attempts},
    )
    if failure is not None and webhook.status == WebhookStatus.RECEIVED:
        raise failure
    return webhook


def webhooks_requeue_stuck(*, now: datetime | None = None, older_than: timedelta = STUCK_AFTER) -> int:
    """Send deliveries still `received` after `older_than` to the worker again; processing is
    idempotent, so one that is in fact being processed right now is not applied twice."""
    cutoff = (now or timezone.now()) - older_than
    stuck = list(
        InboundWebhook.objects.filter(status=WebhookStatus.RECEIVED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:1000]
    )
    for webhook_id in stuck:
        webhook_enqueue(webhook_id=webhook_id)
    return len(stuck)
