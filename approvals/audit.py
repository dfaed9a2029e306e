"""The tamper-evident audit log: a leaf any app may call (DESIGN.md section 1).

What is recorded, and by whom (one rule, so nothing is recorded twice):
- Configuration models are tracked by model signals, wherever they are changed (API services, Django
  admin, management commands, the shell): `TRACKED` below, connected by `ApprovalsConfig.ready()`
  with lazy sender strings so approvals never imports the apps to its right. Actions are
  `<model>.created` (after: the whole row), `<model>.updated` (only the fields that changed, before
  and after) and `<model>.deleted` (before: the whole row), e.g. `budget.updated`.
- Models of the approvals app itself (override requests, approvals) are never tracked by signals:
  their services call `record()` explicitly for every state change and decision, with the reason.
  Anything else that is a decision rather than a row change also calls `record()` explicitly.
- Never tracked: the spend ledger (usage, reservations, periods), the hot path and append-only
  already; and saves that only touch bookkeeping fields (`updated_at`, an API key's `last_used_at`).
- Secrets never enter the log: `key_hash` and `password` are left out of every before/after.

Who: the `actor` given, else the current actor (`costswitch.context`: the request's API key or
session user), else the system. Which request: the request id of the log context (or the Celery
task id).

The chain: entry n stores the hash of entry n-1 and its own hash over all its fields. Appends are
serialized (a transaction-scoped advisory lock on PostgreSQL; SQLite's IMMEDIATE transactions
already take the database's write lock at BEGIN) and the sequence is unique, so concurrent writers
never fork it. The entry commits or rolls back with the change it describes. `verify_chain()`
walks it and names the first broken link.
"""

import json
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils import timezone

from approvals.models.audit import GENESIS_HASH, AuditActorType, AuditEntry
from budgets.models import Budget, Membership, Team
from budgets.principals import Principal
from costswitch import context, logs
from costswitch.errors import NotFound, PermissionDenied

# Models tracked by signals, with the fields whose change alone is not worth an entry.
TRACKED: dict[str, frozenset[str]] = {
    "budgets.Organization": frozenset(),
    "budgets.Team": frozenset(),
    "budgets.Membership": frozenset(),
    "budgets.ApiKey": frozenset({"last_used_at"}),
    "budgets.Budget": frozenset(),
    "budgets.Threshold": frozenset(),
    "models_registry.Provider": frozenset(),
    "models_registry.ModelProfile": frozenset(),
    "models_registry.ModelFallback": frozenset(),
    "models_registry.PriceChange": frozenset(),
    "selection.RuleSetVersion": frozenset(),
}
SECRET_FIELDS = frozenset({"key_hash", "password"})
# Any constant unique to this lock: "cs-audit" as a big-endian 64-bit integer.
AUDIT_LOCK_KEY = int.from_bytes(b"cs-audit", "big")


# --- writing ----------------------------------------------------------------------------------------


