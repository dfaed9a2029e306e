"""Override requests: a caller asks to lift a budget restriction for a while, and approvers decide.

The workflow (who may approve, the state machine, what an approval changes) lives in
`approvals.services`; these models hold the fields, constraints and the choices.
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from costswitch.money import money_field

__all__ = [
    "ApprovalDecision",
    "ApprovalPolicy",
    "OverrideApproval",
    "OverrideKind",
    "OverrideRequest",
    "OverrideState",
    "ReviewState",
]


class OverrideKind(models.TextChoices):
    MODELS = "models", "Premium or restricted models"
    COST_CEILING = "cost_ceiling", "Higher per-request cost ceiling"
    UNBLOCK = "unblock", "Pass a blocked budget (critical systems)"
    EXTENSION = "extension", "Budget extension (extra money)"


class OverrideState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class ReviewState(models.TextChoices):
    """Emergency overrides are granted first and reviewed afterwards."""

    NONE = "", "Not reviewed (not an emergency)"
    PENDING_REVIEW = "pending_review", "Pending review"
    ACCEPTED = "accepted", "Accepted"
    FLAGGED = "flagged", "Flagged"


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class OverrideRequest(models.Model):
    """A request to lift one budget's restriction (models, cost ceiling, block) or add money to it,
    for a bounded time. It covers the requester's own calls (a person, or a team's service key and
    with it the team's callers: see `team` and `user`), on this budget only."""

    organization = models.ForeignKey(
        "budgets.Organization", on_delete=models.PROTECT, related_name="override_requests"
    )
    budget = models.ForeignKey("budgets.Budget", on_delete=models.PROTECT, related_name="override_requests")
    requested_by = models.ForeignKey(
        "budgets.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="override_requests",
        help_text="The person who asked (empty when an API key asked).",
    )
    requested_by_key = models.ForeignKey(
        "budgets.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="override_requests",
        help_text="The API key that asked (empty when a person asked in the web UI).",
    )
    team = models.ForeignKey(
        "budgets.Team",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Covers every caller charging this team (a team service key asked).",
    )
    user = models.ForeignKey(
        "budgets.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Covers this person's calls, with a session or her own keys (a person asked).",
    )
    kind = models.CharField(max_length=20, choices=OverrideKind.choices)
    approved_models = models.JSONField(
        default=list, blank=True, help_text="Model ids approved by name (kind models)."
    )
    cost_ceiling = money_field(null=True, blank=True, help_text="The per-request ceiling asked for.")
    extra_amount = money_field(null=True, blank=True, help_text="Extra money for the budget's period.")
    estimated_cost = money_field(
        null=True,
        blank=True,
        help_text="What the refused request would have cost (when a refusal asked for it).",
    )
    reason = models.TextField()
    duration_minutes = models.PositiveIntegerField(help_text="How long the override lasts once approved.")
    state = models.CharField(max_length=20, choices=OverrideState.choices, default=OverrideState.PENDING)
    emergency = models.BooleanField(default=False, help_text="Self-granted at once; reviewed afterwards.")
    review_state = models.CharField(max_length=20, choices=ReviewState.choices, default="", blank=True)
    reviewed_by = models.ForeignKey(
        "budgets.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    request_id = models.CharField(
        max_length=200, blank=True, help_text="The selection request whose refusal asked for this override."
    )
    extended_period = models.ForeignKey(
        "budgets.BudgetPeriod",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The period whose limit an approved extension raised.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        "budgets.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(
        help_text="When a pending request lapses, or when an approved override ends."
    )
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Expired or revoked at.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("grant_emergency_override", "Can self-grant an emergency override")]
        constraints = [
            models.CheckConstraint(
                condition=Q(requested_by__isnull=False) | Q(requested_by_key__isnull=False),
                name="override_has_requester",
            ),
            models.CheckConstraint(
                condition=Q(team__isnull=False) | Q(user__isnull=False), name="override_covers_someone"
            ),
            models.CheckConstraint(
                condition=Q(extra_amount__isnull=True) | Q(extra_amount__gt=0),
                name="override_extra_amount_positive",
            ),
            models.CheckConstraint(
                condition=Q(cost_ceiling__isnull=True) | Q(cost_ceiling__gt=0),
                name="override_cost_ceiling_positive",
            ),
        ]
        indexes = [
            # overrides_in_force: approved, unexpired overrides on the chain's budgets.
            models.Index(
                fields=["budget", "expires_at"], condition=Q(state="approved"), name="override_in_force"
            ),
            # The expiry sweep: pending or approved overrides past their time.
            models.Index(
                fields=["expires_at"], condition=Q(state__in=["pending", "approved"]), name="override_due"
            ),
            models.Index(fields=["organization", "state", "created_at"], name="override_org_state"),
        ]

    def __str__(self) -> str:
        return f"override {self.pk} ({self.get_kind_display()}, {self.state})"

    @property
    def cost_estimate(self) -> Decimal | None:
        """What approvers weigh: the refused request's estimated cost, or for an override asked by
        hand the per-request ceiling or extra amount it asks for (None for models asked by hand)."""
        if self.estimated_cost is not None:
            return self.estimated_cost
        return self.cost_ceiling if self.cost_ceiling is not None else self.extra_amount

    @property
    def cost_estimate_basis(self) -> str:
        """Where `cost_estimate` comes from: refused_request, asked_ceiling, asked_amount or ""."""
        if self.estimated_cost is not None:
            return "refused_request"
        if self.cost_ceiling is not None:
            return "asked_ceiling"
        return "asked_amount" if self.extra_amount is not None else ""


class OverrideApproval(models.Model):
    """One approver's decision on a request (an organization may need two approvals)."""

    override = models.ForeignKey(
        "approvals.OverrideRequest", on_delete=models.CASCADE, related_name="approvals"
    )
    approver = models.ForeignKey("budgets.User", on_delete=models.PROTECT, related_name="override_approvals")
    decision = models.CharField(max_length=10, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["override_id", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["override", "approver"], name="approval_unique_approver")
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision}s override {self.override_id}"


class ApprovalPolicy(models.Model):
    """How an organization approves overrides. Without a row: one approver for everything."""

    organization = models.OneToOneField(
        "budgets.Organization", on_delete=models.CASCADE, related_name="approval_policy"
    )
    two_approvers_above = money_field(
        null=True,
        blank=True,
        help_text="Budget extensions of more than this amount need two different approvers "
        "(empty: one approver is always enough).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(two_approvers_above__isnull=True) | Q(two_approvers_above__gte=0),
                name="policy_amount_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"approval policy of {self.organization}"
