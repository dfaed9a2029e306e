"""Notifications to budget owners: in-app, email and signed outbound webhooks.

`notify(...)` is the leaf other modules call (overrides, alerts). It writes one `Notification`, an
inbox entry per in-app recipient and one delivery row per email address and webhook URL, all in one
transaction; once that commits, each email and webhook delivery is handed to Celery
(`approvals.tasks_notifications.deliver_notification`), which tries it, and on failure tries again
later with exponential back-off, up to COSTSWITCH_NOTIFY_MAX_ATTEMPTS, then gives up. Every
attempt is counted in the delivery row.

Recipients are the budget's subscriptions (see `NotificationSubscription`); a budget without any
notifies its owners in-app and by email: the team leads of a team budget (finance and admins when
the team has no lead), finance and admins for an organization budget, and the person and her team
leads for a user budget.

Webhook deliveries are JSON with a Slack-compatible `text` field, signed like inbound webhooks
(costswitch/webhooks.py `sign`): `X-Costswitch-Timestamp` and
`X-Costswitch-Signature: sha256=<HMAC-SHA256(secret, "<timestamp>.<body>")>`.
"""

import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from djangorestframework_camel_case.util import camelize

from approvals.models import (
    DeliveryStatus,
    InboxEntry,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    NotificationSubscription,
)
from budgets.choices import ORG_WIDE_ROLES, Role, ScopeType
from budgets.models import Alert, AlertKind, Budget, Membership, User
from budgets.principals import Principal, principal_for_user
from budgets.selectors import budget_get, budgets_for_principal
from budgets.services.alerts import alert_external_raise, budget_overseen_by
from costswitch.api.parsers import parse_json
from costswitch.errors import NotFound, PermissionDenied, ValidationFailed
from costswitch.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

logger = logging.getLogger(__name__)

DELIVERY_HEADER = "X-Costswitch-Delivery"
EVENT_HEADER = "X-Costswitch-Event"
# A delivery whose retry is overdue by this much lost its Celery message (a broker outage, a lost
# worker): the sweep hands it to Celery again.
STALLED_AFTER = timedelta(minutes=2)

ALERT_EVENTS = {
    AlertKind.THRESHOLD: NotificationEvent.THRESHOLD_CROSSED,
    AlertKind.FORECAST: NotificationEvent.FORECAST_EXCEEDS,
    AlertKind.EXHAUSTED: NotificationEvent.BUDGET_EXHAUSTED,
    AlertKind.EXTERNAL: NotificationEvent.EXTERNAL_ALERT,
}


@dataclass(frozen=True)
class _Target:
    channel: str
    target: str
    user: User | None = None
    subscription: NotificationSubscription | None = None


def notify(
    *, event: str, budget: Any, subject: str, body: str, data: dict | None = None, key: str = ""
) -> Notification:
    """Tell the recipients of `budget` about `event` on the channels they chose. With a `key`,
    notifying twice (an alert announced again, a retried caller) tells them once."""
    if key:
        existing = Notification.objects.filter(key=key).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                organization_id=budget.organization_id,
                budget=budget,
                event=event,
                subject=subject[:300],
                body=body,
                data=data or {},
                key=key,
            )
            pending = _fan_out(notification, _targets(budget, event))
    except IntegrityError:
        if not key:
            raise
        return Notification.objects.get(key=key)  # a concurrent notify with the same key won
    transaction.on_commit(lambda: _enqueue(pending), robust=True)
    logger.info(
        "notification %d (%s) on budget %d: %d pending deliveries",
        notification.pk,
        event,
        budget.pk,
        len(pending),
    )
    return notification


def _fan_out(notification: Notification, targets: list[_Target]) -> list[int]:
    """Inbox entries and delivery rows; returns the ids of the deliveries still to be sent."""
    now = timezone.now()
    in_app = [t for t in targets if t.channel == NotificationChannel.IN_APP]
    InboxEntry.objects.bulk_create(InboxEntry(notification=notification, user=t.user) for t in in_app)
    deliveries = NotificationDelivery.objects.bulk_create(
        NotificationDelivery(
            notification=notification,
            channel=t.channel,
            target=t.target,
            user=t.user,
            subscription=t.subscription,
            status=DeliveryStatus.SENT if t.channel == NotificationChannel.IN_APP else DeliveryStatus.PENDING,
            attempts=1 if t.channel == NotificationChannel.IN_APP else 0,
            sent_at=now if t.channel == NotificationChannel.IN_APP else None,
            next_attempt_at=None if t.channel == NotificationChannel.IN_APP else now,
        )
        for t in targets
    )
    return [d.pk for d in deliveries if d.status == DeliveryStatus.PENDING]