def record(
    *,
    action: str,
    obj: Any,
    actor: Any = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    organization: Any = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Append one entry for a change to `obj` (or a decision about it) by `actor` (a user, an API key,
    or None: the current actor of the request, else the system).

    Runs in the caller's transaction (or its own): the entry exists exactly when the change does.
    """
    actor = actor if actor is not None else context.current_actor()
    actor_type, actor_id, actor_label = _actor_fields(actor)
    organization_id, team_id, subject_user_id = _scope_ids(obj)
    if organization is not None:
        organization_id = getattr(organization, "pk", organization)
    if request_id is None:
        bound = logs.context()
        task_id = bound.get("task_id")
        request_id = bound.get("request_id") or (f"task:{task_id}" if task_id else "")
    entry = AuditEntry(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label[:200],
        action=action[:100],
        object_type=_object_type(obj)[:100],
        object_id="" if getattr(obj, "pk", None) is None else str(obj.pk)[:100],
        object_repr=_object_repr(obj)[:200],
        organization_id=organization_id,
        team_id=team_id,
        subject_user_id=subject_user_id,
        before=_clean(before),
        after=_clean(after),
        reason=reason or "",
        request_id=(request_id or "")[:200],
    )
    using = router.db_for_write(AuditEntry)
    with transaction.atomic(using=using):
        _serialize_appends(using)
        head = AuditEntry.objects.using(using).order_by("-sequence").values_list("sequence", "hash").first()
        entry.sequence, entry.prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        # Taken under the lock, so time never runs backwards along the chain.
        entry.occurred_at = timezone.now()
        entry.hash = entry.compute_hash()
        entry.save(using=using, force_insert=True)
    return entry


def _serialize_appends(using: str) -> None:
    connection = connections[using]
    if connection.vendor == "postgresql":
        # Held until the surrounding transaction ends: the next writer reads this entry as its head.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])


def _actor_fields(actor: Any) -> tuple[str, str, str]:
    api_key = getattr(actor, "api_key", None)  # a team key's ServiceAccount request user
    if api_key is not None and not hasattr(actor, "_meta"):
        actor = api_key
    if actor is None:
        return AuditActorType.SYSTEM, "", "system"
    if hasattr(actor, "key_hash"):
        return AuditActorType.API_KEY, str(actor.pk), f"{actor.prefix} ({actor.name})"
    return AuditActorType.USER, str(actor.pk), actor.get_username()


def _object_type(obj: Any) -> str:
    meta = getattr(obj, "_meta", None)
    return meta.label_lower if meta is not None else type(obj).__name__.lower()


def _object_repr(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # a half-deleted object may not render; the id still names it
        return ""


def _scope_ids(obj: Any) -> tuple[int | None, int | None, int | None]:
    """(organization, team, user) the object belongs to: who may read its entries."""
    label = _object_type(obj)
    organization_id = getattr(obj, "organization_id", None)
    team_id = getattr(obj, "team_id", None)
    user_id = getattr(obj, "user_id", None)
    if label == "budgets.organization":
        organization_id = obj.pk
    elif label == "budgets.team":
        team_id = obj.pk
    budget_id = getattr(obj, "budget_id", None)
    if budget_id is not None and organization_id is None:  # thresholds, override requests
        row = (
            Budget._base_manager.filter(pk=budget_id)
            .values_list("organization_id", "team_id", "user_id")
            .first()
        )
        if row is not None:
            organization_id, team_id, user_id = row
    if organization_id is None and team_id is not None:  # memberships
        organization_id = (
            Team._base_manager.filter(pk=team_id).values_list("organization_id", flat=True).first()
        )
    return organization_id, team_id, user_id


def _clean(values: dict | None) -> dict | None:
    """JSON-safe (as the database will give it back: the hash must match after a round trip),
    without secrets."""
    if values is None:
        return None
    safe = {str(key): jsonable(value) for key, value in values.items() if key not in SECRET_FIELDS}
    return json.loads(json.dumps(safe))


def jsonable(value: Any) -> Any:
    """Decimals (and floats) as exact strings without trailing zeros, times in ISO 8601 (UTC when
    aware), collections as lists and string-keyed objects."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if timezone.is_aware(value) else value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, float):
        # As text: PostgreSQL's jsonb may print a float back differently (1e+20 as an integer),
        # and the hash must survive the round trip.
        return repr(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


# --- tracking by signals ----------------------------------------------------------------------------


def _tracked_fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if field.attname not in SECRET_FIELDS]


def _field_value(field: models.Field, value: Any) -> Any:
    with suppress(ValidationError):
        value = field.to_python(value)  # "50" assigned in the shell compares equal to Decimal("50")
    return jsonable(value)


def snapshot(instance: models.Model, fields: Iterable[models.Field] | None = None) -> dict:
    """The row as the audit log shows it: every concrete field by column name, secrets left out."""
    fields = _tracked_fields(type(instance)) if fields is None else fields
    return {field.attname: _field_value(field, getattr(instance, field.attname)) for field in fields}


def _model_name(instance: models.Model) -> str:
    return instance._meta.model_name


def _ignored(model: type[models.Model]) -> frozenset[str]:
    """Fields whose change alone records nothing: the tracked model's own list and `auto_now` stamps."""
    own = TRACKED.get(model._meta.label, frozenset())
    stamps = {field.attname for field in model._meta.concrete_fields if getattr(field, "auto_now", False)}
    return own | stamps


def _before_save(sender, instance, raw=False, using=None, **kwargs) -> None:
    if instance.pk is None:
        return
    old = sender._base_manager.using(using).filter(pk=instance.pk).first()
    instance._audit_before = None if old is None else snapshot(old)


def _after_save(sender, instance, created, raw=False, using=None, update_fields=None, **kwargs) -> None:
    before = instance.__dict__.pop("_audit_before", None)
    after = snapshot(instance)
    name = _model_name(instance)
    if created or before is None:
        record(action=f"{name}.created", obj=instance, after=after)
        return
    written = set(after)
    if update_fields is not None:
        written = {sender._meta.get_field(field).attname for field in update_fields} & written
    changed = sorted(
        attname for attname in written - _ignored(sender) if before.get(attname) != after[attname]
    )
    if changed:
        record(
            action=f"{name}.updated",
            obj=instance,
            before={attname: before.get(attname) for attname in changed},
            after={attname: after[attname] for attname in changed},
        )


def _after_delete(sender, instance, using=None, **kwargs) -> None:
    record(action=f"{_model_name(instance)}.deleted", obj=instance, before=snapshot(instance))


def connect_signals() -> None:
    """Track the `TRACKED` models (lazily: senders resolve when their apps load)."""
    for label in TRACKED:
        uid = f"approvals.audit.{label}"
        pre_save.connect(_before_save, sender=label, dispatch_uid=f"{uid}.pre_save", weak=False)
        post_save.connect(_after_save, sender=label, dispatch_uid=f"{uid}.post_save", weak=False)
        post_delete.connect(_after_delete, sender=label, dispatch_uid=f"{uid}.post_delete", weak=False)


# --- verifying --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain: how many entries were checked and the first broken link."""

    entries: int
    head_sequence: int | None = None
    head_hash: str | None = None
    broken_id: int | None = None
    broken_sequence: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def verify_chain(*, chunk_size: int = 2000) -> ChainReport:
    """Walk every entry in sequence order: no gap in the sequence, each `prev_hash` equal to the hash
    of the entry before, each hash equal to the hash of the entry's content. Stops at the first
    broken link. (Removing the newest entries leaves a valid, shorter chain: keep the reported head
    hash somewhere else to detect that.)"""
    expected_sequence, previous_hash, count, last = 1, GENESIS_HASH, 0, None
    for entry in AuditEntry.objects.order_by("sequence").iterator(chunk_size=chunk_size):
        problem = ""
        if entry.sequence != expected_sequence:
            problem = f"gap: expected sequence {expected_sequence}, found {entry.sequence}"
        elif entry.prev_hash != previous_hash:
            problem = "prev_hash mismatch: it is not the hash of the entry before"
        else:
            computed = entry.compute_hash()
            if computed != entry.hash:
                problem = f"content hash mismatch: stored {entry.hash}, computed {computed}"
        if problem:
            return ChainReport(
                entries=count,
                head_sequence=last.sequence if last else None,
                head_hash=last.hash if last else None,
                broken_id=entry.pk,
                broken_sequence=entry.sequence,
                problem=problem,
            )
        count, last = count + 1, entry
        expected_sequence, previous_hash = entry.sequence + 1, entry.hash
    return ChainReport(
        entries=count,
        head_sequence=last.sequence if last else None,
        head_hash=last.hash if last else None,
    )


# --- reading ----------------------------------------------------------------------------------------


def audit_entries_for_principal(principal: Principal) -> models.QuerySet[AuditEntry]:
    """Entries the caller may read. Finance and admins: all of their organization's, and the shared
    model registry's (organization-less: prices and providers every budget depends on). Team leads:
    entries about their teams and their teams' members. Anyone else (members, API keys): refused."""
    if principal.api_key is not None or not (principal.org_wide or principal.lead_team_ids):
        raise PermissionDenied(
            "Only finance, admins and team leads may read the audit log.", code="audit_forbidden"
        )
    entries = AuditEntry.objects.all()
    if principal.org_wide:
        return entries.filter(Q(organization_id=principal.organization.pk) | Q(organization_id__isnull=True))
    members = Membership.objects.filter(team_id__in=principal.lead_team_ids).values("user_id")
    return entries.filter(organization_id=principal.organization.pk).filter(
        Q(team_id__in=principal.lead_team_ids) | Q(subject_user_id__in=members)
    )


def audit_entry_get(*, principal: Principal, entry_id: int) -> AuditEntry:
    entry = audit_entries_for_principal(principal).filter(pk=entry_id).first()
    if entry is None:
        raise NotFound(f"Audit entry {entry_id} not found.", code="unknown_audit_entry")
    return entry
