from datetime import datetime

from budgets.models import Budget, BudgetPeriod
from budgets.periods import period_bounds


def period_get_or_open(*, budget: Budget, moment: datetime) -> BudgetPeriod | None:
    """The period of `budget` that contains `moment`, opened on first use; None if the budget is
    not in force then. Safe under concurrency: the unique (budget, starts_at) constraint decides."""
    bounds = period_bounds(
        budget.period,
        moment,
        budget.organization.tzinfo,
        budget_starts_at=budget.starts_at,
        budget_ends_at=budget.ends_at,
    )
    if bounds is None:
        return None
    starts_at, ends_at = bounds
    period, _ = BudgetPeriod.objects.get_or_create(
        budget=budget, starts_at=starts_at, defaults={"ends_at": ends_at, "limit": budget.limit}
    )
    return period
