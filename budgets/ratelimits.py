"""Rate limits of an admission: the API key's tokens per minute and each model's requests and tokens
per minute, checked and taken together in one Redis round trip (`costswitch.ratelimit`, GCRA).

The selection flow calls `admission_rate_limit` once, after ranking and before reserving: it walks
the ranked models in order and takes the first one within its own limits, together with the key's
tokens, all or nothing. So a model over its limit is skipped (selection falls back to the next one)
and consumes nothing, and a request refused by every model takes nothing from the key's quota.

The limits come in as numbers (the ApiKey row authentication loaded, the in-process registry
snapshot): no database query. The key's requests per minute are a DRF throttle
(`costswitch.api.throttling`), checked before the view runs.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from costswitch import ratelimit
from costswitch.errors import RateLimited
from costswitch.ratelimit import Bucket, Verdict

# Rate-limited models tried per admission, best first: when this many in a row are over their limits
# the request is refused (429) rather than walking the whole registry (each costs Redis work).
MAX_MODELS_TRIED = 8


@dataclass(frozen=True)
class ModelDemand:
    """One ranked model: the tokens this request needs on it and its limits (None: unlimited)."""

    model_id: str
    tokens: int
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def limited(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def buckets(self) -> list[Bucket]:
        buckets = []
        if self.requests_per_minute:
            buckets.append(Bucket(ratelimit.model_bucket(self.model_id, "rpm"), self.requests_per_minute))
        if self.tokens_per_minute and self.tokens > 0:
            buckets.append(
                Bucket(ratelimit.model_bucket(self.model_id, "tpm"), self.tokens_per_minute, self.tokens)
            )
        return buckets


@dataclass(frozen=True)
class AdmissionRateLimit:
    """`index`: the position (in the demands given) of the model to use, whose quota and the key's
    tokens are taken; None when refused, then `error` is the 429 to raise. `skipped`: the models tried
    before it (all of them when refused) that are over their limits, with why."""

    index: int | None
    skipped: dict[str, Verdict] = field(default_factory=dict)
    error: RateLimited | None = None
    taken: tuple[Bucket, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.index is not None

    def reason(self, model_id: str) -> str:
        """A rejection reason for a skipped model, for the decision log."""
        return limit_reason(self.skipped[model_id])

    def refund(self) -> None:
        """Give back what this admission took, when the request is refused after all (budget)."""
        ratelimit.refund(self.taken)


def admission_rate_limit(
    *, api_key, tokens: int, demands: Iterable[ModelDemand], consume: bool = True
) -> AdmissionRateLimit:
    """Pick the first of `demands` (ranked, best first) within its limits and take its quota with
    `tokens` from the key's tokens per minute; one Redis round trip, none when nothing is limited.
    At most MAX_MODELS_TRIED models are tried.

    `api_key`: the principal's ApiKey or None (session); only `pk` and `tokens_per_minute` are read.
    `tokens`: the request's estimate for the key (input + expected output tokens). `consume=False`
    answers without taking anything (explaining a hypothetical request). `demands` is read only up
    to the first model without limits, so it may be a generator over the whole ranking."""
    demands = _tried(demands)
    if not demands:
        raise ValueError("admission_rate_limit needs at least one ranked model")
    key_limit = getattr(api_key, "tokens_per_minute", None) if api_key is not None else None
    common = []
    if key_limit and tokens > 0:
        common.append(Bucket(ratelimit.api_key_bucket(api_key.pk, "tpm"), key_limit, tokens))
    if not common and not demands[0].limited:
        return AdmissionRateLimit(index=0)
    options = [demand.buckets() for demand in demands]
    choice = ratelimit.acquire_first(options, common=common, dry_run=not consume)
    if choice.common is not None:
        return AdmissionRateLimit(index=None, error=_key_refusal(choice.common, tokens))
    skipped = {
        demands[at].model_id: verdict for at, verdict in enumerate(choice.verdicts) if not verdict.allowed
    }
    if choice.index is None:
        return AdmissionRateLimit(index=None, skipped=skipped, error=_models_refusal(skipped, choice))
    taken = () if not consume else (*common, *options[choice.index])
    return AdmissionRateLimit(index=choice.index, skipped=skipped, taken=taken)


def _tried(demands: Iterable[ModelDemand]) -> list[ModelDemand]:
    """The demands up to and with the first unlimited one (it always passes: nothing after it can be
    needed), at most MAX_MODELS_TRIED."""
    tried = []
    for demand in demands:
        tried.append(demand)
        if not demand.limited or len(tried) == MAX_MODELS_TRIED:
            break
    return tried


def limit_reason(verdict: Verdict) -> str:
    unit = _unit(verdict)
    if verdict.exceeds_limit:
        return f"needs more {unit} than its limit of {verdict.limit} {unit} per minute"
    return (
        f"over its limit of {verdict.limit} {unit} per minute (retry in {math.ceil(verdict.retry_after)} s)"
    )


def _unit(verdict: Verdict) -> str:
    return "tokens" if (verdict.key or "").endswith(":tpm") else "requests"


def _key_refusal(verdict: Verdict, tokens: int) -> RateLimited:
    if verdict.exceeds_limit:
        message = (
            f"This request needs about {tokens} tokens, more than this API key's limit of "
            f"{verdict.limit} tokens per minute; it cannot pass until the limit is raised."
        )
    else:
        message = (
            f"This API key is over its limit of {verdict.limit} tokens per minute; "
            f"retry in {math.ceil(verdict.retry_after)} s."
        )
    return RateLimited(
        message,
        retry_after=verdict.retry_after,
        limit=verdict.limit,
        scope="api_key",
        details={"unit": "tokens", "tokens": tokens},
    )


def _models_refusal(skipped: dict[str, Verdict], choice: ratelimit.Choice) -> RateLimited:
    retry_after = choice.retry_after
    seconds = max(math.ceil(retry_after), 1)
    return RateLimited(
        f"Every model that fits this request is at its rate limit; retry in {seconds} s.",
        retry_after=retry_after,
        scope="model",
        details={
            "models": [
                {
                    "model": model_id,
                    "unit": _unit(verdict),
                    "limit": verdict.limit,
                    "retry_after": round(verdict.retry_after, 3),
                    "exceeds_limit": verdict.exceeds_limit,
                }
                for model_id, verdict in skipped.items()
            ]
        },
    )
