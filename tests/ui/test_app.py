"""Starting the window: the cycle collector runs from the event loop, not from whichever thread allocates."""

from __future__ import annotations

import gc

from ui.app import IdleCollector


def test_the_idle_collector_collects_between_events_and_hands_collection_back(qtbot) -> None:
    assert gc.isenabled()
    collector = IdleCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        garbage = [[] for _ in range(gc.get_threshold()[0] + 10)]
        for item in garbage:
            item.append(item)  # cycles: only the collector frees them
        del garbage
        qtbot.waitUntil(lambda: gc.get_count()[0] < gc.get_threshold()[0], timeout=5_000)
    finally:
        collector.stop()
    assert gc.isenabled()
