"""The GCRA limiter: burst of exactly `limit`, then refill; all-or-nothing over several buckets; shared
by OS processes through Redis; open (allowing, with a warning) when Redis is unreachable."""

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from costswitch import ratelimit
from costswitch.ratelimit import Bucket, LocalLimiter, RedisLimiter
from tests.costswitch.limiters import isolated_limiter

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "redis"])
def limiter(request):
    with isolated_limiter(request.param) as limiter:
        yield limiter


@pytest.fixture
def redis_limiter():
    with isolated_limiter("redis") as limiter:
        yield limiter


def test_it_allows_exactly_the_limit_at_once_then_refuses(limiter):
    verdicts = [ratelimit.acquire("k", 5) for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
    refused = verdicts[5]
    # One request frees up every period / limit = 12 s.
    assert 11 < refused.retry_after <= 12
    assert (refused.key, refused.limit, refused.exceeds_limit) == ("k", 5, False)


def test_it_recovers_as_time_passes(limiter):
    for _ in range(4):
        assert ratelimit.acquire("k", 4, period=1.0).allowed
    refused = ratelimit.acquire("k", 4, period=1.0)
    assert not refused.allowed
    assert 0.2 < refused.retry_after <= 0.25
    time.sleep(refused.retry_after + 0.02)
    assert ratelimit.acquire("k", 4, period=1.0).allowed
    assert not ratelimit.acquire("k", 4, period=1.0).allowed


def test_refused_requests_do_not_push_recovery_back(limiter):
    assert ratelimit.acquire("k", 2, period=0.5).allowed
    assert ratelimit.acquire("k", 2, period=0.5).allowed
    for _ in range(20):
        assert not ratelimit.acquire("k", 2, period=0.5).allowed
    time.sleep(0.27)
    assert ratelimit.acquire("k", 2, period=0.5).allowed


def test_a_whole_period_refills_the_whole_burst(limiter):
    for _ in range(3):
        assert ratelimit.acquire("k", 3, period=0.3).allowed
    assert not ratelimit.acquire("k", 3, period=0.3).allowed
    time.sleep(0.32)
    assert [ratelimit.acquire("k", 3, period=0.3).allowed for _ in range(4)] == [True, True, True, False]


def test_cost_counts_tokens(limiter):
    assert ratelimit.acquire("tpm", 100, cost=60).remaining == 40
    refused = ratelimit.acquire("tpm", 100, cost=50)
    assert not refused.allowed
    assert refused.remaining == 40
    assert 5.5 < refused.retry_after <= 6  # 10 tokens at 0.6 s each
    assert ratelimit.acquire("tpm", 100, cost=40).allowed


def test_a_cost_above_the_limit_never_passes(limiter):
    verdict = ratelimit.acquire("tpm", 100, cost=101)
    assert not verdict.allowed
    assert verdict.exceeds_limit
    assert verdict.retry_after == 60
    assert ratelimit.acquire("tpm", 100, cost=100).allowed  # and it took nothing


def test_acquire_many_takes_from_every_bucket_or_from_none(limiter):
    assert ratelimit.acquire("model", 1).allowed
    refused = ratelimit.acquire_many([Bucket("key", 3), Bucket("model", 1)])
    assert not refused.allowed
    assert refused.key == "model"
    # The key's bucket gave nothing to the refused request: all three are still there.
    assert [ratelimit.acquire("key", 3).allowed for _ in range(4)] == [True, True, True, False]


def test_acquire_many_reports_the_tightest_bucket(limiter):
    verdict = ratelimit.acquire_many([Bucket("wide", 100), Bucket("narrow", 2)])
    assert verdict.allowed
    assert (verdict.key, verdict.remaining) == ("narrow", 1)


def test_acquire_many_names_the_bucket_that_frees_up_last(limiter):
    ratelimit.acquire("slow", 1)
    ratelimit.acquire("fast", 10, cost=10)
    refused = ratelimit.acquire_many([Bucket("fast", 10), Bucket("slow", 1)])
    assert refused.key == "slow"
    assert 59 < refused.retry_after <= 60


def test_a_dry_run_answers_without_consuming(limiter):
    assert ratelimit.acquire("k", 1, dry_run=True).allowed
    assert ratelimit.acquire("k", 1, dry_run=True).allowed
    assert ratelimit.acquire("k", 1).allowed
    assert not ratelimit.acquire("k", 1, dry_run=True).allowed


def test_acquire_first_takes_the_first_alternative_that_fits_with_the_common_buckets(limiter):
    ratelimit.acquire("model-a", 1)
    choice = ratelimit.acquire_first(
        [[Bucket("model-a", 1)], [Bucket("model-b", 5, cost=6)], [Bucket("model-c", 5)]],
        common=[Bucket("key", 100, cost=30)],
    )
    assert choice.index == 2
    assert [v.allowed for v in choice.verdicts] == [False, False, True]
    assert choice.verdicts[1].exceeds_limit
    assert choice.common is None
    assert ratelimit.acquire("key", 100, cost=70).allowed  # 30 taken with model-c, once
    assert not ratelimit.acquire("key", 100, cost=1).allowed
    assert ratelimit.acquire("model-c", 5).remaining == 3
    assert ratelimit.acquire("model-b", 5, cost=5).allowed  # the refused alternatives took nothing


def test_when_no_alternative_fits_nothing_is_taken(limiter):
    ratelimit.acquire("model-a", 1)
    ratelimit.acquire("model-b", 2, cost=2)
    choice = ratelimit.acquire_first(
        [[Bucket("model-a", 1)], [Bucket("model-b", 2)]], common=[Bucket("key", 10, cost=5)]
    )
    assert choice.index is None
    assert not choice.allowed
    assert 29 < choice.retry_after <= 30  # model-b frees up first (every 30 s)
    assert ratelimit.acquire("key", 10, cost=10).allowed


def test_a_refusal_by_the_common_buckets_tries_no_alternative(limiter):
    ratelimit.acquire("key", 10, cost=8)
    choice = ratelimit.acquire_first([[Bucket("model", 5)]], common=[Bucket("key", 10, cost=5)])
    assert choice.index is None
    assert choice.verdicts == ()
    assert choice.common.key == "key"
    assert choice.retry_after == choice.common.retry_after > 0
    assert ratelimit.acquire("model", 5, cost=5).allowed


def test_refund_gives_back_what_was_taken(limiter):
    taken = [Bucket("key", 10, cost=7), Bucket("model", 1)]
    assert ratelimit.acquire_many(taken).allowed
    ratelimit.refund(taken)
    assert ratelimit.acquire_many([Bucket("key", 10, cost=10), Bucket("model", 1)]).allowed


def test_refund_never_fills_beyond_the_limit(limiter):
    ratelimit.refund([Bucket("key", 2, cost=5)])
    assert [ratelimit.acquire("key", 2).allowed for _ in range(3)] == [True, True, False]


def test_a_bucket_needs_a_positive_limit():
    with pytest.raises(ValueError):
        Bucket("k", 0)


def test_the_local_limiter_follows_its_clock():
    now = [1000.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    bucket = [[Bucket("k", 2, period=10.0)]]
    assert limiter.acquire_first(bucket).allowed
    assert limiter.acquire_first(bucket).allowed
    refused = limiter.acquire_first(bucket).verdicts[0]
    assert refused.retry_after == pytest.approx(5.0)
    now[0] += 4.999
    assert not limiter.acquire_first(bucket).allowed
    now[0] += 0.002
    assert limiter.acquire_first(bucket).allowed


def test_redis_keys_expire_when_their_bucket_is_full_again(redis_limiter):
    ratelimit.acquire("k", 10, cost=3)
    client = redis.Redis.from_url(redis_limiter.url)
    try:
        ttl_ms = client.pttl(f"{redis_limiter.prefix}k")
    finally:
        client.close()
    assert 17_000 < ttl_ms <= 18_002  # 3 of 10 per minute: full again in 18 s


def test_the_process_keeps_one_limiter():
    assert ratelimit.get_limiter() is ratelimit.get_limiter()


# --- across processes -------------------------------------------------------------------------------

WORKER = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from costswitch.ratelimit import Bucket, RedisLimiter

url, prefix, limit, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
limiter = RedisLimiter(url, prefix=prefix)
limiter.acquire_first([[Bucket("warm-up", 1000)]])  # connected and script loaded before the start
print("ready", flush=True)
sys.stdin.readline()

def one(_):
    verdict = limiter.acquire_first([[Bucket("shared", limit, 1, 3600.0)]]).verdicts[0]
    return [verdict.allowed, verdict.retry_after, verdict.enforced]

with ThreadPoolExecutor(4) as pool:
    print(json.dumps(list(pool.map(one, range(attempts)))), flush=True)
"""


def test_two_processes_share_one_bucket_exactly(redis_limiter):
    limit, attempts = 25, 60
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                redis_limiter.url,
                redis_limiter.prefix,
                str(limit),
                str(attempts),
            ],
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # both start hammering at once
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [json.loads(worker.stdout.readline()) for worker in workers]
    finally:
        for worker in workers:
            worker.stdin.close()
            worker.wait(timeout=30)
    assert [worker.returncode for worker in workers] == [0, 0]
    outcomes = [outcome for result in results for outcome in result]
    assert all(enforced for _, _, enforced in outcomes)
    allowed = [outcome for outcome in outcomes if outcome[0]]
    refused = [outcome for outcome in outcomes if not outcome[0]]
    assert len(allowed) == limit
    assert len(refused) == 2 * attempts - limit
    assert all(retry_after > 0 for _, retry_after, _ in refused)
    # Separate buckets would have let each process have `limit`; which process got how many depends on
    # scheduling (on a busy machine one may finish before the other starts), so only the total counts.
    assert all(len(result) == attempts for result in results)


# --- Redis down -------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_redis_lets_requests_through_with_a_warning(caplog):
    limiter = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="costswitch.ratelimit"):
        verdicts = [limiter.acquire_first([[Bucket("k", 1)]]).verdicts[0] for _ in range(3)]
    assert all(v.allowed and not v.enforced for v in verdicts)
    warnings = [r for r in caplog.records if r.name == "costswitch.ratelimit"]
    assert len(warnings) == 1, "one warning per outage, not one per request"
    assert warnings[0].levelno == logging.WARNING
    assert "Redis unavailable" in warnings[0].getMessage()


def test_an_unreachable_redis_lets_acquire_first_through_on_its_first_alternative():
    limiter = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0")
    choice = limiter.acquire_first([[Bucket("a", 1)], [Bucket("b", 1)]], common=[Bucket("key", 1)])
    assert choice.index == 0
