"""Registry writes: create and update models, change prices (with history), import catalogs.

Every price edit, wherever it comes from (admin, API, catalog import, webhook), goes through
`model_price_change`, so the price history is complete by construction.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from costswitch.errors import NotFound, ValidationFailed
from models_registry.catalog import Catalog, ModelSpec
from models_registry.models import ModelFallback, ModelProfile, PriceChange, Provider

PRICE_FIELDS = ("input_price_per_million", "output_price_per_million", "cached_input_price_per_million")
# Fields a catalog or the API may set on a model; prices are listed apart because they keep history.
PROFILE_FIELDS = (
    "provider_model_name",
    "display_name",
    "family",
    "tokenizer",
    "context_window",
    "max_output_tokens",
    "supports_tools",
    "supports_vision",
    "supports_json_mode",
    "supports_streaming",
    "quality_scores",
    "typical_latency_ms",
    "is_active",
    "source_url",
    "notes",
)
# Per-minute limits are the deployment's (its provider accounts' quotas), not catalog data: the API
# and admin set them, catalog imports leave them alone.
RATE_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute")


@dataclass(frozen=True)
class Prices:
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None

    @classmethod
    def of(cls, priced: "ModelProfile | ModelSpec") -> "Prices":
        return cls(*(getattr(priced, name) for name in PRICE_FIELDS))


def _full_clean(instance, *, exclude: Sequence[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude), validate_unique=False)
    except ValidationError as exc:
        details = {name: [str(m) for m in messages] for name, messages in exc.message_dict.items()}
        raise ValidationFailed(f"{type(instance).__name__} is not valid.", details=details) from exc


def model_create(
    *,
    id: str,
    provider: Provider,
    prices: Prices,
    profile: Mapping[str, Any],
    fallbacks: Sequence[str] = (),
    source: str,
    source_detail: str = "",
    changed_by=None,
) -> ModelProfile:
    """A new model starts its price history with one row (no old prices)."""
    if ModelProfile.objects.filter(pk=id).exists():
        raise ValidationFailed(f"A model with id {id!r} already exists.", details={"id": ["Already exists."]})
    fields = _profile_fields(profile)
    fields.setdefault("display_name", id)
    model = ModelProfile(id=id, provider=provider, **fields, **vars(prices))
    _full_clean(model, exclude=["fallbacks"])
    with transaction.atomic():
        model.save(force_insert=True)
        price_history_start(model=model, source=source, source_detail=source_detail, changed_by=changed_by)
        model_fallbacks_set(model=model, fallback_ids=fallbacks)
    return model


def price_history_start(
    *, model: ModelProfile, source: str, source_detail: str = "", changed_by=None
) -> PriceChange:
    """The first history row of a new model: its prices, no old prices."""
    now = timezone.now()
    return PriceChange.objects.create(
        model=model,
        **vars(Prices.of(model)),
        source=source,
        source_detail=source_detail,
        changed_by=changed_by,
        effective_at=now,
        applied_at=now,
    )


@dataclass
class ModelUpdate:
    model: ModelProfile
    changed_fields: list[str] = field(default_factory=list)
    price_change: PriceChange | None = None


def model_update(
    *,
    model: ModelProfile,
    profile: Mapping[str, Any] | None = None,
    prices: Prices | None = None,
    fallbacks: Sequence[str] | None = None,
    provider: Provider | None = None,
    source: str,
    source_detail: str = "",
    changed_by=None,
    effective_at: datetime | None = None,
) -> ModelUpdate:
    """Change what is given; prices go through `model_price_change` (history, maybe scheduled)."""
    with transaction.atomic():
        locked = ModelProfile.objects.select_for_update().get(pk=model.pk)
        result = ModelUpdate(model=locked)
        for name, value in _profile_fields(profile or {}).items():
            if getattr(locked, name) != value:
                setattr(locked, name, value)
                result.changed_fields.append(name)
        if provider is not None and locked.provider_id != provider.pk:
            locked.provider = provider
            result.changed_fields.append("provider")
        if result.changed_fields:
            _full_clean(locked, exclude=["fallbacks", *PRICE_FIELDS])
            locked.save(update_fields=[*result.changed_fields, "updated_at"])
        if prices is not None:
            result.price_change = model_price_change(
                model=locked,
                prices=prices,
                source=source,
                source_detail=source_detail,
                changed_by=changed_by,
                effective_at=effective_at,
            )
            if result.price_change is not None and result.price_change.applied_at is not None:
                result.changed_fields.extend(
                    name
                    for name in PRICE_FIELDS
                    if getattr(result.price_change, f"old_{name}") != getattr(locked, name)
                )
        if fallbacks is not None and list(fallbacks) != model_fallback_ids(locked):
            model_fallbacks_set(model=locked, fallback_ids=fallbacks)
            result.changed_fields.append("fallbacks")
    return result


def model_price_change(
    *,
    model: ModelProfile,
    prices: Prices,
    source: str,
    source_detail: str = "",
    changed_by=None,
    effective_at: datetime | None = None,
) -> PriceChange | None:
    """Record a price edit; apply it now, or leave it pending until `effective_at` (future).

    Returns None when the prices are already the model's (nothing to record), so re-importing the
    same catalog or replaying a webhook adds no history rows.
    """
    now = timezone.now()
    effective_at = effective_at or now
    with transaction.atomic():
        locked = ModelProfile.objects.select_for_update().get(pk=model.pk)
        current = Prices.of(locked)
        if effective_at <= now and prices == current:
            return None
        if (
            effective_at > now
            and locked.price_changes.pending().filter(effective_at=effective_at, **vars(prices)).exists()
        ):
            return None
        change = PriceChange(
            model=locked,
            **{f"old_{name}": value for name, value in vars(current).items()},
            **vars(prices),
            source=source,
            source_detail=source_detail[:300],
            changed_by=changed_by,
            effective_at=effective_at,
        )
        _full_clean(change, exclude=["model", "changed_by"])
        if effective_at <= now:
            _apply(locked, change, now)
        change.save()
    for name in PRICE_FIELDS:
        setattr(model, name, getattr(locked, name))
    return change


def price_changes_apply_due(*, now: datetime | None = None) -> int:
    """Apply scheduled price changes whose time has come; safe to run concurrently (row locks)."""
    now = now or timezone.now()
    applied = 0
    with transaction.atomic():
        due = (
            PriceChange.objects.pending()
            .filter(effective_at__lte=now)
            .select_for_update(skip_locked=True)
            .order_by("effective_at", "id")
        )
        for change in due:
            model = ModelProfile.objects.select_for_update().get(pk=change.model_id)
            for name, value in vars(Prices.of(model)).items():
                setattr(change, f"old_{name}", value)
            _apply(model, change, now)
            change.save()
            applied += 1
    return applied


def _apply(model: ModelProfile, change: PriceChange, now: datetime) -> None:
    for name in PRICE_FIELDS:
        setattr(model, name, getattr(change, name))
    model.save(update_fields=[*PRICE_FIELDS, "updated_at"])
    change.applied_at = now


def model_archive(*, model: ModelProfile) -> ModelProfile:
    """Models are deactivated, not deleted: usage records and price history keep pointing at them."""
    if model.is_active:
        model.is_active = False
        model.save(update_fields=["is_active", "updated_at"])
    return model


def model_fallback_ids(model: ModelProfile) -> list[str]:
    return list(model.fallback_links.order_by("position").values_list("fallback_id", flat=True))


def model_fallbacks_set(*, model: ModelProfile, fallback_ids: Sequence[str]) -> None:
    fallback_ids = list(fallback_ids)
    if len(set(fallback_ids)) != len(fallback_ids):
        raise ValidationFailed("A fallback is listed twice.", details={"fallbacks": ["Duplicate model."]})
    if model.pk in fallback_ids:
        raise ValidationFailed(
            "A model cannot be its own fallback.", details={"fallbacks": ["Self reference."]}
        )
    missing = sorted(
        set(fallback_ids) - set(ModelProfile.objects.filter(pk__in=fallback_ids).values_list("pk", flat=True))
    )
    if missing:
        raise NotFound(
            f"Unknown fallback model(s): {', '.join(missing)}.",
            code="unknown_model",
            details={"fallbacks": missing},
        )
    with transaction.atomic():
        model.fallback_links.all().delete()
        # One by one, not bulk_create: each new fallback must reach the audit log (signals).
        for position, fallback_id in enumerate(fallback_ids, start=1):
            ModelFallback.objects.create(model=model, fallback_id=fallback_id, position=position)
        # Saving the model tells listeners (selection's snapshot) that its fallbacks changed.
        model.save(update_fields=["updated_at"])


def _profile_fields(profile: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(profile) - {*PROFILE_FIELDS, *RATE_LIMIT_FIELDS}
    if unknown:
        raise TypeError(f"Not profile fields: {', '.join(sorted(unknown))}")
    return dict(profile)


# --- catalog import ---------------------------------------------------------------------------------


@dataclass
class ImportReport:
    format: str
    dry_run: bool
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    price_changes: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: int = 0
    providers_created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.providers_created)


class _DryRunRollback(Exception):
    pass


def catalog_import(
    *,
    catalog: Catalog,
    source: str,
    source_detail: str = "",
    dry_run: bool = False,
    only_existing: bool = False,
    changed_by=None,
) -> ImportReport:
    """Load or update the registry from a parsed catalog, idempotently.

    A dry run performs the same writes inside a transaction and rolls it back, so what it reports is
    exactly what a real run would do. `only_existing` updates models already registered and creates
    nothing (useful with LiteLLM's file, which lists thousands of models).
    """
    report = ImportReport(format=catalog.format, dry_run=dry_run, skipped=catalog.skipped)
    try:
        with transaction.atomic():
            _import(catalog, report, source, source_detail, only_existing, changed_by)
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return report


def _import(catalog: Catalog, report: ImportReport, source, source_detail, only_existing, changed_by) -> None:
    providers = {p.name: p for p in Provider.objects.all()}
    for spec in catalog.providers:
        if spec.name in providers or only_existing:
            continue
        provider = Provider(
            name=spec.name,
            display_name=spec.display_name,
            kind=spec.kind,
            base_url=spec.base_url,
            api_key_env=spec.api_key_env,
            pricing_url=spec.pricing_url,
        )
        _full_clean(provider)
        provider.save()
        providers[spec.name] = provider
        report.providers_created.append(spec.name)

    existing = _existing_models(catalog.models)
    pending_fallbacks: list[tuple[ModelProfile, Sequence[str]]] = []
    for spec in catalog.models:
        model = existing.get(spec.id)
        prices = Prices.of(spec)
        if model is None:
            if only_existing:
                report.skipped += 1
                continue
            model = model_create(
                id=spec.id,
                provider=providers[spec.provider],
                prices=prices,
                profile=_spec_profile(spec),
                source=source,
                source_detail=source_detail,
                changed_by=changed_by,
            )
            report.created.append(spec.id)
        else:
            own_format = catalog.format == "costswitch"
            update = model_update(
                model=model,
                profile=_spec_profile(spec, only=None if own_format else LITELLM_REFRESHES),
                prices=prices,
                provider=providers.get(spec.provider) if own_format else None,
                source=source,
                source_detail=source_detail,
                changed_by=changed_by,
            )
            if update.price_change is not None:
                report.price_changes.append(model.pk)
            if update.changed_fields:
                report.updated[model.pk] = update.changed_fields
        if spec.fallbacks is not None:
            pending_fallbacks.append((model, spec.fallbacks))
    # Fallbacks may point at models further down the file: link them once every model exists.
    for model, fallback_ids in pending_fallbacks:
        if list(fallback_ids) != model_fallback_ids(model):
            model_fallbacks_set(model=model, fallback_ids=fallback_ids)
            if model.pk not in report.created:
                report.updated.setdefault(model.pk, []).append("fallbacks")
    report.unchanged = len(existing) - len(report.updated)


def _existing_models(specs: Iterable[ModelSpec]) -> dict[str, ModelProfile]:
    """Match by id, or (LiteLLM) by the provider's model name, so a refresh updates what we have."""
    specs = list(specs)
    by_id = ModelProfile.objects.in_bulk([s.id for s in specs])
    names = {s.provider_model_name: s.id for s in specs if s.id not in by_id and s.provider_model_name}
    if names:
        for model in ModelProfile.objects.filter(provider_model_name__in=names):
            by_id.setdefault(names[model.provider_model_name], model)
    return by_id


# LiteLLM's file knows limits, capabilities and prices, not our names, tokenizers or quality scores.
LITELLM_REFRESHES = (
    "context_window",
    "max_output_tokens",
    "supports_tools",
    "supports_vision",
    "supports_json_mode",
)


def _spec_profile(spec: ModelSpec, *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """The profile fields the catalog states (None means it does not say: keep ours)."""
    names = only or PROFILE_FIELDS
    return {name: getattr(spec, name) for name in names if getattr(spec, name) is not None}
