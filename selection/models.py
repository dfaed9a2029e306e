"""Steering rule sets (versioned YAML) and the decisions the engine made, for the explainer."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from budgets.models import ApiKey, Organization, Reservation, Team, User
from costswitch.money import money_field
from selection.choices import DecisionOutcome, Priority, Strategy


class RuleSetVersion(models.Model):
    """One published version of an organization's steering rules. Versions are never edited: a
    change publishes a new one, and the newest version is the one in force."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="rule_sets")
    version = models.PositiveIntegerField()
    source = models.TextField(help_text="The rules in YAML (rules: - name, priority, when, then).")
    rule_count = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "version"], name="ruleset_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.organization} rules v{self.version}"


class Decision(models.Model):
    """One admission: what was asked, what was chosen and why, and what it reserved.

    `candidates` holds every eligible model with its component scores; `rejections` every model a
    hard filter removed and why; `changes` the rules and thresholds that changed the choice."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="decisions")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    user = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    requested_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person asking (no key).",
    )
    request_id = models.CharField(max_length=200)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the request, to refuse a reused id."
    )
    path = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=DecisionOutcome.choices)
    refusal_code = models.CharField(max_length=50, blank=True)
    refusal_message = models.TextField(blank=True)
    requested_model = models.CharField(max_length=200, blank=True)
    selected_model = models.CharField(max_length=200, blank=True)
    strategy = models.CharField(max_length=20, choices=Strategy.choices)
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.NORMAL)
    task_type = models.CharField(max_length=50)
    complexity = models.FloatField()
    quality_requirement = models.PositiveSmallIntegerField()
    estimated_cost = money_field(null=True, blank=True)
    requested_model_cost = money_field(
        null=True, blank=True, help_text="What the requested (or default) model would have cost: savings."
    )
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reservation = models.OneToOneField(
        Reservation, on_delete=models.PROTECT, null=True, blank=True, related_name="decision"
    )
    rule_set = models.ForeignKey(
        RuleSetVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="decisions"
    )
    rule_name = models.CharField(max_length=100, blank=True)
    fallback_chain = models.JSONField(default=list, blank=True)
    changes = models.JSONField(default=list, blank=True)
    candidates = models.JSONField(default=list, blank=True)
    rejections = models.JSONField(default=list, blank=True)
    weights = models.JSONField(default=dict, blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    budget = models.JSONField(
        default=dict, blank=True, help_text="The budget snapshot the choice was made on."
    )
    latency_us = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "request_id"]),
            models.Index(
                fields=["team", "-created_at"], condition=Q(team__isnull=False), name="decision_team"
            ),
        ]

    def __str__(self) -> str:
        return f"decision {self.pk}: {self.selected_model or self.refusal_code}"

    @property
    def savings(self):
        if self.requested_model_cost is None or self.estimated_cost is None:
            return None
        return self.requested_model_cost - self.estimated_cost


class LearnedOutcomeModel(models.Model):
    """One model's learned P(success | request text) for one organization (selection.learning),
    trained from reported outcomes by the periodic `learn_from_outcomes` task. Admission reads it
    through an in-process cache keyed by the organization's `OutcomeLearningState.version`."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200, help_text="The registry model id the outcomes were for.")
    weights = models.BinaryField(help_text="selection.learning.OutcomeModel.to_bytes().")
    samples = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "model"], name="learned_outcome_unique_model"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id}/{self.model}: {self.samples} outcomes"


class OutcomeLearningState(models.Model):
    """How far an organization's outcome models have learned: the ledger row (UsageRecord id) up to
    which outcomes are learned, and a version bumped whenever the weights change. The row is locked
    while training, so concurrent runs never learn one outcome twice."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    watermark = models.BigIntegerField(default=0, help_text="Highest UsageRecord id learned from.")
    version = models.PositiveIntegerField(default=0)
    learned = models.PositiveIntegerField(default=0, help_text="Outcomes learned in total.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organization_id}: v{self.version} up to usage {self.watermark}"
