"""Typed answers of the costswitch API. Money is Decimal (the JSON is read with parse_float=Decimal),
timestamps are aware datetimes, and `raw` keeps the whole camelCase body for anything not typed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


def money(value: Any) -> Decimal | None:
    """An amount from the JSON body as an exact Decimal (ints and Decimals only: never a float)."""
    if value is None:
        return None
    if isinstance(value, dict):  # {"amount": ..., "currency": ...}
        return money(value.get("amount"))
    if isinstance(value, float):  # not produced by our decoder; str() keeps what was printed
        return Decimal(str(value))
    return Decimal(value)


def moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class FallbackStep:
    model_id: str
    estimated_cost: Decimal | None


@dataclass(frozen=True)
class Selection:
    """POST /api/v1/models/select: the model to call and the hold taken on the budgets for it."""

    request_id: str
    decision_id: int
    selected_model: str
    provider: str | None
    reservation_id: int | None
    reservation_expires_at: datetime | None
    estimated_cost: Decimal | None
    currency: str | None
    estimated_input_tokens: int | None
    estimated_output_tokens: int | None
    task_type: str | None
    strategy: str | None
    quality_requirement: int | str | None
    tier: str | None
    fallback_chain: tuple[FallbackStep, ...]
    budget_status: str | None
    budget_impact: str | None
    savings: Decimal | None
    rule: str | None
    changes: tuple[dict, ...]
    alternatives: tuple[dict, ...]
    replayed: bool
    raw: dict = field(repr=False, compare=False)

    @property
    def model(self) -> str:
        return self.selected_model

    @classmethod
    def from_json(cls, body: dict) -> Selection:
        cost = body.get("estimatedCost") or {}
        tokens = body.get("estimatedTokens") or {}
        impact = body.get("budgetImpact") or {}
        return cls(
            request_id=body["requestId"],
            decision_id=body["decisionId"],
            selected_model=body["selectedModel"],
            provider=body.get("provider"),
            reservation_id=body.get("reservationId"),
            reservation_expires_at=moment(body.get("reservationExpiresAt")),
            estimated_cost=money(cost.get("amount")),
            currency=cost.get("currency"),
            estimated_input_tokens=tokens.get("input"),
            estimated_output_tokens=tokens.get("output"),
            task_type=body.get("taskType"),
            strategy=body.get("strategy"),
            quality_requirement=body.get("qualityRequirement"),
            tier=body.get("tier"),
            fallback_chain=tuple(
                FallbackStep(step["modelId"], money(step.get("estimatedCost")))
                for step in body.get("fallbackChain") or []
            ),
            budget_status=impact.get("budgetStatus"),
            budget_impact=impact.get("status"),
            savings=money(body.get("savings")),
            rule=body.get("rule"),
            changes=tuple(body.get("changes") or []),
            alternatives=tuple(body.get("alternatives") or []),
            replayed=bool(body.get("replayed")),
            raw=body,
        )


@dataclass(frozen=True)
class ModelEstimate:
    model: str
    provider: str | None
    estimated_cost: Decimal
    estimated_tokens: int
    input_tokens: int
    output_tokens: int
    input_cost: Decimal | None
    output_cost: Decimal | None
    budget_impact: str | None
    fits_context: bool | None
    quality: int | None
    active: bool | None


@dataclass(frozen=True)
class Estimate:
    """POST /api/v1/models/estimate: the request priced on each model; nothing reserved."""

    task_type: str | None
    currency: str | None
    estimates: tuple[ModelEstimate, ...]
    recommendation: str | None
    budget_status: dict | None
    raw: dict = field(repr=False, compare=False)

    def cost_of(self, model: str) -> Decimal:
        for item in self.estimates:
            if item.model == model:
                return item.estimated_cost
        raise KeyError(model)

    @classmethod
    def from_json(cls, body: dict) -> Estimate:
        return cls(
            task_type=body.get("taskType"),
            currency=body.get("currency"),
            estimates=tuple(
                ModelEstimate(
                    model=e["model"],
                    provider=e.get("provider"),
                    estimated_cost=money(e["estimatedCost"]),
                    estimated_tokens=e.get("estimatedTokens"),
                    input_tokens=e.get("inputTokens"),
                    output_tokens=e.get("outputTokens"),
                    input_cost=money(e.get("inputCost")),
                    output_cost=money(e.get("outputCost")),
                    budget_impact=e.get("budgetImpact"),
                    fits_context=e.get("fitsContext"),
                    quality=e.get("quality"),
                    active=e.get("active"),
                )
                for e in body.get("estimates") or []
            ),
            recommendation=body.get("recommendation"),
            budget_status=body.get("budgetStatus"),
            raw=body,
        )


@dataclass(frozen=True)
class UsageRecord:
    """One ledger row: what a call cost (from a usage report or a settled reservation)."""

    id: int
    request_id: str
    model: str
    provider: str
    cost: Decimal
    currency: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reservation_id: int | None
    outcome: str
    occurred_at: datetime | None
    replayed: bool
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict, *, replayed: bool | None = None) -> UsageRecord:
        return cls(
            id=body["id"],
            request_id=body["requestId"],
            model=body.get("model") or "",
            provider=body.get("provider") or "",
            cost=money(body["cost"]),
            currency=body.get("currency"),
            input_tokens=body.get("inputTokens") or 0,
            output_tokens=body.get("outputTokens") or 0,
            cached_input_tokens=body.get("cachedInputTokens") or 0,
            reservation_id=body.get("reservationId"),
            outcome=body.get("outcome") or "",
            occurred_at=moment(body.get("occurredAt")),
            replayed=bool(body.get("replayed")) if replayed is None else replayed,
            raw=body,
        )


@dataclass(frozen=True)
class UsageBatch:
    """POST /api/v1/usage with a list: how many rows were new and how many were retries."""

    created: int
    replayed: int
    items: tuple[UsageRecord, ...]

    @classmethod
    def from_json(cls, body: dict) -> UsageBatch:
        return cls(
            created=body["created"],
            replayed=body["replayed"],
            items=tuple(UsageRecord.from_json(item, replayed=False) for item in body["items"]),
        )


@dataclass(frozen=True)
class Reservation:
    """A hold on the budgets: pending until settled, released or expired."""

    reservation_id: int
    request_id: str
    state: str
    amount: Decimal
    model: str
    expires_at: datetime | None
    finished_at: datetime | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict) -> Reservation:
        return cls(
            reservation_id=body["reservationId"],
            request_id=body["requestId"],
            state=body["state"],
            amount=money(body["amount"]),
            model=body.get("model") or "",
            expires_at=moment(body.get("expiresAt")),
            finished_at=moment(body.get("finishedAt")),
            raw=body,
        )


@dataclass(frozen=True)
class BudgetStatus:
    """One budget's current period (seed contract: currentAmount, limit, percentUsed, ...)."""

    budget_id: int
    name: str
    scope_type: str
    scope_id: int
    status: str
    currency: str
    limit: Decimal
    current_amount: Decimal
    reserved: Decimal
    remaining: Decimal
    percent_used: Decimal
    days_remaining: int | None
    burn_rate: Decimal | None
    projected_total: Decimal | None
    active_alerts: tuple[dict, ...]
    cost_restrictions: dict
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict) -> BudgetStatus:
        return cls(
            budget_id=body["budgetId"],
            name=body["name"],
            scope_type=body["scopeType"],
            scope_id=body["scopeId"],
            status=body["status"],
            currency=body["currency"],
            limit=money(body["limit"]),
            current_amount=money(body["currentAmount"]),
            reserved=money(body["reserved"]),
            remaining=money(body["remaining"]),
            percent_used=money(body["percentUsed"]),
            days_remaining=body.get("daysRemaining"),
            burn_rate=money(body.get("burnRate")),
            projected_total=money(body.get("projectedTotal")),
            active_alerts=tuple(body.get("activeAlerts") or []),
            cost_restrictions=body.get("costRestrictions") or {},
            raw=body,
        )


@dataclass(frozen=True)
class ScopeStatus:
    """A scope's budgets and the strictest status among them (seed 001)."""

    scope_type: str
    scope_id: int
    aggregate_status: str
    budgets: tuple[BudgetStatus, ...]
    cost_restrictions: dict
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict) -> ScopeStatus:
        return cls(
            scope_type=body["scopeType"],
            scope_id=body["scopeId"],
            aggregate_status=body["aggregateStatus"],
            budgets=tuple(BudgetStatus.from_json(b) for b in body.get("budgets") or []),
            cost_restrictions=body.get("costRestrictions") or {},
            raw=body,
        )


@dataclass(frozen=True)
class Prices:
    """A model's list prices per 1M tokens, to price a settle from token counts."""

    model_id: str
    provider: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None

    @classmethod
    def from_json(cls, body: dict) -> Prices:
        return cls(
            model_id=body["id"],
            provider=body.get("provider") or "",
            input_per_million=money(body["inputPricePerMillion"]),
            output_per_million=money(body["outputPricePerMillion"]),
            cached_input_per_million=money(body.get("cachedInputPricePerMillion")),
        )
