"""The audit log: one append-only, hash-chained row per change or decision (see `approvals.audit`)."""

import hashlib
import json
from datetime import UTC

from django.db import models

from budgets.models import AppendOnlyQuerySet

__all__ = ["AuditActorType", "AuditEntry"]

# The `prev_hash` of the first entry.
GENESIS_HASH = "0" * 64


class AuditActorType(models.TextChoices):
    USER = "user", "User"
    API_KEY = "api_key", "API key"
    SYSTEM = "system", "System"


class AuditEntry(models.Model):
    """Who did what to which object, when, why and in which request, with the values before and after.

    Rows hold ids and labels, not foreign keys: an entry outlives whatever it names and nothing
    deleted elsewhere may cascade into (or null out) the log. Each row carries the hash of the row
    before it and its own hash over all its fields, so editing or removing one breaks the chain
    (`manage.py verify_audit`). Rows are never updated or deleted through the ORM or the admin.
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(editable=False)
    actor_type = models.CharField(max_length=20, choices=AuditActorType.choices, editable=False)
    actor_id = models.CharField(max_length=64, blank=True, editable=False)
    actor_label = models.CharField(max_length=200, blank=True, editable=False)
    action = models.CharField(max_length=100, editable=False)
    object_type = models.CharField(max_length=100, editable=False, help_text="app_label.model")
    object_id = models.CharField(max_length=100, blank=True, editable=False)
    object_repr = models.CharField(max_length=200, blank=True, editable=False)
    organization_id = models.BigIntegerField(null=True, blank=True, editable=False)
    team_id = models.BigIntegerField(null=True, blank=True, editable=False)
    subject_user_id = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="The user the object belongs to, if any."
    )
    before = models.JSONField(null=True, blank=True, editable=False)
    after = models.JSONField(null=True, blank=True, editable=False)
    reason = models.TextField(blank=True, editable=False)
    request_id = models.CharField(max_length=200, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["organization_id", "-sequence"], name="audit_org_seq"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["request_id"], name="audit_request"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_repr or self.object_type}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("AuditEntry rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("AuditEntry rows are append-only")

    def compute_hash(self) -> str:
        """SHA-256 over a canonical JSON of every field but `hash` itself, `prev_hash` included."""
        payload = {
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor": [self.actor_type, self.actor_id, self.actor_label],
            "action": self.action,
            "object": [self.object_type, self.object_id, self.object_repr],
            "organization_id": self.organization_id,
            "team_id": self.team_id,
            "subject_user_id": self.subject_user_id,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "request_id": self.request_id,
            "prev_hash": self.prev_hash,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
