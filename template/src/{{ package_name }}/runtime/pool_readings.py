"""What a thread pool's counters say over a window: the autosizer's readings.

A `Reading` is one look at a thread budget's cumulative counters; a
`ReadingWindow` keeps the recent ones and answers the questions the autosizer
(runtime/autosize.py) asks of them: how long a call holds a thread, and how
many threads the load needs (Little's law). Arithmetic only, no decisions.
"""

from collections import deque
from typing import NamedTuple


class Reading(NamedTuple):
    """One look at a thread budget. Counters are cumulative since it started."""

    at: float  # monotonic seconds
    arrivals: int  # calls that asked for a thread
    waits: int  # of those, calls that found none free
    completions: int  # calls that gave their thread back
    held_s: float  # seconds the completed calls held a thread, summed
    in_use: int  # threads held now
    holding_s: float  # seconds the calls holding a thread now have held it, summed
    waiting: int  # calls waiting for a thread now


class ReadingWindow:
    """The readings of the last `keep_s` seconds, and one older: a window of
    up to `keep_s` always has a reading at or before its start."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._readings: deque[Reading] = deque()

    def add(self, reading: Reading) -> None:
        self._readings.append(reading)
        while len(self._readings) > 2 and (
            reading.at - self._readings[1].at >= self.keep_s
        ):
            self._readings.popleft()

    @property
    def oldest(self) -> Reading:
        return self._readings[0]

    @property
    def latest(self) -> Reading:
        return self._readings[-1]

    def since(self, at: float) -> Reading:
        """The oldest reading taken at or after `at` (the newest if none is older)."""
        for reading in self._readings:
            if reading.at >= at:
                return reading
        return self._readings[-1]

    def hold_s(self, window_s: float) -> float:
        """Seconds a call holds a thread: completed calls' mean, or the mean age
        of the calls holding one now, whichever is longer."""
        now = self.latest
        done = mean_hold_s(self.since(now.at - window_s), now)
        return max(done, mean_age_s(now))

    def need_over(self, window_s: float) -> float | None:
        """Threads the load of the last `window_s` needs: arrivals/s × hold time
        (None until the window spans some time)."""
        now = self.latest
        first = self.since(now.at - window_s)
        elapsed = now.at - first.at
        if elapsed <= 0:
            return None
        arrivals_per_s = (now.arrivals - first.arrivals) / elapsed
        return arrivals_per_s * self.hold_s(window_s)


def mean_hold_s(first: Reading, last: Reading) -> float:
    """The mean hold of the calls completed between two readings (0: none)."""
    completed = last.completions - first.completions
    return (last.held_s - first.held_s) / completed if completed else 0.0


def mean_age_s(reading: Reading) -> float:
    """How long the calls holding a thread have held it, on average (0: none)."""
    return reading.holding_s / reading.in_use if reading.in_use else 0.0
