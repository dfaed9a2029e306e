"""What the sync and async clients share: building requests, reading answers, the retry policy and
pricing a call from its tokens. Nothing here does I/O, so both clients behave the same."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .errors import ConnectionFailed, CostSwitchError, RateLimited, error_class
from .results import Prices, Selection, UsageRecord

API = "/api/v1"
MILLION = Decimal(1_000_000)
MONEY_QUANTUM = Decimal("0.000000001")  # the ledger's 9 decimal places
USER_AGENT = "costswitch-python/0.1"
# Answers worth another try: nothing was done (429, 503), or a proxy in between may have lost the
# answer (502, 504). Every call is idempotent by its request id, so a retry never charges twice.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Transport failures worth another try. A broken connection or a read timeout may hide an answer the
# server did write; the request id makes the retry a replay of it.
RETRY_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def new_request_id() -> str:
    return f"cs-{uuid.uuid4().hex}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A string keeps every digit (a JSON float would not); the API reads money strings exactly.
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(body: Any) -> bytes:
    return json.dumps(body, default=_plain, separators=(",", ":")).encode()


def decode(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal) if content else None


def compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """Leave out what was not given: the API refuses unknown keys but takes missing optional ones."""
    return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Prepared:
    """One API call, built once so every retry sends exactly the same bytes."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None

    @property
    def content(self) -> bytes | None:
        return None if self.body is None else encode(self.body)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter; a `Retry-After` the server sends wins, up to `max_wait`."""

    max_retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_wait: float = 60.0

    def backoff_delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)

    def after_error(self, attempt: int) -> float | None:
        return self.backoff_delay(attempt) if attempt < self.max_retries else None

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        if attempt >= self.max_retries or response.status_code not in RETRY_STATUSES:
            return None
        wait = retry_after(response)
        if wait is None:
            return self.backoff_delay(attempt)
        return wait if wait <= self.max_wait else None


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (either form the RFC allows), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def error_from_response(response: httpx.Response, prepared: Prepared) -> CostSwitchError:
    try:
        body = decode(response.content)
    except ValueError:
        body = None
    status = response.status_code
    if isinstance(body, dict) and "code" in body:
        code, message, details = body["code"], body.get("message") or "", body.get("details") or {}
    else:  # not the API's own error (a proxy in between, a crash page)
        code, message, details = "http_error", f"HTTP {status}: {response.text[:200]}", {}
    cls = error_class(status, code)
    kwargs = {
        "status": status,
        "code": code,
        "details": details if isinstance(details, dict) else {"errors": details},
        "request_id": prepared.request_id,
        "body": body,
    }
    if cls is RateLimited:
        wait = retry_after(response)
        if wait is None and isinstance(details, dict):
            wait = details.get("retryAfter")
        return RateLimited(message, retry_after=float(wait) if wait is not None else None, **kwargs)
    return cls(message, **kwargs)


def connection_failed(error: Exception, prepared: Prepared) -> ConnectionFailed:
    return ConnectionFailed(
        f"{prepared.method} {prepared.path} failed: {type(error).__name__}: {error}",
        code="connection_failed",
        request_id=prepared.request_id,
    )


# --- requests ---------------------------------------------------------------------------------------


def chat_body(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | None,
    max_tokens: int | None,
    tools: Sequence[Mapping[str, Any]] | None,
    task_type: str | None,
    response_format: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return compact(
        {
            **(params or {}),
            "model": model,
            "messages": list(messages),
            "maxTokens": max_tokens,
            "tools": list(tools) if tools is not None else None,
            "taskType": task_type,
            "responseFormat": response_format,
        }
    )


def select_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    strategy: str | None = None,
    quality: int | str | None = None,
    request_id: str | None = None,
    max_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    task_type: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    priority: str | None = None,
    max_cost: Decimal | None = None,
    tags: Sequence[str] | None = None,
    team_id: int | None = None,
    user_id: int | None = None,
    ttl_seconds: int | None = None,
    request_override: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Prepared:
    request_id = request_id or new_request_id()
    override = None
    if request_override is not None:
        override = compact(
            {
                "reason": request_override.get("reason"),
                "durationMinutes": request_override.get("duration_minutes"),
                "extraAmount": request_override.get("extra_amount"),
            }
        )
    body = compact(
        {
            "request": chat_body(
                messages,
                model=model,
                max_tokens=max_tokens,
                tools=tools,
                task_type=task_type,
                response_format=response_format,
                params=params,
            ),
            "requestId": request_id,
            "strategy": strategy,
            "qualityRequirement": quality,
            "priority": priority,
            "maxCost": max_cost,
            "tags": list(tags) if tags is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "teamId": team_id,
            "userId": user_id,
            "ttlSeconds": ttl_seconds,
            "requestOverride": override,
        }
    )
    return Prepared("POST", f"{API}/models/select", body, request_id=request_id)


def estimate_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    alternatives: Sequence[str] = (),
    max_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    task_type: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Prepared:
    body = {
        "request": chat_body(
            messages,
            model=model,
            max_tokens=max_tokens,
            tools=tools,
            task_type=task_type,
            response_format=response_format,
            params=params,
        ),
        "alternatives": list(alternatives),
    }
    return Prepared("POST", f"{API}/models/estimate", body)


# Usage details both a usage report and a settle take, snake_case -> the API's camelCase.
USAGE_FIELDS = {
    "cost": "cost",
    "model": "model",
    "provider": "provider",
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "cached_input_tokens": "cachedInputTokens",
    "task_type": "taskType",
    "project": "project",
    "agent": "agent",
    "conversation_id": "conversationId",
    "tags": "tags",
    "metadata": "metadata",
    "outcome": "outcome",
    "rating": "rating",
}
REPORT_FIELDS = {
    **USAGE_FIELDS,
    "request_id": "requestId",
    "occurred_at": "occurredAt",
    "team_id": "teamId",
    "user_id": "userId",
    "currency": "currency",
}


def usage_item(report: Mapping[str, Any], names: Mapping[str, str] = REPORT_FIELDS) -> dict[str, Any]:
    unknown = set(report) - set(names)
    if unknown:
        raise TypeError(f"Unknown usage field(s): {', '.join(sorted(unknown))}.")
    if isinstance(report.get("cost"), float):
        raise TypeError("cost must be a Decimal, an int or a string: a float cannot hold money exactly.")
    return compact({names[k]: v for k, v in report.items()})


def usage_request(report: Mapping[str, Any]) -> Prepared:
    """One usage report; a request id is made up when not given, so a retry is recognised."""
    report = {**report, "request_id": report.get("request_id") or new_request_id()}
    body = usage_item(report)
    return Prepared(
        "POST",
        f"{API}/usage",
        body,
        headers={"Idempotency-Key": body["requestId"]},
        request_id=body["requestId"],
    )


def usage_batch_request(reports: Sequence[Mapping[str, Any]]) -> Prepared:
    items = [usage_item({**r, "request_id": r.get("request_id") or new_request_id()}) for r in reports]
    return Prepared("POST", f"{API}/usage", {"items": items})


def settle_request(reservation_id: int, details: Mapping[str, Any]) -> Prepared:
    return Prepared(
        "POST", f"{API}/reservations/{int(reservation_id)}/settle", usage_item(details, USAGE_FIELDS)
    )


def release_request(reservation_id: int) -> Prepared:
    return Prepared("POST", f"{API}/reservations/{int(reservation_id)}/release")


def budget_status_request(budget_id: int) -> Prepared:
    return Prepared("GET", f"{API}/budgets/{int(budget_id)}/status")


def scope_status_request(scope_type: str, scope_id: int) -> Prepared:
    return Prepared("GET", f"{API}/budgets/status/{scope_type}/{int(scope_id)}")


def model_request(model_id: str) -> Prepared:
    return Prepared("GET", f"{API}/models/{model_id}")


# --- pricing ----------------------------------------------------------------------------------------


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def cost_of(
    prices: Prices, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> Decimal:
    """A call's cost at list prices, rounded as the server rounds it (each part to 9 decimals,
    banker's rounding), so a settle priced here equals the server's own estimate for the same tokens."""
    if min(input_tokens, output_tokens, cached_input_tokens) < 0 or cached_input_tokens > input_tokens:
        raise ValueError("Token counts must be >= 0 and cached tokens cannot exceed input tokens.")
    cached_price = prices.cached_input_per_million
    if cached_price is None:
        cached_price = prices.input_per_million
    uncached = input_tokens - cached_input_tokens
    input_cost = (uncached * prices.input_per_million + cached_input_tokens * cached_price) / MILLION
    output_cost = output_tokens * prices.output_per_million / MILLION
    return _money(input_cost) + _money(output_cost)


# --- the select -> call -> settle context manager ---------------------------------------------------


@dataclass
class CallState:
    """What a `call()` block learned: the selection and the usage its body reported."""

    select: Prepared
    selection: Any = None
    report: dict[str, Any] | None = None
    settled: Any = None
    released: Any = None

    def usage(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cost: Decimal | None = None,
        model: str | None = None,
        provider: str | None = None,
        outcome: str | None = "success",
        **details: Any,
    ) -> None:
        """Record what the LLM call used; the block's exit settles it. `model` is the model really
        called when it was not the selected one (your own failover); `cost` is worked out from the
        model's list prices when not given."""
        unknown = set(details) - set(USAGE_FIELDS)
        if unknown:
            raise TypeError(f"Unknown usage field(s): {', '.join(sorted(unknown))}.")
        self.report = {
            **details,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached_input_tokens,
            "cost": cost,
            "model": model,
            "provider": provider,
            "outcome": outcome,
        }

    def settle_details(self) -> dict[str, Any]:
        """The reported usage as a settle body: the model really called (the selected one unless the
        body named another), with the selection's provider when it is the selected model."""
        selection = self.selection
        model = self.report["model"] or selection.selected_model
        details = {**self.report, "model": model}
        if details["provider"] is None and model == selection.selected_model:
            details["provider"] = selection.provider
        return details

    def not_reported(self) -> CostSwitchError:
        return CostSwitchError(
            "The call block ended without call.usage(...): its hold was released and nothing was "
            "charged. Report the usage, or raise to mark the call as not made.",
            code="usage_not_reported",
            request_id=self.select.request_id,
        )


class CallBlock:
    """What `Call` and `AsyncCall` share: the selection made on entering the block and the usage its
    body reports. Only entering and leaving the block differ (blocking or awaited)."""

    _state: CallState

    @property
    def selection(self) -> Selection:
        return self._state.selection

    @property
    def model(self) -> str:
        return self._state.selection.selected_model

    @property
    def provider(self) -> str | None:
        return self._state.selection.provider

    @property
    def request_id(self) -> str:
        return self._state.select.request_id

    @property
    def record(self) -> UsageRecord | None:
        """The ledger row written when the block settled."""
        return self._state.settled

    def usage(self, **usage: Any) -> None:
        self._state.usage(**usage)