def _targets(budget: Budget, event: str) -> list[_Target]:
    subscriptions = list(
        NotificationSubscription.objects.filter(budget=budget).select_related("user").order_by("pk")
    )
    if not subscriptions:
        users = default_recipients(budget)
        return [
            *(_Target(NotificationChannel.IN_APP, str(u.pk), user=u) for u in users),
            *(_Target(NotificationChannel.EMAIL, u.email, user=u) for u in users if u.email),
        ]
    targets: dict[tuple[str, str], _Target] = {}
    for sub in subscriptions:
        if not sub.wants(event):
            continue
        if sub.channel == NotificationChannel.WEBHOOK:
            target = _Target(sub.channel, sub.url, subscription=sub)
        elif sub.user is None or not sub.user.is_active:
            continue
        elif sub.channel == NotificationChannel.EMAIL:
            if not sub.user.email:
                continue
            target = _Target(sub.channel, sub.user.email, user=sub.user, subscription=sub)
        else:
            target = _Target(sub.channel, str(sub.user.pk), user=sub.user, subscription=sub)
        targets.setdefault((target.channel, target.target), target)
    return list(targets.values())


def default_recipients(budget: Budget) -> list[User]:
    """Who owns a budget without subscriptions (see the module docstring)."""
    org_wide = Q(team__organization_id=budget.organization_id, role__in=ORG_WIDE_ROLES)
    if budget.scope_type == ScopeType.TEAM:
        leads = Q(team_id=budget.team_id, role=Role.TEAM_LEAD)
        who = leads if Membership.objects.filter(leads).exists() else org_wide
    elif budget.scope_type == ScopeType.USER:
        teams = Membership.objects.filter(user_id=budget.user_id).values("team_id")
        who = Q(user_id=budget.user_id) | Q(team_id__in=teams, role=Role.TEAM_LEAD)
    else:
        who = org_wide
    user_ids = Membership.objects.filter(who).values("user_id")
    return list(
        User.objects.filter(pk__in=user_ids, organization_id=budget.organization_id, is_active=True).order_by(
            "pk"
        )
    )


def _enqueue(delivery_ids: list[int]) -> None:
    from approvals.tasks_notifications import deliver_notification

    for delivery_id in delivery_ids:
        try:
            deliver_notification.delay(delivery_id)
        except Exception:  # the broker is down: the stalled-delivery sweep hands it over later
            logger.exception("could not queue notification delivery %d", delivery_id)


# --- Subscriptions and the inbox ------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSpec:
    """One wanted subscription, as the API validated it."""

    channel: str
    user_id: int | None = None
    url: str = ""
    secret: str | None = None  # None: keep the secret this URL has now
    events: tuple[str, ...] = ()


def _overseen_budget(principal: Principal, budget_id: int) -> Budget:
    budget = budget_get(principal=principal, budget_id=budget_id)
    if not budget_overseen_by(principal, budget):
        raise PermissionDenied("Only the owners of this budget manage who is notified about it.")
    return budget


def subscriptions_get(
    *, principal: Principal, budget_id: int
) -> tuple[Budget, list[NotificationSubscription]]:
    budget = _overseen_budget(principal, budget_id)
    return budget, list(budget.notification_subscriptions.select_related("user").order_by("pk"))


@transaction.atomic
def subscriptions_replace(
    *, principal: Principal, budget_id: int, specs: list[SubscriptionSpec]
) -> list[NotificationSubscription]:
    """Replace who is notified about a budget, on which channels, of which events. An empty list
    goes back to the defaults (the budget's owners, in-app and by email)."""
    budget = _overseen_budget(principal, budget_id)
    Budget.objects.select_for_update().filter(pk=budget.pk).first()  # one replacement at a time
    current = list(budget.notification_subscriptions.all())
    secrets = {sub.url: sub.secret for sub in current if sub.channel == NotificationChannel.WEBHOOK}
    users = _recipients(budget, [spec.user_id for spec in specs if spec.user_id is not None])
    seen: set[tuple] = set()
    rows = []
    for index, spec in enumerate(specs):
        key = (spec.channel, spec.user_id, spec.url)
        if key in seen:
            raise ValidationFailed(
                f"subscriptions[{index}] repeats an earlier subscription.", code="duplicate_subscription"
            )
        seen.add(key)
        secret = spec.secret if spec.secret is not None else secrets.get(spec.url, "")
        if spec.channel == NotificationChannel.WEBHOOK and not secret:
            raise ValidationFailed(
                f"subscriptions[{index}].secret is required: webhook deliveries are signed with it.",
                code="secret_required",
            )
        rows.append(
            NotificationSubscription(
                budget=budget,
                channel=spec.channel,
                user=users.get(spec.user_id),
                url=spec.url,
                secret=secret if spec.channel == NotificationChannel.WEBHOOK else "",
                events=list(dict.fromkeys(spec.events)),
            )
        )
    budget.notification_subscriptions.all().delete()
    NotificationSubscription.objects.bulk_create(rows)
    logger.info("budget %d: %d notification subscription(s) set", budget.pk, len(rows))
    return list(budget.notification_subscriptions.select_related("user").order_by("pk"))


