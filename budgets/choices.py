from django.db import models


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    TEAM_LEAD = "team_lead", "Team lead"
    FINANCE = "finance", "Finance"
    ADMIN = "admin", "Admin"


ORG_WIDE_ROLES = frozenset({Role.FINANCE, Role.ADMIN})


class ScopeType(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    TEAM = "team", "Team"
    USER = "user", "User"


class PeriodKind(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    YEARLY = "yearly", "Yearly"
    CUSTOM = "custom", "Custom"


class ThresholdAction(models.TextChoices):
    NOTIFY = "notify", "Notify"
    PREFER_CHEAPER = "prefer-cheaper", "Prefer cost-effective models"
    RESTRICT_MODELS = "restrict-models", "Enforce cost-effective models"
    REQUIRE_APPROVAL = "require-approval", "Require approval for expensive models"
    STRICT_COST_LIMIT = "strict-cost-limit", "Strict per-request cost limit"
    BLOCK_NON_ESSENTIAL = "block-non-essential", "Block non-essential usage"
    BLOCK = "block", "Block all but critical"


# The graduated response of the planning documents (DESIGN.md section 3); each budget may redefine it.
DEFAULT_THRESHOLDS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (50, (ThresholdAction.NOTIFY,)),
    (70, (ThresholdAction.NOTIFY, ThresholdAction.PREFER_CHEAPER)),
    (85, (ThresholdAction.NOTIFY, ThresholdAction.RESTRICT_MODELS, ThresholdAction.REQUIRE_APPROVAL)),
    (95, (ThresholdAction.NOTIFY, ThresholdAction.STRICT_COST_LIMIT, ThresholdAction.BLOCK_NON_ESSENTIAL)),
    (100, (ThresholdAction.NOTIFY, ThresholdAction.BLOCK)),
)


class CarryOver(models.TextChoices):
    """What a new period inherits from the one before it (see budgets/services/periods.py)."""

    NONE = "none", "None"
    UNUSED = "unused", "Unused amount (up to the cap)"


class BudgetStatus(models.TextChoices):
    """Ordered from best to worst; an aggregate status is the worst of its parts."""

    NORMAL = "normal", "Normal"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    EXHAUSTED = "exhausted", "Exhausted"


STATUS_ORDER = [BudgetStatus.NORMAL, BudgetStatus.WARNING, BudgetStatus.CRITICAL, BudgetStatus.EXHAUSTED]


class ReservationState(models.TextChoices):
    PENDING = "pending", "Pending"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class UsageOutcome(models.TextChoices):
    """How a call went, as its caller judged it; feeds the selection engine's history score."""

    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class UsageSource(models.TextChoices):
    RESERVATION = "reservation", "Settled reservation"
    DIRECT = "direct", "Reported directly"
    BATCH = "batch", "Batch ingestion"
    WEBHOOK = "webhook", "Webhook"
    ADJUSTMENT = "adjustment", "Compensating adjustment"
