"""How fast one worker runs one bulk job's calls under Mistral's rate limits.

``Aimd`` decides (by counts, no clock): the job's concurrency in this worker halves on
a 429 and grows back one step after a run of successes, never above BULK_CONCURRENCY.
``Pace`` holds the worker's threads to it (a thread takes a slot per item) and is the
RateGate of the job's one upstream session: a 429 closes it for every thread until its
``Retry-After`` has passed (or a backoff). Until concurrency has grown back, calls also
leave spaced apart, so that a thread freed by a success does not spend the next
token's wait on another 429: by the first 429's wait, 1.25 times longer after each 429
that halves the concurrency again, 0.8 times shorter after each step of growth. (With
calls that take no time, concurrency alone would not slow them down: one thread
would meet a 429 after every success.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from models_admin import remote

# Successes in a row (no 429 between them) after which concurrency grows by one.
GROW_AFTER = 10
# The spacing of calls after a 429: a new 429 stretches it, each step of growth
# shortens it, and concurrency back at its maximum ends it.
SLOWER, FASTER = 1.25, 0.8


class Aimd:
    """Additive increase, multiplicative decrease of a concurrency limit, by counts.

    ``epoch`` counts the decreases. A call records the epoch it was sent in; a 429 on a
    call sent before the latest decrease was already answered by it (the calls that
    were in flight together all meet the same exhausted limit) and halves nothing."""

    def __init__(self, maximum: int, *, grow_after: int = GROW_AFTER) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.grow_after = max(1, grow_after)
        self.epoch = 0
        self.run = 0  # successes since the last 429 or growth

    def rate_limited(self, sent_in: int) -> bool:
        """A 429 answered a call sent in epoch ``sent_in``; True when the limit halved."""
        self.run = 0
        if sent_in < self.epoch:
            return False
        self.limit = max(1, self.limit // 2)
        self.epoch += 1
        return True

    def succeeded(self) -> bool:
        """One more success; True when the limit grew by one."""
        self.run += 1
        if self.run < self.grow_after or self.limit >= self.maximum:
            return False
        self.run = 0
        self.limit += 1
        return True


class Pace(remote.RateGate):
    """The RateGate of one worker's share of a job, with its concurrency (``Aimd``)."""

    def __init__(
        self,
        maximum: int,
        *,
        grow_after: int = GROW_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock=clock, sleep=sleep)
        self.aimd = Aimd(maximum, grow_after=grow_after)
        self.in_flight = 0
        self.spacing = 0.0  # seconds between calls, after a 429, until concurrency is back
        self.limited = 0  # 429s seen (for the benchmark)
        self._next_call = 0.0
        self._slots = threading.Condition(self._lock)
        self._sent_in = threading.local()

    # Slots: a thread holds one while it works on an item.

    def acquire(self, *, timeout: float) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came free."""
        with self._slots:
            if not self._slots.wait_for(lambda: self.in_flight < self.aimd.limit, timeout):
                return False
            self.in_flight += 1
            return True

    def release(self, *, succeeded: bool) -> None:
        with self._slots:
            self.in_flight -= 1
            if succeeded and self.aimd.succeeded():
                self.spacing = (
                    0.0 if self.aimd.limit >= self.aimd.maximum else self.spacing * FASTER
                )
            self._slots.notify_all()

    # The RateGate side, called by the transport around each HTTP attempt.

    def hold(self, seconds: float) -> None:
        """A 429 (told to wait ``seconds``): every thread waits, concurrency may halve."""
        with self._slots:
            self.limited += 1
            self._open_at = max(self._open_at, self._clock() + seconds)
            if self.aimd.rate_limited(getattr(self._sent_in, "epoch", self.aimd.epoch)):
                self.spacing = max(seconds, self.spacing * SLOWER)

    def wait(self, *, at_most: float) -> bool:
        """Wait for the gate to open (again, if a 429 closed it meanwhile) and for this
        call's turn; False, without waiting, when that is more than ``at_most`` away."""
        while True:
            with self._lock:
                now = self._clock()
                start = max(now, self._open_at, self._next_call)
                if start - now > at_most:
                    return False
                if start <= now:
                    self._next_call = now + self.spacing
                    self._sent_in.epoch = self.aimd.epoch
                    return True
            self._sleep(start - now)
            at_most -= start - now