def _recipients(budget: Budget, user_ids: list[int]) -> dict[int, User]:
    """The named users, if each may see the budget (a recipient must not learn of budgets she
    cannot see); unknown ids and users of other organizations are refused alike."""
    users = {u.pk: u for u in User.objects.filter(pk__in=user_ids, organization_id=budget.organization_id)}
    for user_id in user_ids:
        user = users.get(user_id)
        if user is None or not user.is_active:
            raise ValidationFailed(f"User {user_id} not found.", code="unknown_user")
        if not budgets_for_principal(principal_for_user(user)).filter(pk=budget.pk).exists():
            raise ValidationFailed(
                f"User {user_id} cannot see this budget, so cannot be notified about it.",
                code="recipient_cannot_see_budget",
            )
    return users


def inbox_for_principal(principal: Principal) -> QuerySet[InboxEntry]:
    """The caller's in-app notifications (a team API key has no inbox)."""
    if principal.user is None:
        return InboxEntry.objects.none()
    return InboxEntry.objects.filter(user=principal.user).select_related("notification__budget")


def inbox_mark_read(*, principal: Principal, entry_id: int) -> InboxEntry:
    """Mark one of the caller's notifications read; marking it again keeps the first time."""
    entry = inbox_for_principal(principal).filter(pk=entry_id).first()
    if entry is None:
        raise NotFound(f"Notification {entry_id} not found.")
    if entry.read_at is None:
        entry.read_at = timezone.now()
        InboxEntry.objects.filter(pk=entry.pk, read_at__isnull=True).update(read_at=entry.read_at)
    return entry


# --- Alerts -------------------------------------------------------------------------------------


def notify_alert(*, alert: Alert) -> Notification | None:
    """Notify an alert's budget owners once (keyed by the alert). A threshold whose actions do not
    include `notify` is recorded as an alert but told to nobody."""
    if alert.kind == AlertKind.THRESHOLD and "notify" not in alert.data.get("actions", ["notify"]):
        return None
    budget = alert.budget
    subject = {
        AlertKind.THRESHOLD: f"{budget.name}: {_percent(alert.threshold)}% of the budget used",
        AlertKind.EXHAUSTED: f"{budget.name}: budget exhausted",
        AlertKind.FORECAST: f"{budget.name}: projected to exceed its limit",
        AlertKind.EXTERNAL: f"{budget.name}: alert from {alert.data.get('source') or 'an external system'}",
    }[alert.kind]
    data = {
        "alert_id": alert.pk,
        "kind": alert.kind,
        "threshold": None if alert.threshold is None else str(alert.threshold),
        "percent_used": str(alert.percent_used),
        **{k: v for k, v in alert.data.items() if k not in {"threshold", "percent_used"}},
    }
    return notify(
        event=ALERT_EVENTS[alert.kind],
        budget=budget,
        subject=subject,
        body=alert.message,
        data=data,
        key=f"alert:{alert.pk}",
    )


def _percent(value) -> str:
    return format(value.normalize(), "f") if value is not None else "?"


def on_alert_raised(sender, *, alert: Alert, **kwargs) -> None:
    """`budgets.signals.alert_raised` receiver (connected in ApprovalsConfig.ready())."""
    notify_alert(alert=alert)


# --- Alerts from external systems (POST /api/v1/webhooks/budget-alert) ----------------------------

EXTERNAL_ALERT_ENDPOINT = "budget-alert"
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class ExternalAlert:
    budget: Budget
    message: str
    data: dict


