"""Reads of the approvals app. `overrides_in_force` is the hook the selection engine asks before it
applies a budget restriction: an approved override lifts it for the caller, at once."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from budgets.principals import Principal


@dataclass(frozen=True)
class OverridesInForce:
    """What approved overrides allow one caller right now, across the budgets of its chain."""

    models: frozenset[str] = frozenset()  # premium or restricted models approved by name
    cost_ceiling: Decimal | None = None  # a per-request limit raised to this amount
    unblock: bool = False  # an exhausted or blocked budget may be passed (critical systems)
    override_ids: tuple[int, ...] = ()

    NONE: ClassVar["OverridesInForce"]


OverridesInForce.NONE = OverridesInForce()


def overrides_in_force(
    *, principal: Principal, budget_ids: Collection[int], now: datetime | None = None
) -> OverridesInForce:
    """Approved, unexpired overrides on these budgets for this caller.

    Override requests, approval and emergency self-grants are not built yet (the approvals issue);
    until they are, nothing is ever approved, so nothing is lifted. Selection already calls this
    on every admission, so an approval will take effect at the next request without a restart.
    """
    return OverridesInForce.NONE
