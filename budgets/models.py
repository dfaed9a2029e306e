"""Scopes (organization -> team -> user), budgets with periods, and the append-only spend ledger.

Money rules live in `budgets.services`; these models hold fields, constraints and one-row properties.
"""

import zoneinfo
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from budgets.choices import (
    CarryOver,
    PeriodKind,
    ReservationState,
    Role,
    ScopeType,
    UsageOutcome,
    UsageSource,
)
from budgets.periods import period_bounds
from costswitch.money import money_field
from costswitch.ratelimit import per_minute_limit_field


def default_currency() -> str:
    return settings.COSTSWITCH_CURRENCY


def _validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.")


class AppendOnlyQuerySet(models.QuerySet):
    """Ledger rows are never edited or deleted: corrections are new, compensating rows."""

    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} rows are append-only")

    def delete(self):
        raise TypeError(f"{self.model.__name__} rows are append-only")


class Organization(models.Model):
    """The top scope: one company. Its time zone defines where budget periods start and end."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[_validate_timezone])
    log_prompts = models.BooleanField(
        default=False,
        help_text="Write the prompt text of this organization's requests to the logs (for debugging; "
        "prompts may hold personal or confidential data).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Team(models.Model):
    """A group of people (and service accounts) inside one organization that shares budgets."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization_id", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="team_unique_slug")]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person. Belongs to one organization (superusers may have none) and joins teams by Membership."""

    organization = models.ForeignKey(
        "budgets.Organization", on_delete=models.PROTECT, null=True, blank=True, related_name="users"
    )

    class Meta:
        ordering = ["username"]


class Membership(models.Model):
    """A user's role in a team. Finance and admin roles reach the whole organization."""

    user = models.ForeignKey("budgets.User", on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey("budgets.Team", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    is_primary = models.BooleanField(
        default=False, help_text="The team a user's own requests are charged to when none is named."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_primary=True), name="membership_one_primary_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.get_role_display()}"

    def clean(self) -> None:
        if self.user.organization_id != self.team.organization_id:
            raise ValidationError("A user can only join teams of their own organization.")


class ApiKey(models.Model):
    """A principal for services: bound to a team (service account) or a user. Only a hash is stored."""

    organization = models.ForeignKey(
        "budgets.Organization", on_delete=models.PROTECT, related_name="api_keys"
    )
    team = models.ForeignKey(
        "budgets.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="api_keys"
    )
    user = models.ForeignKey(
        "budgets.User", on_delete=models.PROTECT, null=True, blank=True, related_name="api_keys"
    )
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    critical = models.BooleanField(
        default=False, help_text="Critical systems may pass a blocked budget with an override."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    requests_per_minute = per_minute_limit_field(
        "API requests per minute with this key, across all processes."
    )
    tokens_per_minute = per_minute_limit_field(
        "Estimated tokens (input + expected output) per minute of the requests this key has admitted."
    )

    class Meta:
        ordering = ["organization_id", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(team__isnull=False) | Q(user__isnull=False), name="apikey_bound_to_team_or_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Budget(models.Model):
    """A spending limit on one scope for a recurring (or custom) period, with graduated thresholds."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="budgets")
    team = models.ForeignKey(
        "budgets.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="budgets"
    )
    user = models.ForeignKey(
        "budgets.User", on_delete=models.PROTECT, null=True, blank=True, related_name="budgets"
    )
    scope_type = models.CharField(max_length=20, choices=ScopeType.choices)
    name = models.CharField(max_length=200)
    period = models.CharField(max_length=20, choices=PeriodKind.choices, default=PeriodKind.MONTHLY)
    limit = money_field()
    currency = models.CharField(max_length=3, default=default_currency)
    starts_at = models.DateTimeField(help_text="No period of this budget starts before this moment.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Required for custom periods.")
    restricted_models = models.JSONField(
        default=list, blank=True, help_text="Model ids refused once a restrict-models threshold is crossed."
    )
    max_cost_per_request = money_field(
        null=True, blank=True, help_text="Per-request ceiling once a strict-cost-limit threshold is crossed."
    )
    carry_over = models.CharField(
        max_length=20,
        choices=CarryOver.choices,
        default=CarryOver.NONE,
        help_text="What a new period inherits from the one before it: nothing, or what was left unused.",
    )
    carry_over_cap = money_field(
        null=True, blank=True, help_text="At most this much is carried into a period (empty: no cap)."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "scope_type", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(limit__gte=0), name="budget_limit_not_negative"),
            models.CheckConstraint(
                condition=Q(carry_over_cap__isnull=True)
                | Q(carry_over=CarryOver.UNUSED, carry_over_cap__gte=0),
                name="budget_carry_over_cap_valid",
            ),
            models.CheckConstraint(
                condition=(
                    Q(scope_type=ScopeType.ORGANIZATION, team__isnull=True, user__isnull=True)
                    | Q(scope_type=ScopeType.TEAM, team__isnull=False, user__isnull=True)
                    | Q(scope_type=ScopeType.USER, team__isnull=True, user__isnull=False)
                ),
                name="budget_scope_matches_type",
            ),
        ]
        indexes = [models.Index(fields=["organization", "scope_type", "is_active"])]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_id(self) -> int:
        return {
            ScopeType.ORGANIZATION: self.organization_id,
            ScopeType.TEAM: self.team_id,
            ScopeType.USER: self.user_id,
        }[self.scope_type]

    def period_bounds_at(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """[start, end) of this budget's period containing `moment`; None when not in force then."""
        return period_bounds(
            self.period,
            moment,
            self.organization.tzinfo,
            budget_starts_at=self.starts_at,
            budget_ends_at=self.ends_at,
        )

    @property
    def scope_name(self) -> str:
        scope = {
            ScopeType.ORGANIZATION: self.organization,
            ScopeType.TEAM: self.team,
            ScopeType.USER: self.user,
        }
        return str(scope[self.scope_type])


class Threshold(models.Model):
    """At `percent` of the limit (spent + reserved), these actions apply."""

    budget = models.ForeignKey("budgets.Budget", on_delete=models.CASCADE, related_name="thresholds")
    percent = models.DecimalField(max_digits=6, decimal_places=2)
    actions = models.JSONField(default=list)

    class Meta:
        ordering = ["budget_id", "percent"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "percent"], name="threshold_unique_percent"),
            models.CheckConstraint(
                condition=Q(percent__gt=0, percent__lte=1000), name="threshold_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.percent}%: {', '.join(self.actions)}"


class BudgetPeriod(models.Model):
    """One period of a budget. `spent` and `reserved` are caches of the ledger and always equal it."""

    budget = models.ForeignKey("budgets.Budget", on_delete=models.PROTECT, related_name="periods")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    limit = money_field(help_text="The budget's limit plus `carried_over`.")
    spent = money_field(default=0)
    reserved = money_field(default=0)
    carried_over = money_field(
        default=0, help_text="Unused amount inherited from the period before; fixed when the period opens."
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["budget_id", "-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "starts_at"], name="period_unique_start"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="period_ends_after_start"
            ),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="period_reserved_not_negative"),
            models.CheckConstraint(condition=Q(carried_over__gte=0), name="period_carried_over_not_negative"),
        ]
        indexes = [models.Index(fields=["budget", "starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.budget} {self.starts_at:%Y-%m-%d}..{self.ends_at:%Y-%m-%d}"

    @property
    def committed(self):
        return self.spent + self.reserved

    @property
    def available(self):
        return self.limit - self.spent - self.reserved


class Reservation(models.Model):
    """A hold on the maximum cost of one request, on every budget period of the caller's chain."""

    organization = models.ForeignKey(
        "budgets.Organization", on_delete=models.PROTECT, related_name="reservations"
    )
    team = models.ForeignKey("budgets.Team", on_delete=models.PROTECT, null=True, blank=True)
    user = models.ForeignKey("budgets.User", on_delete=models.PROTECT, null=True, blank=True)
    api_key = models.ForeignKey("budgets.ApiKey", on_delete=models.PROTECT, null=True, blank=True)
    request_id = models.CharField(max_length=200)
    amount = money_field()
    model = models.CharField(max_length=200, blank=True)
    state = models.CharField(
        max_length=20, choices=ReservationState.choices, default=ReservationState.PENDING
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "request_id"], name="reservation_unique_request"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="reservation_amount_not_negative"),
        ]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"reservation {self.request_id} ({self.state})"


class ReservationHold(models.Model):
    """The part of a reservation held on one budget period."""

    reservation = models.ForeignKey("budgets.Reservation", on_delete=models.PROTECT, related_name="holds")
    period = models.ForeignKey("budgets.BudgetPeriod", on_delete=models.PROTECT, related_name="holds")
    amount = money_field()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reservation", "period"], name="hold_unique_period"),
        ]

    def __str__(self) -> str:
        return f"hold {self.amount} on period {self.period_id}"


# Usage rows that say how the call went (a success/failure, or a rating): what history and learning read.
WITH_OUTCOME = ~Q(outcome="") | Q(rating__isnull=False)


class UsageRecord(models.Model):
    """One charge in the append-only ledger: what a request really cost, and who it is attributed to."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="usage")
    team = models.ForeignKey("budgets.Team", on_delete=models.PROTECT, null=True, blank=True)
    user = models.ForeignKey("budgets.User", on_delete=models.PROTECT, null=True, blank=True)
    api_key = models.ForeignKey("budgets.ApiKey", on_delete=models.PROTECT, null=True, blank=True)
    reservation = models.OneToOneField(
        "budgets.Reservation", on_delete=models.PROTECT, null=True, blank=True, related_name="usage"
    )
    request_id = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=UsageSource.choices, default=UsageSource.DIRECT)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    cost = money_field()
    currency = models.CharField(max_length=3, default=default_currency)
    task_type = models.CharField(max_length=50, blank=True)
    project = models.CharField(max_length=200, blank=True)
    agent = models.CharField(max_length=200, blank=True)
    conversation_id = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=20, choices=UsageOutcome.choices, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 (bad) to 5 (excellent).")
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "request_id"], name="usage_unique_request"),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5), name="usage_rating_range"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "occurred_at"],
                condition=WITH_OUTCOME,
                name="usage_with_outcome",
            ),
            models.Index(fields=["organization", "occurred_at"]),
            models.Index(fields=["team", "occurred_at"]),
            models.Index(fields=["user", "occurred_at"]),
            models.Index(fields=["model", "occurred_at"]),
            # Conversation caps sum a conversation's spend on every gateway request that names one.
            models.Index(
                fields=["organization", "conversation_id"],
                condition=~Q(conversation_id=""),
                name="usage_by_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.model} {self.cost}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("UsageRecord rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("UsageRecord rows are append-only")


class UsageCharge(models.Model):
    """The share of a usage record booked on one budget period; a period's `spent` is their sum."""

    usage = models.ForeignKey("budgets.UsageRecord", on_delete=models.PROTECT, related_name="charges")
    period = models.ForeignKey("budgets.BudgetPeriod", on_delete=models.PROTECT, related_name="charges")
    amount = money_field()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["usage", "period"], name="charge_unique_period")]

    def __str__(self) -> str:
        return f"charge {self.amount} on period {self.period_id}"


class AlertKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold crossed"
    FORECAST = "forecast", "Projected to exceed the limit"
    EXHAUSTED = "exhausted", "Budget exhausted"
    EXTERNAL = "external", "Reported by an external system"


class Alert(models.Model):
    """Something budget owners must hear about, raised once: a threshold crossed, the limit
    reached (`exhausted`, threshold 100) or forecast to be reached, or an external system's alert.
    The partial unique constraints are what make "once per threshold per period" hold across
    processes; raising code inserts and treats a conflict as "already raised"."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.PROTECT, related_name="alerts")
    budget = models.ForeignKey("budgets.Budget", on_delete=models.PROTECT, related_name="alerts")
    period = models.ForeignKey(
        "budgets.BudgetPeriod", on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    threshold = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Percent of the limit; empty when n/a.",
    )
    percent_used = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="Spent + reserved, in percent of the limit, when raised."
    )
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        "budgets.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "kind", "threshold"],
                condition=Q(threshold__isnull=False),
                name="alert_once_per_threshold",
            ),
            models.UniqueConstraint(
                fields=["period", "kind"],
                condition=Q(threshold__isnull=True) & ~Q(kind="external"),
                name="alert_once_per_period",
            ),
        ]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.budget_id} ({self.created_at:%Y-%m-%d})"
