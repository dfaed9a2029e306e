"""Python client for the costswitch API: pick a model, hold its cost, report what the call cost.

Only httpx and the standard library: the package imports nothing of Django or the costswitch apps,
so a service can vendor this folder as it is.

    from costswitch.client import CostSwitch

    with CostSwitch(base_url, api_key) as cs, cs.call(messages, model="auto") as call:
        reply = my_llm(call.model, messages)
        call.usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
"""

from ._core import RetryPolicy, cost_of
from .aio import AsyncCall, AsyncCostSwitch
from .errors import (
    ApprovalRequired,
    AuthenticationFailed,
    BudgetBlocked,
    BudgetExceeded,
    BudgetRefusal,
    Conflict,
    ConnectionFailed,
    CostSwitchError,
    NoEligibleModel,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    ValidationError,
)
from .results import (
    BudgetStatus,
    Estimate,
    FallbackStep,
    ModelEstimate,
    Prices,
    Reservation,
    ScopeStatus,
    Selection,
    UsageBatch,
    UsageRecord,
)
from .sync import Call, CostSwitch

__all__ = [
    "ApprovalRequired",
    "AsyncCall",
    "AsyncCostSwitch",
    "AuthenticationFailed",
    "BudgetBlocked",
    "BudgetExceeded",
    "BudgetRefusal",
    "BudgetStatus",
    "Call",
    "Conflict",
    "ConnectionFailed",
    "CostSwitch",
    "CostSwitchError",
    "Estimate",
    "FallbackStep",
    "ModelEstimate",
    "NoEligibleModel",
    "NotFound",
    "PermissionDenied",
    "Prices",
    "RateLimited",
    "Reservation",
    "RetryPolicy",
    "ScopeStatus",
    "Selection",
    "ServiceUnavailable",
    "UsageBatch",
    "UsageRecord",
    "ValidationError",
    "cost_of",
]
