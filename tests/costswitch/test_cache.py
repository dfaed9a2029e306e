"""The shared cache used as a cache only (costswitch/cache.py): an unreachable Redis is a miss, is
left alone for a while, and version tokens written during the outage are written once it is back."""

from unittest import mock

import pytest
from django.core.cache import cache

from costswitch import cache as shared_cache
from costswitch.cache import cache_add, cache_available, cache_get, cache_set
from tests.costswitch.caches import cache_answers_again, redis_down, reset_outage_state


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    reset_outage_state(monkeypatch)
    cache.delete_many(["outage:token", "outage:other"])
    yield
    cache.delete_many(["outage:token", "outage:other"])


def test_reads_and_writes_pass_through_while_the_cache_answers():
    assert cache_set("outage:token", "a", 60) is True
    assert cache_get("outage:token") == "a"
    assert cache_add("outage:token", "b", 60) is False
    assert cache_available()


def test_an_unreachable_cache_is_a_miss_and_is_left_alone_for_a_while(caplog):
    with redis_down():
        assert cache_get("outage:token", "default") == "default"
        assert cache_set("outage:token", "a", 60) is False
        assert cache_add("outage:token", "a", 60) is False
    assert not cache_available()
    assert "cache get failed, reading PostgreSQL instead" in caplog.text

    with mock.patch.object(shared_cache, "cache") as spy:  # within the pause: no call at all
        assert cache_get("outage:token") is None
    spy.get.assert_not_called()


def test_a_kept_write_is_made_at_the_first_call_after_the_outage(monkeypatch):
    with redis_down():
        assert cache_set("outage:token", "new", None, keep=True) is False
        assert cache_set("outage:other", "dropped", None) is False
    cache_answers_again(monkeypatch)

    assert cache_get("outage:other") is None  # the first call writes what was kept
    assert cache.get("outage:token") == "new"
    assert cache.get("outage:other") is None
    assert shared_cache._kept == {}


def test_a_kept_write_survives_a_failed_retry_and_a_newer_write_of_the_key_wins(monkeypatch):
    with redis_down():
        cache_set("outage:token", "old", None, keep=True)
        cache_answers_again(monkeypatch)
        assert cache_get("outage:other") is None  # still down: the kept write stays kept
        assert shared_cache._kept == {"outage:token": ("old", None)}
        cache_answers_again(monkeypatch)
        cache_set("outage:token", "newer", None, keep=True)
    cache_answers_again(monkeypatch)

    cache_get("outage:other")
    assert cache.get("outage:token") == "newer"
