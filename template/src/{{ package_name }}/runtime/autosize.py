"""How many threads the load needs, decided from what the pool measures.

`Autosizer` reads a thread budget's counters ten times a second and answers
with a new size, or None. It is plain arithmetic on those readings, with no
clock or event loop of its own, so the same decisions can be tested in
microseconds and watched on a live server (docs/thread-pool.md).

- Need: Little's law over the last half second. Calls arriving per second
  times the seconds each holds a thread (completed calls, or the age of those
  holding one now, whichever is longer: right after a downstream slows down,
  no slow call has completed yet).
- Grow fast: when calls had to wait for a thread, to the need plus headroom,
  plus threads enough to serve the calls queued meanwhile within DRAIN_S (those
  go again once the queue is empty), and at least a thread for every call
  waiting. While the calls that held the threads then are still at work, calls
  that wait get threads too: one growth, however many steps it takes.
- But probe: a growth is judged once each new thread has had time to finish a
  call. While calls wait, every thread is busy, and by Little's law the pool
  finishes `size / hold time` calls a second. Threads that only wait on
  something saturated (a database that admits 30 at a time, the CPU) lengthen
  the hold time as much as they add to the size: the throughput stays. The
  hold time to compare with is that of the calls holding the threads when the
  growth began: they had them at the old size, under the load of now, even
  when the load changed with the growth (a downstream slowing down). Where
  the throughput did not follow, the pool settles at the threads it needs,
  holds under them for a while, and tries smaller sizes as long as the
  throughput stays.
- Shrink slowly: only after no call has waited for SHRINK_WINDOW_S, a tenth at
  a time, never below the threads in use.
"""

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

# How often the sizer reads its pool.
TICK_S = 0.1
# The window of the need, and of the hold times a probe compares.
NEED_WINDOW_S = 0.5
# The window that must pass without a call waiting before the pool shrinks.
SHRINK_WINDOW_S = 10.0
# Threads above the need: a pool sized to the need exactly queues at every burst.
HEADROOM = 1.1
# Calls that queued while the pool was too small get threads enough to be
# served within this long; those threads go once the queue is empty.
DRAIN_S = 1.0
# A probe keeps a growth when at least this share of the threads it added
# raised the throughput...
ADDED_USEFUL_SHARE = 0.5
# ...judged on the calls finished over this long a window, once each new
# thread has had time to finish one.
PROBE_WAIT_S = 1.0
# After a growth that did not pay, the size it settled at is a ceiling this long.
CEILING_S = 30.0
# One growth adds at most this share of the size; one from under a ceiling,
# the smaller share.
MAX_STEP = 2.0
GENTLE_STEP = 0.25
# A growth is kept at once if, this many hold times after it, the calls holding
# a thread are on average younger than this share of the hold time: arriving
# evenly and finishing in time, they would be half as old.
EARLY_HOLDS = 2.0
YOUNG_SHARE = 0.6
# A step down is kept while throughput stays above this share of what it was.
KEEP_SHARE = 0.9


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


@dataclass
class Probe:
    """A resize whose worth is judged once its threads have had time to work."""

    from_size: int
    to_size: int
    started: float
    # Seconds a call held a thread at from_size. A growth measures it on the
    # calls in flight when it began (`cohort` of them; the completions counter
    # and held seconds then): they got their threads at the old size, under
    # the load of now, whatever the load did meanwhile.
    from_hold_s: float | None
    cohort: int = 0
    completions: int = 0
    held_s: float = 0.0
    judge_from: float = math.inf  # when the new size's throughput starts to show
    judge_at: float = math.inf  # when it is judged


