"""Learning per-request difficulty in production: training the organization's outcome models from
reported outcomes (a write, run by the periodic `learn_from_outcomes` task), and reading them on the
admission path (an in-process cache checked against a version).

Admission stores each request's hashed text features on its Decision (`analysis["textFeatures"]`,
compact: see `encode_features`). When a usage report with an outcome (success/failure or a 1-5
rating) arrives for that request id, the ledger row is all that is written; the task later joins
rows to their decisions and, for each LLM that new outcomes concern, rebuilds its model from scratch
from its newest COSTSWITCH_LEARNING_WINDOW outcomes, COSTSWITCH_LEARNING_PASSES passes (`rebuild`,
the function the offline evaluation calls too). Rebuilding rather than updating in place makes a run
a pure function of the ledger: nothing is learned twice whatever runs overlap, the weights follow
the recent window (old behaviour ages out), and several passes learn more from few outcomes than
one online step each.

Concurrency: the organization's `OutcomeLearningState` row is locked (SELECT ... FOR UPDATE) while
training, and the watermark (highest UsageRecord id seen) moves in the same transaction as the
weights: a run that finds no outcome past the watermark does nothing, so overlapping runs, a retried
task or a rerun rebuild once per batch of new outcomes. Rows newer than
COSTSWITCH_LEARNING_LAG_SECONDS are left for the next run: a transaction that took a lower id but
committed later is still seen.
"""

import base64
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
from django.utils import timezone

from budgets.models import WITH_OUTCOME, Organization, UsageRecord
from costswitch.cache import cache_add, cache_get, cache_set
from selection.choices import DecisionOutcome
from selection.learning import OutcomeModel, fit, target_for
from selection.models import Decision, LearnedOutcomeModel, OutcomeLearningState

logger = logging.getLogger(__name__)

FEATURES_KEY = "text_features"  # in Decision.analysis (rendered textFeatures)


def encode_features(buckets: list[int]) -> str:
    """Bucket ids as base64 of little-endian uint32: ~4/3 bytes per byte, opaque to the camelCase
    renderer, a few hundred characters for a typical prompt."""
    return base64.b64encode(np.asarray(buckets, dtype="<u4").tobytes()).decode("ascii")


def decode_features(text: str) -> list[int]:
    return np.frombuffer(base64.b64decode(text), dtype="<u4").astype(np.int64).tolist()


def rebuild(reported: Sequence[tuple[Sequence[int], float]]) -> OutcomeModel:
    """One model rebuilt from its reported outcomes (features, target), oldest first: the newest
    COSTSWITCH_LEARNING_WINDOW of them, COSTSWITCH_LEARNING_PASSES passes (`learning.fit`). The
    periodic task and the offline evaluation (analytics.routing.learned) both call this."""
    window = settings.COSTSWITCH_LEARNING_WINDOW
    return fit(reported[-window:] if window > 0 else reported, passes=settings.COSTSWITCH_LEARNING_PASSES)


def learning_version_key(organization_id: int) -> str:
    return f"selection:learned-version:{organization_id}"


@dataclass
class _Loaded:
    version: int
    checked: float
    models: dict[str, OutcomeModel] = field(default_factory=dict)


_lock = threading.Lock()
_loaded: dict[int, _Loaded] = {}


def learned_models_in_force(organization: Organization) -> dict[str, OutcomeModel]:
    """The organization's trained outcome models, by model id. Checked against the shared version at
    most every COSTSWITCH_LEARNING_REFRESH_SECONDS per process (the weights move a few times a
    minute at most; a request costs no cache round trip in between)."""
    now = time.monotonic()
    loaded = _loaded.get(organization.pk)
    if loaded is not None and now - loaded.checked < settings.COSTSWITCH_LEARNING_REFRESH_SECONDS:
        return loaded.models
    key = learning_version_key(organization.pk)
    version = cache_get(key)
    if version is None:
        version = (
            OutcomeLearningState.objects.filter(organization=organization)
            .values_list("version", flat=True)
            .first()
            or 0
        )
        cache_add(key, version, timeout=None)
    if loaded is not None and loaded.version == version:
        loaded.checked = now
        return loaded.models
    with _lock:
        models = {
            row.model: OutcomeModel.from_bytes(bytes(row.weights))
            for row in LearnedOutcomeModel.objects.filter(organization=organization)
        }
        _loaded[organization.pk] = _Loaded(version=version, checked=now, models=models)
    return models


