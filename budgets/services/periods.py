from datetime import datetime

from budgets.models import Budget, BudgetPeriod


def period_get_or_open(*, budget: Budget, moment: datetime) -> BudgetPeriod | None:
    """The period of `budget` that contains `moment`, opened on first use; None if the budget is
    not in force then. Safe under concurrency: the unique (budget, starts_at) constraint decides."""
    bounds = budget.period_bounds_at(moment)
    if bounds is None:
        return None
    starts_at, ends_at = bounds
    period, _ = BudgetPeriod.objects.get_or_create(
        budget=budget, starts_at=starts_at, defaults={"ends_at": ends_at, "limit": budget.limit}
    )
    return period