class Autosizer:
    def __init__(self, size: int, minimum: int, maximum: int) -> None:
        self.size = size
        self.minimum = minimum
        self.maximum = maximum
        self.need = 0.0
        self.readings: deque[Reading] = deque()
        self.probe: Probe | None = None
        self.ceiling = maximum
        self.ceiling_until = 0.0
        # Since a growth did not pay, growths are small, until one does.
        self.gentle = False
        self.resized_at = 0.0
        # Sized for a queue as well as the need: back to the need once it is empty.
        self.draining = False
        self.last_shrink = 0.0
        # Why the last resize happened, for the log line.
        self.reason = ""

    def observe(self, reading: Reading) -> int | None:
        """Take a reading; the new size if the pool should change, else None."""
        self.readings.append(reading)
        # Kept: the readings of the last SHRINK_WINDOW_S, and one older.
        while len(self.readings) > 2 and reading.at - self.readings[1].at >= (
            SHRINK_WINDOW_S
        ):
            self.readings.popleft()
        self.need = self.need_over(NEED_WINDOW_S)
        if reading.at >= self.ceiling_until:
            self.ceiling = self.maximum
        if self.probe is not None:
            return self.judge(self.probe, reading)
        return self.grow(reading) or self.shrink(reading)

    def grow(self, now: Reading) -> int | None:
        recent = self.since(now.at - NEED_WINDOW_S)
        if now.waits == recent.waits and not now.waiting:
            return None  # nobody waited: the size is enough, whatever the estimate
        target = self.wanted(now)
        if target <= self.size:
            return None
        self.draining = self.draining or now.waiting > 0
        self.probe = Probe(
            from_size=self.size,
            to_size=target,
            started=now.at,
            from_hold_s=None,
            cohort=now.in_use,
            completions=now.completions,
            held_s=now.held_s,
        )
        return self.resize(target, f"calls waited, need {self.need:.1f}")

    def wanted(self, now: Reading) -> int:
        """The size for calls that wait: the need plus headroom, plus threads
        to serve the queue within DRAIN_S, and a thread for each call waiting
        now, whatever the estimates say; at most one step up."""
        backlog = now.waiting * self.hold_s() / DRAIN_S
        step = GENTLE_STEP if self.gentle else MAX_STEP
        return min(
            max(math.ceil(self.need * HEADROOM + backlog), now.in_use + now.waiting),
            math.ceil(self.size * (1 + step)),
            self.ceiling,
        )

    def extend(self, probe: Probe, now: Reading) -> int | None:
        """While a growth's cohort is still at work, calls that wait get
        threads: one probe judges the whole growth."""
        if not now.waiting:
            return None
        target = self.wanted(now)
        if target <= self.size:
            return None
        probe.to_size = target
        return self.resize(target, f"calls still wait, need {self.need:.1f}")

    def judge(self, probe: Probe, now: Reading) -> int | None:
        if probe.from_hold_s is None:  # a growth: is its cohort done?
            done = now.completions - probe.completions
            if done < probe.cohort:
                return self.extend(probe, now)
            # The calls that held the threads when it began (nearly all of the
            # first to complete since) held them this long each.
            probe.from_hold_s = (now.held_s - probe.held_s) / done
            # Judged once the threads added last have had time to finish a call.
            probe.judge_from = max(now.at, self.resized_at + probe.from_hold_s)
            probe.judge_at = probe.judge_from + PROBE_WAIT_S
        if self.unhindered(probe, now):
            self.probe = None
            self.gentle = False
            return None  # kept, and the next growth may come at once
        if now.at < probe.judge_at:
            return None
        self.probe = None
        after = self.since(probe.judge_from)
        growth = probe.to_size - probe.from_size
        # The threads the calls finished a second now need at the hold time
        # they had before (Little's law). Threads that only wait on something
        # saturated finish no more calls: they are not counted. Nor are those
        # the load does not use.
        elapsed = now.at - after.at
        finished_per_s = (now.completions - after.completions) / elapsed
        useful = finished_per_s * probe.from_hold_s
        hold_now_s = self.mean_hold_s(after, now) or self.hold_s()
        if growth == 0:  # measured where it settled: now below it
            return self.step_down(hold_now_s, now)
        if growth < 0:  # a step down below a saturation
            if useful >= probe.from_size * KEEP_SHARE:
                return self.step_down(hold_now_s, now)  # nothing lost: lower
            self.hold_under(probe.from_size, now.at)
            return self.resize(probe.from_size, "throughput fell: step down undone")
        if useful - probe.from_size >= growth * ADDED_USEFUL_SHARE:
            self.gentle = False
            return None  # the threads added are working: kept
        # Threads past `useful` wait on something saturated: settle there, then
        # look for the size below it that still keeps the throughput.
        settled = max(probe.from_size, min(math.ceil(useful), probe.to_size))
        self.hold_under(settled, now.at)
        resized = self.resize(
            settled, f"throughput did not follow ({useful:.0f} of use): backing off"
        )
        # Measured there first, the baseline of the steps down that follow:
        # each thread less shortens the hold of those left waiting as much.
        self.start_probe(settled, hold_now_s * settled / probe.to_size, now)
        return resized

    def unhindered(self, probe: Probe, now: Reading) -> bool:
        """Whether a growth's calls already hold their threads no longer than
        before it: once each has had time to finish, none is held up (as a call
        waiting on a saturated downstream would be), the calls in flight being
        younger than the hold time on average."""
        if probe.to_size <= probe.from_size or not now.in_use:
            return False
        assert probe.from_hold_s is not None
        if now.at < probe.started + EARLY_HOLDS * probe.from_hold_s:
            return False
        return mean_age_s(now) <= YOUNG_SHARE * probe.from_hold_s

    def step_down(
        self, hold_s: float, now: Reading, why: str = "throughput held"
    ) -> int | None:
        """A smaller size, judged like a growth: kept while throughput holds."""
        target = max(self.minimum, math.floor(self.size * (1 - GENTLE_STEP / 2)))
        if target >= self.size:
            return self.size
        self.hold_under(target, now.at)
        self.start_probe(target, hold_s, now)
        return self.resize(target, f"{why}: backing off")

    def start_probe(self, size: int, hold_s: float, now: Reading) -> None:
        """Judge the move down to `size` (or, at the same size, measure it) on
        the calls finished over PROBE_WAIT_S, once those queued at the
        downstream by the threads taken away have been served: the shorter
        hold shows a hold time later."""
        judge_from = now.at + max(2 * hold_s, TICK_S)
        self.probe = Probe(
            from_size=self.size,
            to_size=size,
            started=now.at,
            from_hold_s=hold_s,
            judge_from=judge_from,
            judge_at=judge_from + PROBE_WAIT_S,
        )

    def shrink(self, now: Reading) -> int | None:
        if self.draining:
            return self.drained(now)
        if now.at - self.last_shrink < 1.0:
            return None
        window = self.readings[0]
        if now.at - window.at < SHRINK_WINDOW_S or now.waits != window.waits:
            return None  # too soon to tell, or calls waited
        slow_need = self.need_over(SHRINK_WINDOW_S)
        wanted = math.ceil(slow_need * HEADROOM)
        target = max(self.minimum, now.in_use, wanted)
        if wanted >= self.size * 0.8 or target >= self.size:
            return None  # hysteresis: a need this near the size keeps it
        self.last_shrink = now.at
        step = max(target, self.size - max(1, self.size // 10))
        return self.resize(step, f"need fell to {slow_need:.1f}")

    def drained(self, now: Reading) -> int | None:
        """Once no call has waited for a while, the threads for the queue go."""
        if now.waiting or now.waits != self.since(now.at - NEED_WINDOW_S).waits:
            return None
        self.draining = False
        # The need of the last seconds too: a load that just ended, or paused,
        # gives its threads back slowly, like any other (`shrink`).
        need = max(self.need, self.need_over(SHRINK_WINDOW_S))
        target = max(self.minimum, now.in_use, math.ceil(need * HEADROOM))
        if target >= self.size:
            return None
        return self.resize(target, f"queue served, need {self.need:.1f}")

    def hold_under(self, size: int, now: float) -> None:
        self.ceiling = size
        self.ceiling_until = now + CEILING_S
        self.gentle = True

    def resize(self, size: int, reason: str) -> int:
        self.size = size
        self.resized_at = self.readings[-1].at
        self.reason = reason
        return size

    def since(self, at: float) -> Reading:
        """The oldest reading taken at or after `at` (the newest if none is older)."""
        for reading in self.readings:
            if reading.at >= at:
                return reading
        return self.readings[-1]

    def hold_s(self, window_s: float = NEED_WINDOW_S) -> float:
        """Seconds a call holds a thread: completed calls' mean, or the mean age
        of the calls holding one now, whichever is longer."""
        now = self.readings[-1]
        done = self.mean_hold_s(self.since(now.at - window_s), now)
        return max(done, mean_age_s(now))

    def mean_hold_s(self, first: Reading, last: Reading) -> float:
        """The mean hold of the calls completed between two readings (0: none)."""
        completed = last.completions - first.completions
        return (last.held_s - first.held_s) / completed if completed else 0.0

    def need_over(self, window_s: float) -> float:
        """Threads the load of the last `window_s` needs: arrivals/s × hold time."""
        now = self.readings[-1]
        first = self.since(now.at - window_s)
        elapsed = now.at - first.at
        if elapsed <= 0:
            return self.need
        arrivals_per_s = (now.arrivals - first.arrivals) / elapsed
        return arrivals_per_s * self.hold_s(window_s)


def mean_age_s(reading: Reading) -> float:
    """How long the calls holding a thread have held it, on average (0: none)."""
    return reading.holding_s / reading.in_use if reading.in_use else 0.0
