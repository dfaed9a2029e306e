"""Reconciliation: runs that compare the ledger with itself (internal) or with a provider's usage
export (external), the discrepancies they find, the compensating entries that fix them, and the
sync history (one batch per imported file or cost-data webhook).

The ledger itself is never edited: a discrepancy that is adjusted points at its compensating
UsageRecord (source `adjustment`). Money rules live in `analytics.reconciliation`.
"""

from django.db import models
from django.db.models import Q

from costswitch.money import money_field


class RunKind(models.TextChoices):
    INTERNAL = "internal", "Internal (cached aggregates against the ledger)"
    EXTERNAL = "external", "External (provider export against the ledger)"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class DiscrepancyKind(models.TextChoices):
    MISSING_HERE = "missing_here", "Missing here (the provider billed it, the ledger lacks it)"
    MISSING_THERE = "missing_there", "Missing there (the ledger has it, the provider does not)"
    COST_DIFFERS = "cost_differs", "Cost differs"
    DRIFT = "drift", "Cached aggregate drifted from the ledger"


class DiscrepancyStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class SyncSource(models.TextChoices):
    WEBHOOK = "webhook", "Cost-data webhook"
    UPLOAD = "upload", "API upload"
    FILE = "file", "File (manage.py import_usage)"


class ExportProvider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    OTHER = "other", "Other (costswitch line format)"


class SyncStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class ReconciliationRun(models.Model):
    """One reconciliation of one organization. External runs belong to a sync batch; internal runs
    are keyed by the Celery task that ran them, so a redelivered task continues the same run."""

    organization = models.ForeignKey(
        "budgets.Organization", on_delete=models.PROTECT, related_name="reconciliation_runs"
    )
    kind = models.CharField(max_length=20, choices=RunKind.choices)
    source = models.CharField(max_length=50, help_text="`ledger`, or the provider of the export.")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    task_key = models.CharField(
        max_length=200, blank=True, help_text="The Celery task id (or command run) that owns the run."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lines_seen = models.PositiveIntegerField(default=0, help_text="Export lines or periods checked.")
    lines_matched = models.PositiveIntegerField(default=0)
    discrepancy_count = models.PositiveIntegerField(default=0)
    adjusted_count = models.PositiveIntegerField(default=0)
    ours_total = money_field(default=0, help_text="What the ledger says, over the lines checked.")
    theirs_total = money_field(default=0, help_text="What the provider (or the ledger rows) says.")
    adjusted_total = money_field(default=0, help_text="Sum of the compensating entries written.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "task_key"], condition=~Q(task_key=""), name="run_once_per_task"
            )
        ]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk} ({self.status})"


class SyncBatch(models.Model):
    """Sync history: one imported export (file, upload or cost-data webhook), stored raw before it
    is processed, with what processing made of it."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20, choices=ExportProvider.choices)
    source = models.CharField(max_length=20, choices=SyncSource.choices)
    format = models.CharField(max_length=30, help_text="The export shape that was recognized.")
    inbound_webhook = models.OneToOneField(
        "costswitch.InboundWebhook",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sync_batch",
    )
    filename = models.CharField(max_length=255, blank=True)
    raw = models.TextField(blank=True, help_text="The export as received (webhooks: see the delivery).")
    run = models.OneToOneField("analytics.ReconciliationRun", on_delete=models.PROTECT, related_name="batch")
    status = models.CharField(max_length=20, choices=SyncStatus.choices, default=SyncStatus.RECEIVED)
    rows_seen = models.PositiveIntegerField(default=0)
    rows_matched = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(
        default=0, help_text="Lines the ledger lacked, now recorded as compensating entries."
    )
    errors = models.JSONField(default=list, blank=True, help_text="Lines that could not be used, and why.")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "sync batches"
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.get_source_display()} batch {self.pk}"


class Discrepancy(models.Model):
    """A difference between the ledger and the provider (or a cached aggregate and the ledger).

    `fingerprint` is unique per organization and derived from what was compared (the external line
    and both amounts), so a run that is repeated, redelivered or run concurrently records each
    difference, and writes its compensating entry, once."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey(
        "analytics.ReconciliationRun", on_delete=models.PROTECT, related_name="discrepancies"
    )
    kind = models.CharField(max_length=20, choices=DiscrepancyKind.choices)
    status = models.CharField(
        max_length=20, choices=DiscrepancyStatus.choices, default=DiscrepancyStatus.OPEN
    )
    fingerprint = models.CharField(max_length=64)
    external_key = models.CharField(max_length=300, blank=True, help_text="The provider line compared.")
    request_id = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    usage = models.ForeignKey(
        "budgets.UsageRecord",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Our usage record, when the line matched exactly one.",
    )
    period = models.ForeignKey(
        "budgets.BudgetPeriod", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ours = money_field(null=True, blank=True)
    theirs = money_field(null=True, blank=True)
    difference = money_field(default=0, help_text="theirs - ours.")
    adjustment = models.OneToOneField(
        "budgets.UsageRecord",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The compensating entry written for it, if any.",
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "discrepancies"
        constraints = [
            models.UniqueConstraint(fields=["organization", "fingerprint"], name="discrepancy_once"),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "kind"]),
            models.Index(fields=["organization", "external_key"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.difference}"


class ExternalAccount(models.Model):
    """Maps a provider-side project, API key or workspace id to the team (and user) its usage is
    charged to when an export shows usage the ledger lacks. Unmapped usage goes to the organization."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20, choices=ExportProvider.choices)
    external_id = models.CharField(max_length=200, help_text="e.g. proj_abc, key_abc or wrkspc_abc.")
    team = models.ForeignKey(
        "budgets.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        "budgets.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["organization_id", "provider", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "external_id"], name="external_account_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.external_id}"


class DailySpend(models.Model):
    """The daily spend rollup: ledger figures of one local day (the organization's time zone) per
    combination of the dimensions breakdowns group by. Rebuilt from the ledger by
    `analytics.rollup` (the ledger stays the source of truth); conversations and tags are not
    kept (too many values, or a record counting under several), those answers stay ledger-only."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="Local date in the organization's time zone.")
    team = models.ForeignKey(
        "budgets.Team",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    user = models.ForeignKey(
        "budgets.User",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    api_key = models.ForeignKey(
        "budgets.ApiKey",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    task_type = models.CharField(max_length=50, blank=True)
    project = models.CharField(max_length=200, blank=True)
    agent = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = money_field(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.model}: {self.cost}"


class DailySpendDay(models.Model):
    """Marks one local day of one organization as rolled up: selectors read that day from
    `DailySpend` only when the marker exists and was built in the organization's current time zone."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    timezone = models.CharField(max_length=64)
    built_at = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0, help_text="DailySpend rows written for the day.")

    class Meta:
        ordering = ["organization_id", "day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="daily_spend_day_once")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day} built {self.built_at:%Y-%m-%d %H:%M}"
