"""Rate limits shared by every app process: a GCRA limiter run as one Redis Lua script.

Semantics (GCRA, "generic cell rate algorithm", burst = limit). A bucket allows `limit` units (requests,
or tokens) per `period` seconds (60 for the per-minute limits). Each unit costs `period / limit`
seconds of a virtual schedule kept in Redis (the "theoretical arrival time", TAT). A request of
`cost` units passes when, after it, the schedule is at most one period ahead of now:

- a fresh bucket admits `limit` units at once (the burst) and refuses the next one: "exactly N";
- it then refills continuously, one unit every `period / limit` seconds, so the sustained rate is
  `limit` per period; the worst case in one sliding period is a full burst plus the refill (just
  under 2 x limit), never more;
- a refused request consumes nothing and says when it would pass (`retry_after`, seconds);
- a request whose cost alone is above the limit (e.g. more tokens than a per-minute token limit)
  can never pass: it is refused with `exceeds_limit=True`.

One script call is one Redis round trip and is atomic across processes: it reads the clock from
Redis (`TIME`, so app servers' clocks do not matter), checks every bucket asked for and consumes
only when all of them allow (`acquire_many`). `acquire_first` tries several alternatives in order
(e.g. the ranked models of a selection) and consumes the first one whose buckets all allow, still
in one round trip. `dry_run=True` answers the same question without consuming.

Without `REDIS_URL` (the embedded default of `make run`) an in-process limiter with the same
semantics is used: limits then hold per process, not across processes.

When Redis is unreachable the limiter fails OPEN: it logs a warning and allows. Rate limits protect
providers' quotas and the service from floods; budgets are protected by the PostgreSQL ledger
(`reservation_authorize`), never by this limiter, so a Redis outage cannot overspend a budget. After
a failure Redis is left alone for a few seconds, so an outage does not add a timeout to every request.
"""

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from costswitch.outages import Backoff

logger = logging.getLogger(__name__)

KEY_PREFIX = "cs:rl:"
# A rate limiter must answer fast or not at all: past these, the request is allowed (fail open).
REDIS_TIMEOUT_SECONDS = 0.25
# After a Redis failure, skip Redis (allow) for this long before trying again.
REDIS_RETRY_SECONDS = 2.0


def per_minute_limit_field(help_text: str) -> models.PositiveIntegerField:
    """A model field for a per-minute limit; empty means unlimited."""
    return models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text=f"{help_text} Empty: unlimited."
    )


def api_key_bucket(api_key_id: int, what: str) -> str:
    """Bucket names, one place: `what` is "rpm" (requests) or "tpm" (tokens)."""
    return f"key:{api_key_id}:{what}"


def model_bucket(model_id: str, what: str) -> str:
    return f"model:{model_id}:{what}"


@dataclass(frozen=True)
class Bucket:
    """`cost` units against `limit` per `period` seconds in the bucket named `key`."""

    key: str
    limit: int
    cost: int = 1
    period: float = 60.0

    def __post_init__(self):
        if self.limit < 1 or self.period <= 0:
            raise ValueError(f"A rate limit needs limit >= 1 and period > 0, got {self.limit}/{self.period}s")


@dataclass(frozen=True)
class Verdict:
    """The answer for one request (one alternative of `acquire_first`).

    `retry_after`: seconds until the same request would pass (0 when allowed). `remaining`: units
    still free after this request in its tightest bucket (when refused: free now). `key` and
    `limit`: that tightest bucket, or the bucket that refused. `enforced` is False when the limiter
    failed open (Redis unreachable)."""

    allowed: bool
    retry_after: float = 0.0
    remaining: int = 0
    key: str | None = None
    limit: int | None = None
    exceeds_limit: bool = False
    enforced: bool = True


ALLOWED = Verdict(allowed=True)


