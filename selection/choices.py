from django.db import models


class Strategy(models.TextChoices):
    """How cost and quality trade off. Ordered from thriftiest to most generous."""

    COST_OPTIMIZED = "cost_optimized", "Cost optimized (cheapest model meeting the quality requirement)"
    BALANCED = "balanced", "Balanced"
    QUALITY_FIRST = "quality_first", "Quality first"


# A budget that asks to prefer cheaper models moves the strategy one step towards cost.
THRIFTIER = {
    Strategy.QUALITY_FIRST: Strategy.BALANCED,
    Strategy.BALANCED: Strategy.COST_OPTIMIZED,
    Strategy.COST_OPTIMIZED: Strategy.COST_OPTIMIZED,
}


class Priority(models.TextChoices):
    """How much a request matters to its caller. Above 95% of a budget only essential requests
    (high, critical) pass; at 100% only critical ones with an override."""

    LOW = "low", "Low (background)"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High (essential)"
    CRITICAL = "critical", "Critical"


ESSENTIAL_PRIORITIES = frozenset({Priority.HIGH, Priority.CRITICAL})


class QualityLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    MAX = "max", "Best available"


# Minimum quality score (0-100, for the request's task type) per named level. "max" means the best
# score among the models that pass the hard filters.
QUALITY_LEVEL_SCORES = {QualityLevel.LOW: 60, QualityLevel.MEDIUM: 75, QualityLevel.HIGH: 85}


class Tier(models.TextChoices):
    """Price class of a model for one request (seed 004's utility / standard / premium models)."""

    SIMPLE = "simple", "Simple (utility)"
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"


class DecisionOutcome(models.TextChoices):
    ADMITTED = "admitted", "Admitted"
    REFUSED = "refused", "Refused"
