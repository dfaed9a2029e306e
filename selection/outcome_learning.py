"""Learning per-request difficulty in production: training the organization's outcome models from
reported outcomes (a write, run by the periodic `learn_from_outcomes` task), and reading them on the
admission path (an in-process cache checked against a version).

Admission stores each request's hashed text features on its Decision (`analysis["textFeatures"]`,
compact: see `encode_features`). When a usage report with an outcome (success/failure or a 1-5
rating) arrives for that request id, the ledger row is all that is written; the task later joins
the row to its decision and updates the model of the LLM that served it, with the same
`selection.learning.OutcomeModel.update` the offline evaluation uses.

Concurrency: the organization's `OutcomeLearningState` row is locked (SELECT ... FOR UPDATE) while
training, and the watermark (highest UsageRecord id learned) moves in the same transaction as the
weights, so two workers, a retried task or a rerun never learn one outcome twice. Rows newer than
COSTSWITCH_LEARNING_LAG_SECONDS are left for the next run: a transaction that took a lower id but
committed later is still seen.
"""

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models.fields.json import KT
from django.utils import timezone

from budgets.models import WITH_OUTCOME, Organization, UsageRecord
from costswitch.cache import cache_add, cache_get, cache_set
from selection.choices import DecisionOutcome
from selection.learning import OutcomeModel, target_for
from selection.models import Decision, LearnedOutcomeModel, OutcomeLearningState

logger = logging.getLogger(__name__)

FEATURES_KEY = "text_features"  # in Decision.analysis (rendered textFeatures)
# Outcomes learned per organization per run: bounds one transaction; the next run continues.
BATCH = 5000


def encode_features(buckets: list[int]) -> str:
    """Bucket ids as base64 of little-endian uint32: ~4/3 bytes per byte, opaque to the camelCase
    renderer, a few hundred characters for a typical prompt."""
    return base64.b64encode(np.asarray(buckets, dtype="<u4").tobytes()).decode("ascii")


def decode_features(text: str) -> list[int]:
    return np.frombuffer(base64.b64decode(text), dtype="<u4").astype(np.int64).tolist()


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


def outcome_models_train(*, organization_id: int | None = None, batch: int = BATCH) -> dict:
    """Learn every organization's (or one's) outcomes reported since its watermark; returns a
    summary per organization. Idempotent: a second run right after finds nothing new."""
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
        result = _train_one(org_id, settled=settled, since=since, batch=batch)
        if result["outcomes"]:
            summary[str(org_id)] = result
    return summary


def _train_one(organization_id: int, *, settled, since, batch: int) -> dict:
    with transaction.atomic():
        OutcomeLearningState.objects.get_or_create(organization_id=organization_id)
        state = OutcomeLearningState.objects.select_for_update().get(organization_id=organization_id)
        rows = list(
            UsageRecord.objects.filter(
                WITH_OUTCOME,
                organization_id=organization_id,
                pk__gt=state.watermark,
                recorded_at__lte=settled,
                recorded_at__gte=since,
            )
            .order_by("pk")
            .values_list("pk", "request_id", "model", "outcome", "rating")[:batch]
        )
        result = {"outcomes": len(rows), "learned": 0, "models": []}
        if not rows:
            return result
        features = dict(
            Decision.objects.filter(
                organization_id=organization_id,
                outcome=DecisionOutcome.ADMITTED,
                request_id__in={row[1] for row in rows},
            )
            .filter(analysis__has_key=FEATURES_KEY)
            .values_list("request_id", KT(f"analysis__{FEATURES_KEY}"))
        )
        stored = {
            row.model: row
            for row in LearnedOutcomeModel.objects.select_for_update().filter(
                organization_id=organization_id, model__in={row[2] for row in rows}
            )
        }
        models: dict[str, OutcomeModel] = {}
        for _, request_id, model_id, outcome, rating in rows:
            encoded = features.get(request_id)
            target = target_for(outcome, rating)
            if not encoded or target is None:
                continue  # not routed by costswitch (or before learning): nothing to learn from
            if model_id not in models:
                row = stored.get(model_id)
                models[model_id] = OutcomeModel.from_bytes(bytes(row.weights)) if row else OutcomeModel()
            models[model_id].update(decode_features(encoded), target)
            result["learned"] += 1
        for model_id, model in models.items():
            LearnedOutcomeModel.objects.update_or_create(
                organization_id=organization_id,
                model=model_id,
                defaults={"weights": model.to_bytes(), "samples": model.samples},
            )
        state.watermark = rows[-1][0]
        state.learned += result["learned"]
        if models:
            state.version += 1
            version = state.version
            transaction.on_commit(
                lambda: cache_set(learning_version_key(organization_id), version, timeout=None, keep=True)
            )
        state.save()
        result["models"] = sorted(models)
        result["version"] = state.version
    logger.info(
        "outcome models trained",
        extra={"organization_id": organization_id, **{k: v for k, v in result.items() if k != "models"}},
    )
    return result