def outcome_models_train(*, organization_id: int | None = None) -> dict:
    """Rebuild every organization's (or one's) outcome models that new outcomes concern, from each
    model's newest COSTSWITCH_LEARNING_WINDOW outcomes; returns a summary per organization.
    Idempotent: a second run right after finds nothing new and changes nothing."""
    now = timezone.now()
    settled = now - timedelta(seconds=settings.COSTSWITCH_LEARNING_LAG_SECONDS)
    since = now - timedelta(days=settings.COSTSWITCH_HISTORY_WINDOW_DAYS)
    organizations = (
        [organization_id]
        if organization_id is not None
        else list(
            UsageRecord.objects.filter(WITH_OUTCOME, recorded_at__gte=since)
            .values_list("organization_id", flat=True)
            .distinct()
        )
    )
    summary = {}
    for org_id in sorted(organizations):
        result = _train_one(org_id, settled=settled, since=since)
        if result["outcomes"]:
            summary[str(org_id)] = result
    return summary


def _with_features(rows):
    """Usage rows annotated with the hashed text of the decision that routed them (None: not routed
    by costswitch, or before learning was on)."""
    decision = _routing_decisions().values(encoded=KT(f"analysis__{FEATURES_KEY}"))[:1]
    return rows.annotate(encoded=Subquery(decision))


def _routing_decisions():
    """The admitted decision, with stored text features, of the outer usage row's request."""
    return Decision.objects.filter(
        organization_id=OuterRef("organization_id"),
        request_id=OuterRef("request_id"),
        outcome=DecisionOutcome.ADMITTED,
        analysis__has_key=FEATURES_KEY,
    )


def _window(organization_id: int, model_id: str, *, settled, since) -> list[tuple[list[int], float]]:
    """The model's newest COSTSWITCH_LEARNING_WINDOW learnable outcomes, oldest first."""
    rows = _with_features(
        UsageRecord.objects.filter(
            WITH_OUTCOME,
            organization_id=organization_id,
            model=model_id,
            recorded_at__lte=settled,
            recorded_at__gte=since,
        )
    ).filter(encoded__isnull=False)
    window = settings.COSTSWITCH_LEARNING_WINDOW
    newest = rows.order_by("-pk").values_list("encoded", "outcome", "rating")
    reported = []
    for encoded, outcome, rating in reversed(list(newest[:window] if window > 0 else newest)):
        target = target_for(outcome, rating)
        if target is not None:
            reported.append((decode_features(encoded), target))
    return reported


def _train_one(organization_id: int, *, settled, since) -> dict:
    with transaction.atomic():
        OutcomeLearningState.objects.get_or_create(organization_id=organization_id)
        state = OutcomeLearningState.objects.select_for_update().get(organization_id=organization_id)
        new = (
            UsageRecord.objects.filter(
                WITH_OUTCOME,
                organization_id=organization_id,
                pk__gt=state.watermark,
                recorded_at__lte=settled,
                recorded_at__gte=since,
            )
            .annotate(routed=Exists(_routing_decisions()))
            .values("model")
            .annotate(outcomes=Count("pk"), learnable=Count("pk", filter=Q(routed=True)), top=Max("pk"))
            .order_by("model")
        )
        per_model = list(new)
        result = {"outcomes": sum(row["outcomes"] for row in per_model), "learned": 0, "models": []}
        if not per_model:
            return result
        concerned = [row["model"] for row in per_model if row["learnable"]]
        for model_id in concerned:
            model = rebuild(_window(organization_id, model_id, settled=settled, since=since))
            LearnedOutcomeModel.objects.update_or_create(
                organization_id=organization_id,
                model=model_id,
                defaults={"weights": model.to_bytes(), "samples": model.samples},
            )
        result["learned"] = sum(row["learnable"] for row in per_model)
        state.watermark = max(row["top"] for row in per_model)
        state.learned += result["learned"]
        if concerned:
            state.version += 1
            version = state.version
            transaction.on_commit(
                lambda: cache_set(learning_version_key(organization_id), version, timeout=None, keep=True)
            )
        state.save()
        result["models"] = concerned
        result["version"] = state.version
    logger.info(
        "outcome models rebuilt",
        extra={"organization_id": organization_id, **{k: v for k, v in result.items() if k != "models"}},
    )
    return result
