"""Per-conversation spend: attribution, the cap, and what a conversation (and its tool calls) cost.

A conversation is named by the `X-Costswitch-Conversation-Id` header or `metadata.conversation_id`
in the request body (the OpenAI `user` field names an end user, not a conversation, and is only
recorded). Its cap is `COSTSWITCH_CONVERSATION_BUDGET`, which a request's
`X-Costswitch-Conversation-Budget` header may lower but never raise.

The cap is enforced before forwarding: under a lock per conversation, spent (usage records) plus
held (pending reservations tagged with the conversation) plus this request's reservation must stay
within the cap, else the reservation is released and the request refused with 402. Requests of one
conversation are thereby admitted one at a time; other conversations never wait.
"""

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum

from budgets.choices import ReservationState
from budgets.models import Organization, Reservation, UsageRecord
from costswitch.money import ZERO, display_decimal, quantize_money
from selection.gateway.errors import GatewayError

CONVERSATION_HEADER = "X-Costswitch-Conversation-Id"
CONVERSATION_BUDGET_HEADER = "X-Costswitch-Conversation-Budget"
MAX_CONVERSATION_ID = 200
# Distinguishes these advisory locks from others a deployment might take on the same database.
_LOCK_NAMESPACE = 0x6377  # "cw"
_local_lock = threading.Lock()


class ConversationBudgetExceeded(GatewayError):
    def __init__(self, message: str):
        super().__init__(message, status=402, code="conversation_budget_exceeded")


def conversation_id_of(headers, body: dict) -> str:
    value = headers.get(CONVERSATION_HEADER)
    if value is None:
        metadata = body.get("metadata") or {}
        value = metadata.get("conversation_id") if isinstance(metadata, dict) else None
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_CONVERSATION_ID:
        raise GatewayError(
            f"The conversation id must be a string of at most {MAX_CONVERSATION_ID} characters.",
            code="invalid_conversation_id",
            param="metadata.conversation_id",
        )
    return value.strip()


def conversation_cap(headers) -> Decimal | None:
    """The cap in force: the setting, lowered by the request's header (None: no cap)."""
    caps = []
    if settings.COSTSWITCH_CONVERSATION_BUDGET:
        caps.append(Decimal(settings.COSTSWITCH_CONVERSATION_BUDGET))
    raw = headers.get(CONVERSATION_BUDGET_HEADER)
    if raw is not None:
        try:
            declared = Decimal(raw.strip())
        except InvalidOperation:
            declared = None
        if declared is None or not declared.is_finite() or declared < 0:
            raise GatewayError(
                f"{CONVERSATION_BUDGET_HEADER} must be a non-negative amount, got {raw!r}.",
                code="invalid_conversation_budget",
            )
        caps.append(declared)
    return min(caps) if caps else None


@contextmanager
def conversation_lock(organization: Organization, conversation_id: str) -> Iterator[None]:
    """One admission at a time per conversation, across processes: a session-level advisory lock
    on PostgreSQL (admission commits its own transactions inside); a process lock elsewhere (the
    embedded SQLite default runs one process)."""
    if connection.vendor != "postgresql":
        with _local_lock:
            yield
        return
    key = zlib.crc32(f"{organization.pk}:{conversation_id}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, key - 2**31])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, key - 2**31])


def conversation_committed(organization: Organization, conversation_id: str, *, exclude_pk=None) -> Decimal:
    """Spent plus held for one conversation."""
    spent = UsageRecord.objects.filter(organization=organization, conversation_id=conversation_id).aggregate(
        total=Sum("cost")
    )["total"]
    held = (
        Reservation.objects.filter(
            organization=organization,
            state=ReservationState.PENDING,
            metadata__conversation_id=conversation_id,
        )
        .exclude(pk=exclude_pk)
        .aggregate(total=Sum("amount"))["total"]
    )
    return (spent or ZERO) + (held or ZERO)


def check_room(committed: Decimal, amount: Decimal, cap: Decimal, conversation_id: str) -> None:
    if committed + amount > cap or committed >= cap:
        left = max(cap - committed, ZERO)
        raise ConversationBudgetExceeded(
            f"Conversation {conversation_id!r} has {display_decimal(left)} left of its "
            f"{display_decimal(cap)} cap; this request may cost up to {display_decimal(amount)}."
        )


def tag_reservation(reservation: Reservation, conversation_id: str) -> None:
    """Mark the hold as this conversation's, so concurrent requests of it count the hold."""
    reservation.metadata = {**reservation.metadata, "conversation_id": conversation_id}
    Reservation.objects.filter(pk=reservation.pk).update(metadata=reservation.metadata)


def conversation_cost(organization: Organization, conversation_id: str) -> Decimal:
    total = UsageRecord.objects.filter(organization=organization, conversation_id=conversation_id).aggregate(
        total=Sum("cost")
    )["total"]
    return total or ZERO


def conversation_summary(usage, conversation_id: str) -> dict:
    """What a conversation cost: in total, per model, and per tool (a response that called several
    tools has its cost split evenly between them; its usage metadata lists the calls)."""
    records = usage.filter(conversation_id=conversation_id)
    totals = records.aggregate(
        cost=Sum("cost"),
        requests=Count("id"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
    )
    by_model = {
        row["model"]: {"requests": row["requests"], "cost": row["cost"]}
        for row in records.values("model").annotate(requests=Count("id"), cost=Sum("cost")).order_by("model")
    }
    tools: dict[str, dict] = {}
    for cost, metadata in records.filter(metadata__has_key="tool_calls").values_list("cost", "metadata"):
        calls = (metadata or {}).get("tool_calls") or []
        if not calls:
            continue
        share = cost / len(calls)
        for call in calls:
            entry = tools.setdefault(call.get("name") or "", {"calls": 0, "cost": ZERO})
            entry["calls"] += 1
            entry["cost"] += share
    return {
        "conversation_id": conversation_id,
        "requests": totals["requests"],
        "cost": totals["cost"] or ZERO,
        "input_tokens": totals["input_tokens"] or 0,
        "output_tokens": totals["output_tokens"] or 0,
        "models": by_model,
        "tools": {
            name: {**entry, "cost": quantize_money(entry["cost"])} for name, entry in sorted(tools.items())
        },
    }
