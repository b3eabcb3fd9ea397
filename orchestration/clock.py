"""The hand-over clock the entry points pass to the send logic, which never reads the wall
clock itself: the wall clock for a live send, or a fixed time to replay a run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def handover_clock(fixed: datetime | None = None) -> Callable[[], datetime]:
    if fixed is not None:
        return lambda: fixed
    return lambda: datetime.now(UTC)
