"""Per-hub retry queues: batches the database could not take yet.

Why a queue per hub inside the receiver rather than leaving the batch
unacknowledged at the broker: on a clean MQTT 3.1.1 session Mosquitto does
not deliver an unacknowledged message again on the same connection, and
every one of them holds one of the connection's in-flight slots; once they
are all taken, no hub's batch reaches the receiver (issue 10). So a batch
that fails with a transient database error is acknowledged to the broker
and parked here; it is tried again after a backoff that doubles per failed
attempt (capped), while batches of other hubs go straight through. Later
batches of the same hub wait behind it, so a hub's batches are stored in
the order they came. Nothing is lost if the receiver dies meanwhile: the
hub keeps every record until the receiver's own ack (sent after the
commit) and sends it again after its ack timeout.

Pure bookkeeping (no threads, no clock of its own): the caller passes `now`.
"""

from collections import OrderedDict, deque
from typing import Any


class RetryQueues:
    """Parked batches per hub with exponential backoff.

    base, cap: first and longest delay in seconds; max_batches: per hub,
    beyond it the oldest parked batch is dropped (counted: the hub sends it
    again, since it was never acknowledged by the receiver)."""

    def __init__(self, base: float = 0.25, cap: float = 5.0, max_batches: int = 256) -> None:
        self.base, self.cap, self.max_batches = base, cap, max_batches
        self.q = OrderedDict()  # hub -> deque of items
        self._due = {}  # hub -> time its head may be tried
        self._fails = {}  # hub -> failed attempts of its head in a row
        self.dropped = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self.q.values())

    def __contains__(self, hub: str) -> bool:
        return hub in self.q

    def park(self, hub: str, item: Any, now: float, failed: bool = False) -> None:
        """Put item at the back of hub's queue. failed=True: it (the head)
        has just failed, so the hub waits its next backoff step."""
        q = self.q.get(hub)
        if q is None:
            q = self.q[hub] = deque()
            self._fails[hub] = 0
            self._due[hub] = now
        q.append(item)
        if len(q) > self.max_batches:
            q.popleft()
            self.dropped += 1
        if failed:
            self._failed(hub, now)

    def _failed(self, hub: str, now: float) -> None:
        n = self._fails[hub]
        self._fails[hub] = n + 1
        self._due[hub] = now + min(self.cap, self.base * (2 ** min(n, 30)))

    def due(self, now: float) -> list[str]:
        """Hubs whose head may be tried now, in the order they were parked."""
        return [h for h in self.q if self._due[h] <= now]

    def head(self, hub: str) -> Any:
        return self.q[hub][0]

    def done(self, hub: str) -> None:
        """The head of hub's queue is settled (stored, refused or quarantined)."""
        q = self.q[hub]
        q.popleft()
        self._fails[hub] = 0
        self._due[hub] = float("-inf")  # the database took one: the next goes at once
        if not q:
            del self.q[hub], self._due[hub], self._fails[hub]

    def failed(self, hub: str, now: float) -> None:
        """The head failed again: wait longer."""
        self._failed(hub, now)

    def wait(self, now: float, most: float) -> float:
        """Seconds until the next head is due (at most `most`)."""
        if not self._due:
            return most
        return max(0.0, min(most, min(self._due.values()) - now))

    def hubs(self) -> dict[str, int]:
        """{hub: parked batches}."""
        return {h: len(q) for h, q in self.q.items()}
