# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The one eviction policy that web workers and the cache manager share."""

import pytest

from tecken_eliot.diskcache import lru_victims

LRU = [("a", 300), ("b", 300), ("c", 300)]  # least recently used first


@pytest.mark.parametrize(
    "lru,max_size,kw,victims",
    [
        (LRU, 900, {}, []),  # fits
        (LRU, 800, {}, ["a"]),  # the least recently used goes
        (LRU, 900, {"needed": 301}, ["a", "b"]),  # room for a write
        (LRU, 800, {"keep": "a"}, ["b"]),  # never the entry being written
        (LRU, 800, {"busy": {"a"}}, []),  # wait for an entry being written
        ([("a", 300), ("big", 1000), ("c", 300)], 900, {}, ["big"]),  # too big goes alone
        ([("a", 300), ("big", 1000)], 900, {"keep": "big"}, ["big"]),  # even when kept
        (LRU, 500, {"keep": "b"}, ["a", "c"]),
    ],
)
def test_lru_victims(lru, max_size, kw, victims):
    total = sum(size for _stem, size in lru)
    assert lru_victims(lru, total, max_size, **kw) == victims