@dataclass(frozen=True)
class Choice:
    """The outcome of `acquire_first`.

    `index`: the alternative consumed (None: none was). `verdicts`: one per alternative tried, in
    order (alternatives after the consumed one are not tried). When the common buckets refuse on
    their own, no alternative is tried: `common` holds that refusal and `verdicts` is empty."""

    index: int | None
    verdicts: tuple[Verdict, ...] = ()
    common: Verdict | None = None

    @property
    def allowed(self) -> bool:
        return self.index is not None

    @property
    def retry_after(self) -> float:
        """When refused: the soonest a retry could pass (alternatives that never can count only
        when no other is left)."""
        if self.common is not None:
            return self.common.retry_after
        waits = [v.retry_after for v in self.verdicts if not v.exceeds_limit]
        return min(waits or [v.retry_after for v in self.verdicts], default=0.0)


# KEYS: the distinct buckets. ARGV[1]: JSON {"d": dry_run 0/1, "b": [[limit, period_us], ...] (one per
# KEY), "c": [[bucket, cost], ...] (common), "o": [[[bucket, cost], ...], ...] (alternatives, in
# order)}; buckets count from 1. Returns a flat list: first 1 when the common buckets refuse on
# their own (then one verdict follows) or 0, then per alternative tried one verdict: allowed (0/1),
# retry_after_us, remaining, bucket (refusing or tightest; 0: none), exceeds_limit (0/1).
# It stops at the first alternative that is allowed with the common buckets, and stores both
# (unless dry). A TAT is stored in microseconds as a "%.17g" string (exact) and expires when it is
# reached, as a bucket whose TAT is in the past is full. A negative cost gives units back (`refund`).
_SCRIPT = """
-- Writes after TIME need effects replication: the default since Redis 5, asked for on older ones.
if redis.replicate_commands then redis.replicate_commands() end
local spec = cjson.decode(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local slack = 1  -- one microsecond: floating-point rounding must never refuse the Nth request
local tats = {}
local function tat_of(i)
  if tats[i] == nil then
    local stored = redis.call('GET', KEYS[i])
    tats[i] = stored and tonumber(stored) or 0
  end
  return math.max(tats[i], now)
end
local function left(i, tat)
  local limit, period = spec.b[i][1], spec.b[i][2]
  return math.max(math.floor((period - (tat - now) + slack) / (period / limit)), 0)
end
-- One alternative (with the common buckets): ok, its verdict fields, and the new TATs if ok.
local function evaluate(list)
  local costs, order = {}, {}
  for _, pair in ipairs(list) do
    local i = pair[1]
    if costs[i] == nil then costs[i] = 0; order[#order + 1] = i end
    costs[i] = costs[i] + pair[2]
  end
  local ok, wait, exceeds, refuser = true, 0, 0, 0
  local remaining, tightest = nil, 0
  local new = {}
  for _, i in ipairs(order) do
    local cost = costs[i]
    if cost ~= 0 then
      local limit, period = spec.b[i][1], spec.b[i][2]
      local new_tat = tat_of(i) + cost * period / limit
      if cost > limit then
        if exceeds == 0 then refuser = i end
        ok = false; exceeds = 1
      elseif new_tat - period - now > slack then
        local late = new_tat - period - now
        if exceeds == 0 and late > wait then refuser = i; wait = late end
        ok = false
      else
        new[i] = new_tat
        local free = left(i, new_tat)
        if remaining == nil or free < remaining then remaining = free; tightest = i end
      end
    end
  end
  if ok then return true, {1, 0, remaining or 0, tightest, 0}, new end
  return false, {0, math.ceil(wait), left(refuser, tat_of(refuser)), refuser, exceeds}, nil
end
local function append(out, verdict)
  for _, value in ipairs(verdict) do out[#out + 1] = value end
end
if #spec.c > 0 then
  local ok, verdict = evaluate(spec.c)
  if not ok then
    local out = {1}
    append(out, verdict)
    return out
  end
end
local out = {0}
for _, option in ipairs(spec.o) do
  local list = {}
  for _, pair in ipairs(spec.c) do list[#list + 1] = pair end
  for _, pair in ipairs(option) do list[#list + 1] = pair end
  local ok, verdict, new = evaluate(list)
  append(out, verdict)
  if ok then
    if spec.d == 0 then
      for i, value in pairs(new) do
        if value > now then
          redis.call('SET', KEYS[i], string.format('%.17g', value), 'PX', math.ceil((value - now) / 1000) + 1)
        else
          redis.call('DEL', KEYS[i])
        end
      end
    end
    return out
  end
end
return out
"""


