"""Rate-limit test helpers: each test gets its own limiter, and its Redis keys are removed afterwards."""

import uuid
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings

from costswitch import ratelimit
from costswitch.api.throttling import reset_lockouts


def redis_url() -> str:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (make test starts one and sets REDIS_URL)")
    return settings.REDIS_URL


@contextmanager
def isolated_limiter(kind: str = "process"):
    """Install a fresh limiter for the test: "local", "redis" (keys under a prefix of its own, deleted
    afterwards), or "process" (what the settings choose: Redis when REDIS_URL is set)."""
    if kind == "process":
        kind = "redis" if settings.REDIS_URL else "local"
    if kind == "local":
        limiter = ratelimit.LocalLimiter()
    else:
        limiter = ratelimit.RedisLimiter(redis_url(), prefix=f"cs:rl:test-{uuid.uuid4().hex}:")
    previous = ratelimit.get_limiter()
    ratelimit.set_limiter(limiter)
    reset_lockouts()
    try:
        yield limiter
    finally:
        ratelimit.set_limiter(previous)
        reset_lockouts()
        if kind == "redis":
            client = redis.Redis.from_url(limiter.url)
            try:
                keys = list(client.scan_iter(f"{limiter.prefix}*"))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