def external_alert_parse(payload: dict) -> ExternalAlert:
    """Check a budget-alert delivery: `budgetId` (an active budget), `message`, optional `source`,
    `severity` (info, warning or critical) and `data` (an object, kept as sent)."""
    budget_id = payload.get("budget_id")
    if not isinstance(budget_id, int) or isinstance(budget_id, bool):
        raise ValidationFailed("budgetId must be the id of a budget.", details={"budgetId": ["Required."]})
    message = payload.get("message")
    if not isinstance(message, str) or not message.strip() or len(message) > 2000:
        raise ValidationFailed(
            "message must be a non-empty text of at most 2,000 characters.", details={"message": ["Invalid."]}
        )
    severity = payload.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ValidationFailed(f"severity must be one of {', '.join(SEVERITIES)}.", code="invalid_severity")
    source = payload.get("source", "")
    if not isinstance(source, str) or len(source) > 100:
        raise ValidationFailed("source must be a text of at most 100 characters.")
    extra = payload.get("data", {})
    if not isinstance(extra, dict):
        raise ValidationFailed("data must be a JSON object.")
    budget = Budget.objects.filter(pk=budget_id, is_active=True).first()
    if budget is None:
        raise NotFound(f"Budget {budget_id} not found.", code="unknown_budget")
    data = {
        "source": source,
        "severity": severity,
        "event_id": str(payload.get("event_id", "")),
        "data": extra,
    }
    return ExternalAlert(budget=budget, message=message.strip(), data=data)


def external_alert_process(webhook) -> dict:
    """The budget-alert webhook processor (run by the worker on the stored raw delivery): raise the
    external alert; its announcement notifies the budget's owners (event `external_alert`)."""
    parsed = external_alert_parse(parse_json(webhook.body.encode()))
    alert = alert_external_raise(budget=parsed.budget, message=parsed.message, data=parsed.data)
    return {"alert_id": alert.pk, "budget_id": parsed.budget.pk}


