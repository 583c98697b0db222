"""Adaptive feed scheduling, after Media Cloud's rss-fetcher.

Poll a feed more often when most of its items are new (we might be missing some), less often when
most are already known, and back off on failures. A dead feed is never deleted, only slowed to
once a month, so it comes back by itself when the outlet fixes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MIN_INTERVAL = timedelta(minutes=10)
MAX_INTERVAL = timedelta(hours=24)
DEAD_INTERVAL = timedelta(days=30)
DEFAULT_INTERVAL = timedelta(hours=1)
FAILURE_WEIGHTS = {"hard": 1.0, "soft": 0.5, "transient": 0.25}
DEAD_AFTER = 10.0  # weighted failures before a feed is polled only monthly


def _clamp(value: timedelta, low: timedelta, high: timedelta) -> timedelta:
    return max(low, min(high, value))


def next_interval_after_success(
    previous: timedelta | None, new_items: int, total_items: int, unchanged: bool
) -> timedelta:
    interval = previous or DEFAULT_INTERVAL
    if unchanged or total_items == 0 or new_items == 0:
        interval = interval * 1.5
    else:
        share_new = new_items / total_items
        if share_new > 0.5:
            interval = interval / 2
        elif share_new < 0.1:
            interval = interval * 1.25
    return _clamp(interval, MIN_INTERVAL, MAX_INTERVAL)


def weighted_failures(previous: float, failure: str | None) -> float:
    """The running failure score: reset by a success, raised by each failure's weight."""
    if failure is None:
        return 0.0
    return previous + FAILURE_WEIGHTS[failure]


def next_interval_after_failure(failures: float, retry_after: float | None) -> timedelta:
    if failures >= DEAD_AFTER:
        interval = DEAD_INTERVAL
    else:
        interval = _clamp(MIN_INTERVAL * (2**failures), MIN_INTERVAL, MAX_INTERVAL)
    if retry_after:
        interval = max(interval, timedelta(seconds=retry_after))
    return min(interval, DEAD_INTERVAL)


def is_due(next_due: datetime | None, now: datetime) -> bool:
    return next_due is None or next_due <= now
