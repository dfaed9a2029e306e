"""Prometheus metrics and the `/metrics` view.

Per-process values (request latency, admission decisions, Celery task outcomes) are prometheus-client
metrics; with `PROMETHEUS_MULTIPROC_DIR` set every process writes them to files there and a scrape
sums them over all processes (the directory must be fresh at each start). Budget figures are database
state, not per-process values: `LedgerCollector` reads them once per scrape.

Labels stay bounded: routes are URL patterns (never raw paths), task names only registered tasks,
budgets at most `METRICS_MAX_BUDGETS` (the most used), organizations likewise.

Imports no app at import time (costswitch is the base every app imports).
"""

import hmac
import logging
import os
import re
from decimal import Decimal

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# Selection answers in a few milliseconds; admin pages and batch ingestion take longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
OTHER = "(other)"  # not a valid slug, so it never collides with an organization

HTTP_REQUEST_DURATION = Histogram(
    "costswitch_http_request_duration_seconds",
    "Time from the request entering the middleware stack to its response, by route template.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
ADMISSION_DECISIONS = Counter(
    "costswitch_admission_decisions",
    "Admission decisions recorded by admit(), by outcome.",
    ["outcome"],
)
CELERY_TASKS = Counter(
    "costswitch_celery_tasks",
    "Celery task runs by registered task name and outcome (success, failure, retry).",
    ["task", "outcome"],
)

# --- Requests -------------------------------------------------------------------------------------

_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_routes: dict[str, str] = {}
_children: dict[tuple[str, str, int], object] = {}


def route_label(route: str) -> str:
    """A resolver route as a readable template: DRF's `budgets/(?P<pk>\\d+)/?$` -> `budgets/<pk>`."""
    label = _routes.get(route)
    if label is None:
        cleaned = _REGEX_GROUP.sub(r"<\1>", route).replace("^", "").replace("/?$", "").rstrip("$")
        # The number of URL patterns bounds this cache.
        label = _routes[route] = cleaned or "/"
    return label


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    child = _children.get(key)
    if child is None:
        label_method = method if method in METHODS else "other"
        child = _children[key] = HTTP_REQUEST_DURATION.labels(label_method, route, str(status))
    child.observe(seconds)


# --- Admission --------------------------------------------------------------------------------


def count_admission(outcome: str) -> None:
    ADMISSION_DECISIONS.labels(outcome).inc()


# --- Celery ---------------------------------------------------------------------------------------


def _task_name(sender) -> str:
    name = getattr(sender, "name", None)
    app = getattr(sender, "app", None)
    return name if name and app is not None and name in app.tasks else "other"


def _on_task_success(sender=None, **_kwargs) -> None:
    CELERY_TASKS.labels(_task_name(sender), "success").inc()


def _on_task_failure(sender=None, **_kwargs) -> None:
    CELERY_TASKS.labels(_task_name(sender), "failure").inc()


def _on_task_retry(sender=None, **_kwargs) -> None:
    CELERY_TASKS.labels(_task_name(sender), "retry").inc()


def connect_celery_signals() -> None:
    """Count task outcomes wherever tasks run (worker processes, or eagerly in the web process)."""
    from celery import signals

    signals.task_success.connect(_on_task_success, weak=False, dispatch_uid="costswitch.metrics.success")
    signals.task_failure.connect(_on_task_failure, weak=False, dispatch_uid="costswitch.metrics.failure")
    signals.task_retry.connect(_on_task_retry, weak=False, dispatch_uid="costswitch.metrics.retry")


# --- Ledger state, read at scrape time -------------------------------------------------------------

BANDS = (("<70", Decimal(70)), ("70-85", Decimal(85)), ("85-95", Decimal(95)), ("95-100", Decimal(100)))
TOP_BAND = ">=100"


def usage_band(percent: Decimal) -> str:
    for band, below in BANDS:
        if percent < below:
            return band
    return TOP_BAND


class LedgerCollector:
    """Open reservations and how much of each active budget's current period is committed
    (spent + reserved over the period's limit). Three aggregate queries per scrape."""

    def describe(self):
        return []  # nothing to check at registration, and no query then

    def collect(self):
        try:
            metrics = self._metrics()
        except Exception:
            logger.exception("Budget metrics could not be read")
            metrics = []
        up = GaugeMetricFamily(
            "costswitch_ledger_metrics_up", "1 when the budget and reservation figures could be read."
        )
        up.add_metric([], 1 if metrics else 0)
        yield from metrics
        yield up

    def _metrics(self) -> list:
        # Late imports: costswitch imports no app at import time.
        from django.db.models import Count

        from budgets.choices import ReservationState
        from budgets.models import Budget, BudgetPeriod, Reservation
        from budgets.selectors import percent_of

        limit = settings.METRICS_MAX_BUDGETS
        now = timezone.now()

        reservations = GaugeMetricFamily(
            "costswitch_open_reservations",
            f"Pending reservations per organization (the {limit} with most; the rest as {OTHER!r}).",
            labels=["organization"],
        )
        per_org = list(
            Reservation.objects.filter(state=ReservationState.PENDING)
            .values_list("organization__slug")
            .annotate(n=Count("pk"))
            .order_by("-n", "organization__slug")
        )
        for slug, count in per_org[:limit]:
            reservations.add_metric([slug], count)
        if len(per_org) > limit:
            reservations.add_metric([OTHER], sum(count for _, count in per_org[limit:]))

        # The period in force now of every active budget (the latest, should periods overlap).
        committed: dict[int, tuple[Decimal, Decimal]] = {}
        periods = (
            BudgetPeriod.objects.filter(budget__is_active=True, starts_at__lte=now, ends_at__gt=now)
            .order_by("budget_id", "starts_at")
            .values_list("budget_id", "limit", "spent", "reserved")
        )
        for budget_id, period_limit, spent, reserved in periods:
            committed[budget_id] = (spent + reserved, period_limit)
        # Budgets whose current period has not opened yet have used nothing.
        idle = Budget.objects.filter(is_active=True).exclude(pk__in=list(committed)).count()

        used = GaugeMetricFamily(
            "costswitch_budget_used_ratio",
            f"(spent + reserved) / limit of the current period, for the {limit} most used active budgets.",
            labels=["budget_id"],
        )
        ratios = sorted(
            (
                (_ratio(amount, period_limit), budget_id)
                for budget_id, (amount, period_limit) in committed.items()
            ),
            key=lambda item: (-item[0], item[1]),
        )
        for ratio, budget_id in ratios[:limit]:
            used.add_metric([str(budget_id)], float(ratio))

        by_band = dict.fromkeys([band for band, _ in BANDS] + [TOP_BAND], 0)
        by_band["<70"] += idle
        for amount, period_limit in committed.values():
            by_band[usage_band(percent_of(amount, period_limit))] += 1
        bands = GaugeMetricFamily(
            "costswitch_budgets_by_status",
            "Active budgets by share of their current period committed, in percent.",
            labels=["band"],
        )
        for band, count in by_band.items():
            bands.add_metric([band], count)
        return [reservations, used, bands]


def _ratio(amount: Decimal, limit: Decimal) -> Decimal:
    if limit <= 0:
        return Decimal(1) if amount > 0 else Decimal(0)
    return amount / limit


# --- /metrics -------------------------------------------------------------------------------------


def scrape_registry() -> CollectorRegistry:
    """What one scrape reads: every process's metrics (multi-process mode) or this process's, plus
    the ledger figures once."""
    registry = CollectorRegistry(auto_describe=False)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(REGISTRY)
    registry.register(LedgerCollector())
    return registry


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Open unless `METRICS_TOKEN` is set; then it takes that bearer token."""
    if not _authorized(request):
        response = HttpResponse("Unauthorized: send Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