# --- Delivery -----------------------------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.code = code
        self.permanent = permanent


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: doubling from the base."""
    return settings.COSTSWITCH_NOTIFY_RETRY_SECONDS * 2 ** (attempts - 1)


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> float | None:
    """Try one email or webhook delivery; returns the seconds to wait before the next try, or None
    when there is nothing more to do (sent, given up, not due, or another worker has it now).

    The row stays locked during the attempt, so two copies of the task (a redelivered message)
    never send at once, and a delivery already sent is never sent again."""
    with transaction.atomic():
        delivery = (
            NotificationDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("notification__budget", "subscription")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status in (DeliveryStatus.SENT, DeliveryStatus.GAVE_UP):
            return None
        now = now or timezone.now()
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None  # not due: another copy of the task is scheduled for then
        delivery.attempts += 1
        try:
            delivery.response_code = _send(delivery)
        except _Failure as failure:
            return _failed(delivery, failure, timezone.now())
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = timezone.now()
        delivery.next_attempt_at = None
        delivery.last_error = ""
        delivery.save(
            update_fields=["attempts", "response_code", "status", "sent_at", "next_attempt_at", "last_error"]
        )
        logger.info("delivery %d (%s) sent on attempt %d", delivery.pk, delivery.channel, delivery.attempts)
        return None


def _failed(delivery: NotificationDelivery, failure: _Failure, now: datetime) -> float | None:
    delivery.last_error = str(failure)[:2000]
    delivery.response_code = failure.code
    retry_in = None
    if failure.permanent or delivery.attempts >= settings.COSTSWITCH_NOTIFY_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.GAVE_UP
        delivery.next_attempt_at = None
        logger.warning(
            "delivery %d (%s) gave up after %d attempts: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            failure,
        )
    else:
        retry_in = retry_delay(delivery.attempts)
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        logger.info(
            "delivery %d (%s) attempt %d failed, retrying in %.1f s: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            retry_in,
            failure,
        )
    delivery.save(update_fields=["attempts", "last_error", "response_code", "status", "next_attempt_at"])
    return retry_in


def _send(delivery: NotificationDelivery) -> int | None:
    if delivery.channel == NotificationChannel.EMAIL:
        _send_email(delivery)
        return None
    if delivery.channel == NotificationChannel.WEBHOOK:
        return _send_webhook(delivery)
    raise _Failure(f"Nothing to send on channel {delivery.channel!r}.", permanent=True)


def _send_email(delivery: NotificationDelivery) -> None:
    notification = delivery.notification
    try:
        send_mail(
            notification.subject, email_body(notification), settings.DEFAULT_FROM_EMAIL, [delivery.target]
        )
    except Exception as exc:  # SMTP and socket errors alike: worth another try
        raise _Failure(f"{type(exc).__name__}: {exc}") from exc


def email_body(notification: Notification) -> str:
    budget = notification.budget
    lines = [
        notification.body,
        "",
        f"Budget: {budget.name} ({budget.get_scope_type_display()} {budget.scope_name})",
    ]
    data = notification.data
    for label, key in (
        ("Threshold", "threshold"),
        ("Used (spent + reserved)", "percent_used"),
        ("Limit", "limit"),
        ("Limit reached on", "limit_reached_at"),
        ("Period", "period_start"),
    ):
        if data.get(key) not in (None, ""):
            value = data[key]
            if key in {"threshold", "percent_used"}:
                value = f"{value}%"
            if key == "period_start" and data.get("period_end"):
                value = f"{value} to {data['period_end']}"
            lines.append(f"{label}: {value}")
    if settings.COSTSWITCH_BASE_URL:
        lines += ["", f"{settings.COSTSWITCH_BASE_URL.rstrip('/')}/api/v1/budgets/{budget.pk}/status"]
    lines += ["", f"Event: {notification.event}. You receive this because you are an owner of this budget."]
    return "\n".join(lines)


def webhook_payload(notification: Notification) -> dict:
    budget = notification.budget
    return {
        "id": notification.pk,
        "event": notification.event,
        "created_at": notification.created_at.isoformat(),
        "budget": {
            "id": budget.pk,
            "name": budget.name,
            "scope_type": budget.scope_type,
            "scope_id": budget.scope_id,
            "organization_id": budget.organization_id,
        },
        "subject": notification.subject,
        "message": notification.body,
        "text": f"*{notification.subject}*\n{notification.body}",  # what Slack shows
        "data": notification.data,
    }


def _internal_address(url: str) -> str:
    """Why `url` must not be called, or "". Budget owners choose webhook URLs, so without this check
    they could make the worker call the metadata service or anything else on the private network.
    (A name that resolves differently a moment later is not caught; egress rules close that gap.)"""
    if settings.COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS:
        return ""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError) as exc:
        return f"Cannot resolve {host!r}: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            return f"Refused: {host!r} resolves to {ip}, which is not a public address."
    return ""


def _send_webhook(delivery: NotificationDelivery) -> int:
    subscription = delivery.subscription
    if subscription is None:
        raise _Failure("The webhook subscription was removed.", permanent=True)
    body = json.dumps(camelize(webhook_payload(delivery.notification)), cls=DjangoJSONEncoder).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "costswitch-notifications",
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: str(delivery.pk),
        EVENT_HEADER: delivery.notification.event,
    }
    if subscription.secret:
        headers[SIGNATURE_HEADER] = sign(body, timestamp, subscription.secret)
    refusal = _internal_address(delivery.target)
    if refusal:
        raise _Failure(refusal, permanent=True)
    try:
        response = httpx.post(
            delivery.target,
            content=body,
            headers=headers,
            timeout=settings.COSTSWITCH_NOTIFY_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise _Failure(f"{type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return response.status_code
    # A 4xx other than a timeout or rate limit will not get better by retrying (a wrong URL, a
    # revoked Slack hook): give up at once.
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise _Failure(
        f"HTTP {response.status_code}: {response.text[:500]}", code=response.status_code, permanent=permanent
    )


# --- The sweep ----------------------------------------------------------------------------------


@dataclass
class StalledResult:
    alerts_notified: int = 0
    deliveries_requeued: int = 0

    def as_dict(self) -> dict:
        return {"alerts_notified": self.alerts_notified, "deliveries_requeued": self.deliveries_requeued}


def notifications_retry_stalled(*, now: datetime | None = None, enqueue: bool = True) -> StalledResult:
    """Finish what a crash or a broker outage interrupted: alerts of the last week nobody was
    told about (announced again; notify is keyed by alert, so at most once), and deliveries whose
    retry is long overdue (handed to Celery again; an attempt on a sent row does nothing)."""
    now = now or timezone.now()
    result = StalledResult()
    told = Notification.objects.filter(key=Concat(Value("alert:"), Cast(OuterRef("pk"), CharField())))
    quiet = (
        Alert.objects.filter(created_at__gte=now - timedelta(days=7), created_at__lte=now - STALLED_AFTER)
        .filter(~Exists(told))
        .select_related("budget")
        .order_by("pk")
    )
    for alert in quiet[:500]:
        if notify_alert(alert=alert) is not None:
            result.alerts_notified += 1
    stalled = list(
        NotificationDelivery.objects.filter(
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
            next_attempt_at__lte=now - STALLED_AFTER,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:1000]
    )
    if enqueue and stalled:
        transaction.on_commit(lambda: _enqueue(stalled), robust=True)
    result.deliveries_requeued = len(stalled)
    logger.log(
        logging.INFO if result.alerts_notified or result.deliveries_requeued else logging.DEBUG,
        "stalled notifications: %s",
        result.as_dict(),
    )
    return result


__all__ = ["default_recipients", "delivery_attempt", "notify", "notify_alert"]
