# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import time

import pytest

from tecken_shared.cache import LocalCache, RedisCache, cache_from_url


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_local_cache_ttl_and_lru():
    clock = Clock()
    cache = LocalCache(max_entries=2, clock=clock)
    cache.set("a", "1", 10)
    cache.set("b", "2", 10)
    assert cache.get("a") == "1"  # a is now the most recent
    cache.set("c", "3", 10)  # evicts b
    assert cache.get_many(["a", "b", "c"]) == ["1", None, "3"]
    clock.now += 11
    assert cache.get("a") is None
    cache.set("d", "4", 0)  # a zero TTL caches nothing
    assert cache.get("d") is None
    cache.set("e", "5", 5)
    cache.delete("e", "missing")
    assert cache.get("e") is None
    assert cache.check() is None


def test_cache_from_url(redis_url):
    assert isinstance(cache_from_url("memory://?max_entries=5"), LocalCache)
    assert cache_from_url("memory://?max_entries=5").max_entries == 5
    assert isinstance(cache_from_url(""), LocalCache)
    assert isinstance(cache_from_url(redis_url), RedisCache)
    with pytest.raises(ValueError, match="memory:// or redis://"):
        cache_from_url("memcached://x")


def test_redis_cache(redis_url, redis_prefix):
    cache = RedisCache(redis_url, prefix=redis_prefix)
    other = RedisCache(redis_url, prefix=redis_prefix)
    cache.set("k", "v", 10)
    assert other.get("k") == "v"
    assert other.get_many(["k", "nope"]) == ["v", None]
    other.delete("k")
    assert cache.get("k") is None
    cache.set("short", "v", 0.05)
    time.sleep(0.1)
    assert cache.get("short") is None
    assert cache.check() is None
    assert cache.errors == 0
    assert "@" not in cache.name


def test_redis_paused_and_stopped(private_redis):
    clock = Clock()
    cache = RedisCache(private_redis.url, socket_timeout=0.2, retry_after=5, clock=clock)
    cache.set("k", "v", 60)
    private_redis.pause()
    try:
        started = time.monotonic()
        assert cache.get("k") is None  # times out: a miss
        assert time.monotonic() - started < 1.5
        assert cache.errors == 1
        started = time.monotonic()
        for _ in range(100):  # marked down: no more waiting
            assert cache.get("k") is None
            cache.set("k", "w", 60)
        assert cache.get_many(["k"]) == [None]
        assert time.monotonic() - started < 0.5
        assert cache.check() is not None
    finally:
        private_redis.resume()
    clock.now += 6
    assert cache.get("k") == "v"  # back once retry_after has passed
    private_redis.stop()
    assert cache.get("k") is None
    clock.now += 6
    cache.set("k", "x", 60)
    cache.delete("k")
    assert cache.errors >= 3
    assert "unreachable" in cache.check()