class _Plan:
    """Buckets flattened for the script: the distinct buckets, then (bucket index, cost) pairs."""

    def __init__(self, options: Sequence[Sequence[Bucket]], common: Sequence[Bucket]):
        self.buckets: list[Bucket] = []
        self._positions: dict[str, int] = {}
        self.common = self._pairs(common)
        self.options = [self._pairs(option) for option in options]

    def _pairs(self, buckets: Sequence[Bucket]) -> list[tuple[int, int]]:
        pairs = []
        for bucket in buckets:
            index = self._positions.get(bucket.key)
            if index is None:
                index = self._positions[bucket.key] = len(self.buckets)
                self.buckets.append(bucket)
            elif (self.buckets[index].limit, self.buckets[index].period) != (bucket.limit, bucket.period):
                raise ValueError(f"Bucket {bucket.key!r} is given two different limits")
            pairs.append((index, bucket.cost))
        return pairs

    def verdict(self, allowed, wait: float, remaining: int, index: int | None, exceeds) -> Verdict:
        """`wait` in seconds; `index` the refusing (or tightest) bucket, None when no bucket counted."""
        bucket = self.buckets[index] if index is not None else None
        if allowed:
            retry_after = 0.0
        elif exceeds:
            retry_after = bucket.period  # it never passes; a Retry-After header still needs a number
        else:
            retry_after = wait
        return Verdict(
            allowed=bool(allowed),
            retry_after=retry_after,
            remaining=int(remaining),
            key=bucket.key if bucket else None,
            limit=bucket.limit if bucket else None,
            exceeds_limit=bool(exceeds),
        )


class LocalLimiter:
    """The same GCRA in this process only (no REDIS_URL): limits hold per process."""

    MAX_BUCKETS = 100_000
    SLACK = 1e-6  # as the script's one microsecond

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire_first(
        self, options: Sequence[Sequence[Bucket]], *, common: Sequence[Bucket] = (), dry_run: bool = False
    ) -> Choice:
        plan = _Plan(options, common)
        with self._lock:
            now = self._clock()
            if len(self._tats) > self.MAX_BUCKETS:
                self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
            if plan.common:
                verdict, _ = self._evaluate(plan, plan.common, now)
                if not verdict.allowed:
                    return Choice(None, common=verdict)
            verdicts = []
            for index, pairs in enumerate(plan.options):
                verdict, new = self._evaluate(plan, plan.common + pairs, now)
                verdicts.append(verdict)
                if verdict.allowed:
                    if not dry_run:
                        for key, tat in new.items():
                            if tat > now:
                                self._tats[key] = tat
                            else:
                                self._tats.pop(key, None)
                    return Choice(index, tuple(verdicts))
        return Choice(None, tuple(verdicts))

    def _evaluate(self, plan: _Plan, pairs, now: float) -> tuple[Verdict, dict[str, float]]:
        def tat_of(bucket: Bucket) -> float:
            return max(self._tats.get(bucket.key, 0.0), now)

        def left(bucket: Bucket, tat: float) -> int:
            interval = bucket.period / bucket.limit
            return max(math.floor((bucket.period - (tat - now) + self.SLACK) / interval), 0)

        costs: dict[int, int] = {}
        for index, cost in pairs:
            costs[index] = costs.get(index, 0) + cost
        ok, wait, exceeds, refuser = True, 0.0, False, None
        remaining, tightest = None, None
        new: dict[str, float] = {}
        for index, cost in costs.items():
            if cost == 0:
                continue
            bucket = plan.buckets[index]
            new_tat = tat_of(bucket) + cost * bucket.period / bucket.limit
            late = new_tat - bucket.period - now
            if cost > bucket.limit:
                if not exceeds:
                    refuser = index
                ok, exceeds = False, True
            elif late > self.SLACK:
                if not exceeds and late > wait:
                    refuser, wait = index, late
                ok = False
            else:
                new[bucket.key] = new_tat
                free = left(bucket, new_tat)
                if remaining is None or free < remaining:
                    remaining, tightest = free, index
        if ok:
            return plan.verdict(True, 0.0, remaining or 0, tightest, False), new
        bucket = plan.buckets[refuser]
        return plan.verdict(False, wait, left(bucket, tat_of(bucket)), refuser, exceeds), {}


