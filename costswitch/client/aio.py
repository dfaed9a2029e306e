"""The asyncio client: the same API as `CostSwitch` on one pooled httpx.AsyncClient (keep the
two in step: they differ only in await)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from . import _core
from .errors import CostSwitchError
from .results import (
    BudgetStatus,
    Estimate,
    Prices,
    Reservation,
    ScopeStatus,
    Selection,
    UsageBatch,
    UsageRecord,
)

logger = logging.getLogger("costswitch.client")
PRICE_TTL_SECONDS = 300.0


class AsyncCostSwitch:
    """Ask costswitch which model to use, hold its cost, and report what the call really cost.

    Use it as an async context manager (or await `close()`) so its pooled connections are closed:

        async with AsyncCostSwitch("https://costswitch.example.com", api_key) as cs:
            async with cs.call(messages, model="auto", strategy="cost_optimized") as call:
                reply = await llm(call.model, messages)
                call.usage(input_tokens=reply.prompt_tokens, output_tokens=reply.completion_tokens)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retry: _core.RetryPolicy | None = None,
        max_retries: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.retry = retry or _core.RetryPolicy()
        if max_retries is not None:
            self.retry = _core.RetryPolicy(**{**self.retry.__dict__, "max_retries": max_retries})
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": _core.USER_AGENT,
            },
        )
        self._prices: dict[str, tuple[Prices, float]] = {}

    async def __aenter__(self) -> AsyncCostSwitch:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- the API --------------------------------------------------------------------------------------

    async def select(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Selection:
        """Choose a model and hold its maximum cost on the budgets (POST /api/v1/models/select).

        Options: model ("auto" or a registry id), strategy, quality, request_id, max_tokens, tools,
        task_type, response_format, metadata, priority, max_cost, tags, team_id, user_id,
        ttl_seconds, request_override ({"reason", "duration_minutes", "extra_amount"}), params (other
        OpenAI parameters). Refusals raise BudgetExceeded, ApprovalRequired, BudgetBlocked, ...
        """
        return Selection.from_json(await self._send(_core.select_request(messages, **options)))

    async def estimate(
        self, messages: Sequence[Mapping[str, Any]], *, model: str | None = None, **options: Any
    ) -> Estimate:
        """Price a request on `model` and `alternatives` without reserving anything."""
        return Estimate.from_json(await self._send(_core.estimate_request(messages, model=model, **options)))

    async def report_usage(self, **report: Any) -> UsageRecord:
        """Record a call made without a reservation (POST /api/v1/usage). Needs model and cost; a
        request id is generated when not given and reused by retries, so it is charged once."""
        return UsageRecord.from_json(await self._send(_core.usage_request(report)))

    async def report_usage_batch(self, reports: Sequence[Mapping[str, Any]]) -> UsageBatch:
        """Record many calls at once; items already recorded (same request id) are not charged again."""
        return UsageBatch.from_json(await self._send(_core.usage_batch_request(reports)))

    async def settle(self, reservation_id: int, **usage: Any) -> UsageRecord:
        """Write a reserved call's real cost and free the rest of the hold. Needs `cost`, or use
        `settle_tokens()` to price it from the token counts."""
        return UsageRecord.from_json(await self._send(_core.settle_request(reservation_id, usage)))

    async def settle_tokens(
        self,
        reservation_id: int,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        **usage: Any,
    ) -> UsageRecord:
        """Settle at `model`'s list prices for these tokens."""
        prices = await self.prices(model)
        cost = _core.cost_of(
            prices,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
        )
        usage = {k: v for k, v in usage.items() if v is not None}
        return await self.settle(
            reservation_id,
            **{**usage, "provider": usage.get("provider") or prices.provider},
            model=model,
            cost=cost,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
        )

    async def release(self, reservation_id: int) -> Reservation:
        """Drop a hold whose call was not made. Releasing twice is harmless."""
        return Reservation.from_json(await self._send(_core.release_request(reservation_id)))

    async def budget_status(self, budget_id: int) -> BudgetStatus:
        return BudgetStatus.from_json(await self._send(_core.budget_status_request(budget_id)))

    async def scope_status(self, scope_type: str, scope_id: int) -> ScopeStatus:
        """All budgets of a scope ("organization", "team", "user") and their aggregate status."""
        return ScopeStatus.from_json(await self._send(_core.scope_status_request(scope_type, scope_id)))

    async def prices(self, model_id: str) -> Prices:
        """A model's list prices, kept for a few minutes (they change rarely)."""
        cached = self._prices.get(model_id)
        if cached is not None and time.monotonic() - cached[1] < PRICE_TTL_SECONDS:
            return cached[0]
        prices = Prices.from_json(await self._send(_core.model_request(model_id)))
        self._prices[model_id] = (prices, time.monotonic())
        return prices

    def call(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> AsyncCall:
        """`async with cs.call(messages, ...) as call:` selects (holding the cost) on entry; the block calls
        the LLM with `call.model` and reports `call.usage(...)`; leaving the block settles it, or
        releases the hold if the block raised before reporting usage. Options are select()'s."""
        return AsyncCall(self, _core.select_request(messages, **options))

    # --- transport ------------------------------------------------------------------------------------

    async def _send(self, prepared: _core.Prepared) -> Any:
        """Send with retries: the same bytes (and request id) every time, so a retry is a replay."""
        content = prepared.content
        headers = {**prepared.headers}
        if content is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    prepared.method, prepared.path, content=content, params=prepared.params, headers=headers
                )
            except _core.RETRY_ERRORS as error:
                delay = self.retry.after_error(attempt)
                if delay is None:
                    raise _core.connection_failed(error, prepared) from error
                logger.info("costswitch %s %s: %s, retrying", prepared.method, prepared.path, error)
            else:
                if response.is_success:
                    return _core.decode(response.content)
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    raise _core.error_from_response(response, prepared)
                logger.info("costswitch %s %s: %s, retrying", prepared.method, prepared.path, response)
            await asyncio.sleep(delay)
            attempt += 1


class AsyncCall(_core.CallBlock):
    """One select -> LLM call -> settle round trip (see `AsyncCostSwitch.call`)."""

    def __init__(self, client: AsyncCostSwitch, select: _core.Prepared):
        self._client = client
        self._state = _core.CallState(select=select)

    async def __aenter__(self) -> AsyncCall:
        self._state.selection = Selection.from_json(await self._client._send(self._state.select))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        state = self._state
        reservation_id = state.selection.reservation_id
        if reservation_id is None:
            return
        try:
            if state.report is not None:  # the call happened (and cost money), whatever came after
                state.settled = await self._settle(reservation_id)
            else:
                state.released = await self._client.release(reservation_id)
        except CostSwitchError:
            if exc is None:
                raise
            # Never hide the block's own error; an unfinished hold expires on its own.
            logger.exception("costswitch: could not finish reservation %s", reservation_id)
        if exc is None and state.report is None:
            raise state.not_reported()

    async def _settle(self, reservation_id: int) -> UsageRecord:
        details = self._state.settle_details()
        if details["cost"] is None:
            return await self._client.settle_tokens(
                reservation_id, **{k: v for k, v in details.items() if k != "cost"}
            )
        return await self._client.settle(reservation_id, **details)
