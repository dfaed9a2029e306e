"""The model registry as the selection engine sees it: an immutable in-process snapshot, rebuilt
only when the registry changes.

Every registry write (model, provider, fallback, price) bumps a version token in the shared cache
(Redis in production) after its transaction commits. `registry_snapshot()` compares that token
with the one its snapshot was built from, so an edit in one process takes effect in every other at
the next request, at the price of one cache read. While the cache is unreachable the snapshot is
rebuilt from PostgreSQL every OFFLINE_REBUILD_SECONDS, and once more when the cache is back.
"""

import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from costswitch.cache import cache_add, cache_available, cache_get, cache_set
from models_registry.choices import ProviderStatus, TaskType
from models_registry.models import ModelFallback, ModelProfile

REGISTRY_VERSION_KEY = "selection:registry-version"
OFFLINE_REBUILD_SECONDS = 5


@dataclass(frozen=True)
class ModelSnapshot:
    """What the engine needs of one model, flattened (no ORM access on the hot path)."""

    id: str
    provider: str
    provider_status: str
    tokenizer: str
    context_window: int
    max_output_tokens: int
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None
    capabilities: frozenset[str]
    quality: dict[str, int]
    mean_quality: float
    typical_latency_ms: int | None
    is_active: bool
    fallbacks: tuple[str, ...]
    # Per-minute limits (None: unlimited), enforced by budgets.ratelimits at admission.
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def quality_for(self, task_type: str) -> int:
        """A model without a score for a task type counts as unproven there (0)."""
        return self.quality.get(task_type, 0)

    @property
    def usable(self) -> bool:
        return self.is_active and self.provider_status != ProviderStatus.DISABLED


@dataclass(frozen=True)
class RegistrySnapshot:
    version: str
    models: dict[str, ModelSnapshot]
    tokenizers: frozenset[str]


_lock = threading.Lock()
_current: RegistrySnapshot | None = None


def snapshot_of(profile: ModelProfile, fallbacks: tuple[str, ...]) -> ModelSnapshot:
    capabilities = {
        name
        for name, supported in (
            ("tools", profile.supports_tools),
            ("vision", profile.supports_vision),
            ("json", profile.supports_json_mode),
            ("streaming", profile.supports_streaming),
        )
        if supported
    }
    scores = {task: int(profile.quality_scores.get(task, 0)) for task in TaskType.values}
    return ModelSnapshot(
        id=profile.pk,
        provider=profile.provider.name,
        provider_status=profile.provider.status,
        tokenizer=profile.tokenizer,
        context_window=profile.context_window,
        max_output_tokens=profile.max_output_tokens,
        input_price_per_million=profile.input_price_per_million,
        output_price_per_million=profile.output_price_per_million,
        cached_input_price_per_million=profile.cached_input_price_per_million,
        capabilities=frozenset(capabilities),
        quality=dict(profile.quality_scores),
        mean_quality=sum(scores.values()) / len(scores),
        typical_latency_ms=profile.typical_latency_ms,
        is_active=profile.is_active,
        fallbacks=fallbacks,
        requests_per_minute=profile.requests_per_minute,
        tokens_per_minute=profile.tokens_per_minute,
    )


def build_snapshot(version: str) -> RegistrySnapshot:
    chains: dict[str, list[str]] = {}
    for model_id, fallback_id in ModelFallback.objects.order_by("model_id", "position").values_list(
        "model_id", "fallback_id"
    ):
        chains.setdefault(model_id, []).append(fallback_id)
    models = {
        profile.pk: snapshot_of(profile, tuple(chains.get(profile.pk, ())))
        for profile in ModelProfile.objects.select_related("provider")
    }
    return RegistrySnapshot(
        version=version, models=models, tokenizers=frozenset(m.tokenizer for m in models.values())
    )


def registry_version() -> str:
    """The current version token; a missing one (cache flushed) is replaced, forcing a rebuild."""
    version = cache_get(REGISTRY_VERSION_KEY)
    if version is None:
        if not cache_available():
            # No way to hear of edits: a token that changes every few seconds, and never equals a
            # real one, rebuilds the snapshot that often and again when the cache answers.
            return f"offline:{int(time.monotonic() // OFFLINE_REBUILD_SECONDS)}"
        version = uuid.uuid4().hex
        cache_add(REGISTRY_VERSION_KEY, version, timeout=None)
        version = cache_get(REGISTRY_VERSION_KEY, version)
    return version


def registry_snapshot(version: str | None = None) -> RegistrySnapshot:
    global _current
    version = version or registry_version()
    current = _current
    if current is not None and current.version == version:
        return current
    with _lock:
        if _current is None or _current.version != version:
            _current = build_snapshot(version)
        return _current


def registry_changed() -> None:
    """Invalidate every process's snapshot (called after registry writes commit)."""
    cache_set(REGISTRY_VERSION_KEY, uuid.uuid4().hex, timeout=None, keep=True)


def on_registry_write(**kwargs) -> None:
    """Signal receiver (module level, so the weak reference signals keep stays alive)."""
    transaction.on_commit(registry_changed)
