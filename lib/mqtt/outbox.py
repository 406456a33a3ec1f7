"""Bounded queues for the robust MQTT wrapper: publishes waiting for a connection (Outbox) and
QoS 1/2 publishes written but not yet acknowledged (Inflight).

An entry is a list ``[topic, msg, retain, qos, pid, stage]``: one small object per message,
nothing copied. ``pid`` is 0 until the message is first written; it is kept for as long as the
message is in flight, because MQTT 3.1.1 resends it with DUP=1 and the *same* packet id when the
session is resumed (MQTT-4.4.0-1). ``stage`` is 0 while a PUBLISH awaits its PUBACK/PUBREC and
1 once a QoS 2 PUBREC came back and the PUBREL awaits its PUBCOMP.

The outbox is bounded in messages and in bytes (topic + payload + ENTRY_OVERHEAD each). When
full, the oldest message of the lowest QoS present is dropped and counted (a stale QoS 0 reading
is the cheapest thing to lose). Per-QoS policy: ``"queue"`` keeps messages published while
offline, ``"drop"`` refuses them (counted), as fire-and-forget QoS 0 often should::

    ob = Outbox(max_msgs=100, max_bytes=16384, policy=("drop", "queue", "queue"))
    ob.put("t", b"21.5", False, 1, offline=True)
    e = ob.first(); ob.pop()
"""

from micropython import const

_TOPIC = const(0)
_MSG = const(1)
_RETAIN = const(2)
_QOS = const(3)
_PID = const(4)
_STAGE = const(5)
# Heap an entry costs beyond its topic and payload bytes on the 32-bit ESP32 (the list and
# its slots, the payload object's header), so max_bytes bounds real memory, not just payload.
ENTRY_OVERHEAD = 48


def _has(entries, topic, msg):
    # a plain loop: any() over a generator would allocate on every call
    for e in entries:  # noqa: SIM110
        if e[_MSG] == msg and e[_TOPIC] == topic:
            return True
    return False


def size_of(e):
    return len(e[_TOPIC]) + len(e[_MSG]) + ENTRY_OVERHEAD


class Outbox:
    def __init__(self, max_msgs=100, max_bytes=16384, policy=("queue", "queue", "queue")):
        if max_msgs < 1 or max_bytes < 1:
            raise ValueError(
                "outbox bounds must be >= 1, got %r msgs, %r bytes" % (max_msgs, max_bytes)
            )
        for p in policy:
            if p not in ("queue", "drop"):
                raise ValueError("outbox policy: expected 'queue' or 'drop', got %r" % (p,))
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self.policy = policy
        self._q = []
        self.bytes = 0
        self.drops = [0, 0, 0]  # per QoS: evicted when full, refused by policy or too big

    def __len__(self):
        return len(self._q)

    def dropped(self):
        return self.drops[0] + self.drops[1] + self.drops[2]

    def put(self, topic, msg, retain, qos, offline=False):
        """Queue a publish. Returns False if it was refused (policy or larger than the bound)."""
        if offline and self.policy[qos] == "drop":
            self.drops[qos] += 1
            return False
        e = [topic, msg, retain, qos, 0, 0]
        return self._add(e, False)

    def requeue(self, entries):
        """Put messages back at the head, in order (in-flight ones of a session that was lost).
        Their packet ids are cleared: on a new session they are new publishes."""
        for e in entries:
            e[_PID] = 0
            e[_STAGE] = 0
        for i in range(len(entries) - 1, -1, -1):
            self._add(entries[i], True)

    def _add(self, e, front):
        n = size_of(e)
        if n > self.max_bytes:
            self.drops[e[_QOS]] += 1
            return False
        while self._q and (len(self._q) >= self.max_msgs or self.bytes + n > self.max_bytes):
            self._evict()
        if front:
            self._q.insert(0, e)
        else:
            self._q.append(e)
        self.bytes += n
        return True

    def _evict(self):
        q = self._q
        low = 3
        at = 0
        for i in range(len(q)):
            if q[i][_QOS] < low:
                low = q[i][_QOS]
                at = i
                if low == 0:
                    break
        e = q.pop(at)
        self.bytes -= size_of(e)
        self.drops[e[_QOS]] += 1

    def has_room(self, n):
        """True if a message of n bytes (size_of) fits without evicting anything."""
        return len(self._q) < self.max_msgs and self.bytes + n <= self.max_bytes

    def append(self, e):
        """Add an entry at the back without evicting (a refill from the spill store: at most a
        batch over the bound, drained by the next flush)."""
        self._q.append(e)
        self.bytes += size_of(e)

    def withdraw(self, topic, msg):
        """Take back the oldest queued message equal to (topic, msg); True if one was found."""
        q = self._q
        for i in range(len(q)):
            e = q[i]
            if e[_TOPIC] == topic and e[_MSG] == msg:
                q.pop(i)
                self.bytes -= size_of(e)
                return True
        return False

    def holds(self, topic, msg):
        """True if a message equal to (topic, msg) is queued."""
        return _has(self._q, topic, msg)

    def first(self):
        """The oldest message (IndexError if empty: check len() first)."""
        return self._q[0]

    def pop(self):
        e = self._q.pop(0)
        self.bytes -= size_of(e)
        return e


class Inflight:
    """QoS 1/2 messages written and not yet acknowledged, in the order they were first sent."""

    def __init__(self):
        self._l = []

    def __len__(self):
        return len(self._l)

    def add(self, e):
        self._l.append(e)

    def find(self, pid):
        for e in self._l:
            if e[_PID] == pid:
                return e
        return None

    def remove(self, e):
        self._l.remove(e)

    def holds(self, topic, msg):
        """True if a message equal to (topic, msg) awaits its acknowledgement."""
        return _has(self._l, topic, msg)

    def entries(self):
        return self._l

    def take_all(self):
        taken = self._l
        self._l = []
        return taken
