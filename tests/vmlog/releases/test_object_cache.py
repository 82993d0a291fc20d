"""The persistent object cache: size limit with least-recently-used eviction."""

from __future__ import annotations

import os

from vmlog.releases.object_cache import ObjectCache


def test_evicts_least_recently_used_first(tmp_path):
    cache = ObjectCache(tmp_path, limit_bytes=3000)
    for index, key in enumerate(["aa1", "bb2", "cc3"]):
        path = cache.put(key, b"x" * 1000)
        os.utime(path, (1000 + index, 1000 + index))
    assert cache.get("aa1") is not None  # used now: newest
    cache.put("dd4", b"y" * 1000)
    assert "bb2" not in cache and "cc3" not in cache
    assert "aa1" in cache and "dd4" in cache
    assert cache.usage() <= 3000


def test_pinned_entries_survive_eviction(tmp_path):
    cache = ObjectCache(tmp_path, limit_bytes=1500)
    path = cache.put("cat1", b"c" * 1000)
    os.utime(path, (1, 1))
    cache.pin("cat1")
    cache.put("obj2", b"o" * 1000)
    assert "cat1" in cache


def test_usage_survives_a_restart(tmp_path):
    ObjectCache(tmp_path).put("ab1", b"z" * 123)
    assert ObjectCache(tmp_path).usage() == 123