class RedisLimiter:
    """GCRA in Redis: one client and connection pool per process, the script registered once."""

    def __init__(self, url: str, *, prefix: str = KEY_PREFIX):
        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._script = self._client.register_script(_SCRIPT)
        self._backoff = Backoff(REDIS_RETRY_SECONDS)

    def acquire_first(
        self, options: Sequence[Sequence[Bucket]], *, common: Sequence[Bucket] = (), dry_run: bool = False
    ) -> Choice:
        plan = _Plan(options, common)
        if not plan.options:
            return Choice(None)
        if not plan.buckets:
            return Choice(0, (ALLOWED,))
        if self._backoff.waiting:
            return _open()
        spec = {
            "d": int(dry_run),
            "b": [[bucket.limit, bucket.period * 1_000_000] for bucket in plan.buckets],
            "c": [[index + 1, cost] for index, cost in plan.common],
            "o": [[[index + 1, cost] for index, cost in pairs] for pairs in plan.options],
        }
        try:
            raw = self._script(keys=[self.prefix + b.key for b in plan.buckets], args=[json.dumps(spec)])
        except redis.RedisError as exc:
            self._backoff.start()
            logger.warning(
                "Rate limiter: Redis unavailable (%s: %s); allowing requests unchecked for %.0f s",
                type(exc).__name__,
                exc,
                REDIS_RETRY_SECONDS,
            )
            return _open()
        common_refused, raw = raw[0], raw[1:]
        verdicts = tuple(
            plan.verdict(
                allowed,
                wait / 1_000_000,
                remaining,
                index - 1 if index else None,  # Lua counts from 1; 0 means no bucket counted
                exceeds,
            )
            for allowed, wait, remaining, index, exceeds in zip(*[iter(raw)] * 5, strict=True)
        )
        if common_refused:
            return Choice(None, common=verdicts[0])
        return Choice(len(verdicts) - 1 if verdicts[-1].allowed else None, verdicts)


def _open() -> Choice:
    """Fail open: the first alternative, unchecked."""
    return Choice(0, (Verdict(allowed=True, enforced=False),))


_limiter: LocalLimiter | RedisLimiter | None = None
_limiter_lock = threading.Lock()


def get_limiter() -> LocalLimiter | RedisLimiter:
    """The process's limiter: Redis when REDIS_URL is set, in-process otherwise. Built once."""
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                url = getattr(settings, "REDIS_URL", None)
                _limiter = RedisLimiter(url) if url else LocalLimiter()
    return _limiter


def set_limiter(limiter: LocalLimiter | RedisLimiter | None) -> None:
    """Replace the process's limiter (tests); None builds it again from the settings on next use."""
    global _limiter
    _limiter = limiter


def acquire(key: str, limit: int, cost: int = 1, period: float = 60.0, *, dry_run: bool = False) -> Verdict:
    """Take `cost` units from one bucket if it allows them."""
    return acquire_many([Bucket(key, limit, cost, period)], dry_run=dry_run)


def acquire_many(buckets: Sequence[Bucket], *, dry_run: bool = False) -> Verdict:
    """Take from every bucket, or from none: a request refused by one bucket consumes no other."""
    if not buckets:
        return ALLOWED
    return get_limiter().acquire_first([buckets], dry_run=dry_run).verdicts[0]


def acquire_first(
    options: Sequence[Sequence[Bucket]], *, common: Sequence[Bucket] = (), dry_run: bool = False
) -> Choice:
    """Consume the `common` buckets together with the first alternative whose buckets all allow
    (all or nothing); when the common buckets refuse on their own, no alternative is tried.
    One round trip, however many alternatives."""
    return get_limiter().acquire_first(options, common=common, dry_run=dry_run)


def refund(buckets: Sequence[Bucket]) -> None:
    """Give back what an allowed request took (its work was refused later); never beyond a full bucket."""
    given_back = [Bucket(b.key, b.limit, -b.cost, b.period) for b in buckets if b.cost > 0]
    if given_back:
        get_limiter().acquire_first([given_back])
