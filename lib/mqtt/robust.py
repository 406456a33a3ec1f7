"""Auto-reconnecting MQTT client: a drop-in for umqtt.robust that never raises for a transient
fault, never blocks the node's loop, and loses nothing it accepted.

Reconnecting is a state machine advanced one bounded step per call from the node's loop
(``step()``, ``check_msg()``, ``publish()``), paced by exponential backoff with full jitter that
resets only after a connection stayed up ``healthy_ms``. With our own sockets the TCP connect and
the CONNACK are awaited across steps (``connect()`` waits for them, bounded by ``connect_timeout``,
as umqtt does; ``connect(wait=False)`` does not). Publishes go to a bounded outbox, flushed in
order; QoS 1/2 messages stay in flight with their packet id until acknowledged, resent with DUP=1
and the same id when the session is resumed, as new publishes on a new session. Subscriptions are
declarative, replayed whenever the broker has no session for us; a refused filter (SUBACK 0x80)
is reported, not retried. CONNACK 1, 2, 4, 5 are reported as configuration errors and retried
only at the slowest pace. Given a WLAN object it waits for the station and notices a drop within
``link_poll_ms``; it never touches the WiFi itself. Faults go to ``status()``,
``on_connect(session_present)`` and ``on_disconnect(reason)``, never raised. What can still block,
only inside a connect attempt: DNS (the last good address is cached and re-resolved after 3
failures in a row), a TLS handshake and replaying subscriptions (bounded by the timeouts);
otherwise a write into a full TCP buffer (bounded by the client's ``timeout``)::

    from mqtt.robust import MQTTClient
    c = MQTTClient("node-1", "broker.lan", keepalive=30, wlan=wlan, clean_session=False,
                   clean_at_start=True, backoff_min=1000, backoff_max=300000)
    c.set_callback(on_msg)
    c.subscribe(b"node-1/cmd/#", qos=1)    # remembered, replayed after a lost session
    c.connect()                            # one bounded attempt; never raises for outages
    while True:
        c.publish(b"node-1/temp", b"21.5", qos=1)   # queued when offline
        c.step()                                    # reconnect / receive / flush, bounded
        if c.idle(): ...                            # nothing queued or in flight: may sleep

Options beyond the client's constructor (keywords): ``wlan``; ``connect_timeout`` (s);
``backoff_min``/``backoff_max`` (ms); ``healthy_ms``; ``max_inflight`` (QoS 1/2 window);
``outbox_msgs``/``outbox_bytes`` (topic + payload + 48 each); ``policy`` (per QoS ``"queue"``
or ``"drop"`` while offline); ``outbox_dir``/``spill_bytes``: when the RAM outbox is full, new
messages spill to a CRC-checked store on flash (``<outbox_dir>/mqtt-spill.<n>``, default the
current folder, at most ``spill_bytes``; 0 turns spilling off) and come back in order as the
outbox drains, so a caller who ignores ``publish()``'s return loses nothing through outages of
minutes; when the store is full its oldest segment is dropped and counted in ``drops``; a
filesystem that refuses writes turns spilling off (``spill_off`` in ``status()``) and the outbox
evicts as without it; ``clean_session``; ``clean_at_start`` (with
``clean_session=False``: a clean connect and DISCONNECT once at power-up, then persistent);
``clock`` (``ticks_ms``/``ticks_add``/
``ticks_diff``); ``rng`` (``rng(n)`` -> int in [0, n)); ``resolver`` (like getaddrinfo);
``link_poll_ms``; ``client_factory``. The rest (``timeout``, ``max_packet``, ``sock_factory``...)
goes to mqtt.client. ``status()`` keys: state (stopped, link_down, backoff, connecting,
connected), reconnects, connects, attempts, failures, last_error, config_error,
duplicate_id_suspected, outbox, outbox_bytes, drops, spilled, spill_off, inflight, late_acks,
callback_errors, rejected, retry_in_ms, rx_oversize, rx_bad_topic, rx_qos2_refused. What
runs rarely lives in mqtt/rcold.py (constructor, connect, disconnect, subscriptions), in
mqtt/rconnect.py (the connect path) and in mqtt/spillrec.py (the spill), imported when needed.
"""

import sys

from micropython import const

from mqtt.client import MQTTException
from mqtt.outbox import ENTRY_OVERHEAD

from mqtt.state import BACKOFF, CONNECTED, CONNECTING, LINK_DOWN, STOPPED  # noqa: F401

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PID = const(4)
_STAGE = const(5)
_QUICK_KICK_LIMIT = const(3)  # this many drops in a row before healthy_ms: likely a duplicate id
_FLUSH_BUDGET_MS = const(100)
_RX_BATCH = const(32)  # packets processed per step at most
_PUBACK = const(0x40)
_PUBCOMP = const(0x70)


def _unload(m):
    sys.modules.pop(m, None)
    try:
        delattr(sys.modules["mqtt"], m[5:])
    except (AttributeError, KeyError):
        pass


def _cold(f, *a):
    # The wrapper's cold paths (mqtt/rcold.py: constructor, connect, disconnect, subscription
    # bookkeeping, wait_msg) are imported for one call and dropped after.
    __import__("mqtt.rcold")
    try:
        return getattr(sys.modules["mqtt.rcold"], f)(*a)
    finally:
        _unload("mqtt.rcold")


def _due(clk, at, now, span):
    # Deadline `at` (set at most `span` ms ahead) reached? One that reads further ahead than
    # span was passed more than half the ticks period ago (2^29 ms on the ESP32): due, not
    # "not yet" for another 6 days.
    d = clk.ticks_diff(at, now)
    return d <= 0 or d > span


class MQTTClient:
    DEBUG = False  # umqtt.robust: print what log() is told

    # Set by mqtt/rcold.py's constructor (annotations only: no code, no heap).
    _c: Any
    outbox: Any
    inflight: Any
    _clock: Any
    backoff: Any
    _spill_path: Any
    on_disconnect: Any
    on_connect: Any
    _rejected: Any
    _link_poll_ms: Any
    reconnects: Any
    connects: Any
    config_error: Any
    attempts: Any
    _wlan: Any
    _window: Any
    _up_at: Any
    _subs: Any
    _spill_max: Any
    _spill: Any
    _spill_off: Any
    _healthy_ms: Any
    _fails: Any
    _clean: Any

    def __init__(self, *a, **kw):
        # (client_id, server, port=0, user=None, password=None, keepalive=60, ssl=None,
        # ssl_params={}, wlan=None, connect_timeout=5, ...: see the module docstring), read by
        # mqtt/rcold.py, where this code runs once.
        _cold("__init__", self, a, kw)

    # ---- umqtt-compatible API ----------------------------------------------------------------
    def set_callback(self, f):
        """f(topic, msg) as with umqtt; the client's rx_flags tell retain/QoS/DUP."""
        self._cb = f
        self._c.set_callback(self._on_msg)

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self._c.set_last_will(topic, msg, retain, qos)

    def connect(self, clean_session=None, wait=True):
        """Start keeping a connection and make one attempt now (if the backoff allows it);
        with wait, wait for its CONNACK up to connect_timeout, as umqtt's connect() would.
        Returns the session-present flag if connected, else None; never raises for an outage:
        the wrapper keeps trying from step()."""
        return _cold("connect", self, clean_session, wait)

    def reconnect(self):
        """Drop a live connection and start a new attempt at once. When already disconnected
        it only steps: calling it in a loop cannot defeat the backoff. Returns is_connected()."""
        return _cold("reconnect", self)

    def disconnect(self, drain_ms=100):
        """Give queued and in-flight messages up to drain_ms to go out and be acknowledged,
        send DISCONNECT (if connected) and stop reconnecting. What is left stays queued for the
        next connect(); with a clean session, in-flight ones are queued again as new messages
        (so a last "offline" published just before should get its ack within drain_ms)."""
        _cold("disconnect", self, drain_ms)

    def publish(self, topic, msg, retain=False, qos=0):
        """Queue a publish and send what the window allows. Returns False if the message was
        refused (outbox policy for this QoS while offline, or bigger than the outbox)."""
        if qos not in (0, 1, 2):
            raise ValueError("qos: expected 0..2, got %r" % (qos,))
        # A broker drops a client that sends an invalid topic: such a message would stick at
        # the head of the outbox and kill every connection, so it is refused here.
        self._c.check_topic(topic)  # ValueError naming it (the client remembers good ones)
        offline = self._state != CONNECTED
        sp = self._spill
        if (sp is not None and sp.depth()) or not self.outbox.has_room(
            len(topic) + len(msg) + ENTRY_OVERHEAD
        ):
            if not (offline and self.outbox.policy[qos] == "drop"):
                from mqtt.spillrec import spill

                if spill(self, [topic, msg, retain, qos, 0, 0]):
                    return True
        ok = self.outbox.put(topic, msg, retain, qos, offline)
        if ok and not offline:
            self._flush()
        return ok

    def subscribe(self, topic, qos=0):
        """Remember a subscription (replayed after every lost session) and send it now if
        connected. A filter the broker refused is tried again only by calling this again."""
        _cold("subscribe", self, topic, qos)

    def unsubscribe(self, topic):
        _cold("unsubscribe", self, topic)

    def check_msg(self):
        """One bounded step (see step()); messages go to the callback."""
        self.step()

    def wait_msg(self, timeout_ms=None):
        """umqtt semantics: block until one message arrives (or timeout_ms passes), keeping
        the connection up meanwhile. Returns True if a message was delivered."""
        return _cold("wait_msg", self, timeout_ms)

    def ping(self):
        _cold("ping", self)

    def log(self, in_reconnect, e):
        """umqtt.robust hook: subclasses may override it to report faults."""
        if self.DEBUG:
            print("mqtt.robust: %s: %s" % ("reconnect" if in_reconnect else "error", e))

    def delay(self, i):
        """umqtt.robust hook; kept for compatibility, pacing is the backoff's job."""

    @property
    def rx_flags(self):
        """First byte of the PUBLISH being delivered to the callback: retain bit 0, QoS bits
        1-2, DUP bit 3 (read it inside the callback)."""
        return self._c.rx_flags

    # ---- status ------------------------------------------------------------------------------
    def is_connected(self):
        return self._state == CONNECTED

    def withdraw(self, topic, msg):
        """Take back a message still queued (not yet written; after a lost clean session, the
        in-flight ones are queued again). True if it was; False if it went out or is in flight.
        For a caller whose message is worthless late: a live reading becomes a timed record."""
        return self.outbox.withdraw(topic, msg)

    def holds(self, topic, msg):
        """True while a message equal to (topic, msg) is queued or in flight, i.e. not yet
        acknowledged (QoS 1/2) or written (QoS 0). With messages spilled to flash it answers
        True: they are not searched, so the caller waits as it would for idle()."""
        sp = self._spill
        return (
            bool(sp and sp.depth())
            or self.outbox.holds(topic, msg)
            or self.inflight.holds(topic, msg)
        )

    def idle(self):
        """True when nothing is queued or in flight (safe to sleep or power down)."""
        sp = self._spill
        return not len(self.outbox) and not len(self.inflight) and not (sp and sp.depth())

    def status(self):
        s = {
            "state": self._state,
            "reconnects": self.reconnects,
            "connects": self.connects,
            "attempts": self.attempts,
            "failures": self._fails,
            "last_error": self.last_error,
            "config_error": self.config_error,
            "duplicate_id_suspected": self.kicks_suspect,
            "outbox": len(self.outbox),
            "outbox_bytes": self.outbox.bytes,
            "drops": self.outbox.dropped() + (self._spill.dropped if self._spill else 0),
            "spilled": self._spill.depth() if self._spill else 0,
            "spill_off": self._spill_off,
            "inflight": len(self.inflight),
            "late_acks": self.late_acks + self._c.stray,
            # inbound PUBLISH not delivered: over max_packet; a topic no client may publish
            # (wildcards, NUL, bad UTF-8); a QoS 2 past the client's bound (link closed)
            "rx_oversize": self._c.dropped,
            "rx_bad_topic": self._c.bad_topic,
            "rx_qos2_refused": self._c.refused,
            "callback_errors": self.callback_errors,
            "rejected": list(self._rejected),
            "retry_in_ms": 0,
        }
        if self._state == BACKOFF:
            d = self._clock.ticks_diff(self._next_at, self._clock.ticks_ms())
            s["retry_in_ms"] = d if 0 < d <= self.backoff.hi else 0
        return s

    # ---- the state machine -------------------------------------------------------------------
    def step(self):
        """Advance one bounded step: watch the link, connect when due, read what arrived,
        flush the outbox. Never raises for a transient fault."""
        st = self._state
        if st == STOPPED:
            return
        clk = self._clock
        now = clk.ticks_ms()
        w = self._wlan
        if w is not None and (st == LINK_DOWN or _due(clk, self._link_at, now, self._link_poll_ms)):
            self._link_at = clk.ticks_add(now, self._link_poll_ms)
            if not w.isconnected():
                if st in (CONNECTED, CONNECTING):
                    self._drop("wifi station down", False)
                self._state = LINK_DOWN
                return
            if st == LINK_DOWN:
                # The station is back: connect now unless the backoff says otherwise.
                self._state = st = BACKOFF
        if st == CONNECTED:
            self._service(now)
        elif st == CONNECTING:
            from mqtt.rconnect import await_connack

            await_connack(self, now)
        elif _due(clk, self._next_at, now, self.backoff.hi):
            from mqtt.rconnect import attempt

            attempt(self, now)
        else:
            return
        if self._state == CONNECTED:
            # the connect path (about 3 KB on the ESP32) leaves the heap until the next connect
            _unload("mqtt.rconnect")

    def _service(self, now):
        c = self._c
        try:
            n = 0
            while n < _RX_BATCH and c.check_msg() is not None:
                n += 1
        except (OSError, MQTTException) as e:
            self._drop(e)
            return
        if self._state != CONNECTED:
            return
        self._flush()
        # A negative age: up for more than half the ticks period (2^29 ms on the ESP32).
        d = self._clock.ticks_diff(now, self._up_at)
        if not self._healthy and (d >= self._healthy_ms or d < 0):
            # Only a connection that lasted resets the pace: "accepted, then kicked" (a
            # duplicate client id, an overloaded broker) keeps backing off.
            self._healthy = True
            self.backoff.reset()
            self._quick_kicks = 0
            self.kicks_suspect = False

    def _flush(self):
        """Send queued messages in order while the window has room, bounded in time."""
        clk = self._clock
        ob = self.outbox
        infl = self.inflight
        c = self._c
        t0 = clk.ticks_ms()
        sp = self._spill
        if sp is not None and sp.depth():
            from mqtt.spillrec import refill

            refill(self, sp)
        try:
            while len(ob) and len(infl) < self._window:
                e = ob.first()
                pid = c.publish(e[0], e[1], e[2], e[3])
                ob.pop()
                if e[3]:
                    e[_PID] = pid
                    infl.add(e)
                if clk.ticks_diff(clk.ticks_ms(), t0) >= _FLUSH_BUDGET_MS:
                    break
        except (OSError, MQTTException) as e:
            # The head stays queued: a PUBLISH that failed to go out entirely is sent again.
            self._drop(e)

    def _on_msg(self, topic, msg):
        self._got_msg = True
        if self._cb:
            self._user(self._cb, topic, msg)

    def _user(self, f, *a):
        # A callback's bug must not pass for a network fault (an OSError would drop the
        # link) nor break the packet being processed: counted, reported, carried on.
        try:
            f(*a)
        except Exception as e:  # noqa: BLE001 - any user error, Ctrl-C still gets through
            self.callback_errors += 1
            self.last_error = "callback %s failed: %r" % (getattr(f, "__name__", "?"), e)
            self.log(False, self.last_error)

    def _on_ack(self, pid, kind):
        # The client reports an ack it was waiting for; acks matching nothing at all it
        # counts itself (stray). Subscription acks are not ours to track.
        if kind in (_PUBACK, _PUBCOMP):
            e = self.inflight.find(pid)
            if e is None:
                self.late_acks += 1
            else:
                self.inflight.remove(e)

    def _sync_stages(self):
        # Before the client forgets its in-flight table (a new connect clears it), note which
        # QoS 2 messages got their PUBREC: those are resumed with PUBREL, not PUBLISH.
        f = self._c.inflight
        for e in self.inflight.entries():
            if e[3] == 2 and f.get(e[_PID]) == _PUBCOMP:
                e[_STAGE] = 1

    def _sub_one(self, t):
        s = self._subs[t]
        try:
            self._c.subscribe(t, s[0])
        except MQTTException as e:
            if e.code != 0x80:
                raise
            self._rejected[t] = True
            self.last_error = "subscription to %s refused by the broker (SUBACK 0x80)" % t.decode()
            self.log(False, self.last_error)
            return
        s[1] = True

    def _abort(self):
        # Close without DISCONNECT (the broker then publishes our will, as it should).
        t = self._tcp
        self._tcp = None
        self._poll = None
        if t is not None:
            t.close()
        c = self._c
        s = c.sock
        c.sock = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def _after_link_lost(self):
        self._abort()
        if self._clean:
            # The next connection is a new session: nothing will be resumed.
            self.outbox.requeue(self.inflight.take_all())

    def _drop(self, why, count_kick=True):
        """The connection is gone (or must go): close it and schedule the next attempt."""
        st = self._state
        if st not in (CONNECTED, CONNECTING):
            return
        if st == CONNECTED:
            self._sync_stages()
        self._after_link_lost()
        clk = self._clock
        reason = why if isinstance(why, str) else "connection lost: %r" % (why,)
        if st == CONNECTED and count_kick and not self._healthy:
            self._quick_kicks += 1
            if self._quick_kicks >= _QUICK_KICK_LIMIT:
                self.kicks_suspect = True
                reason = (
                    "dropped %d times in a row soon after CONNACK, "
                    "likely a duplicate client id (%s)" % (self._quick_kicks, reason)
                )
        self.last_error = reason
        self._state = BACKOFF
        self._next_at = clk.ticks_add(clk.ticks_ms(), self.backoff.next())
        self.log(False, reason)
        if st == CONNECTED:
            self._notify_down(reason)

    def _notify_down(self, reason):
        if self.on_disconnect:
            self._user(self.on_disconnect, reason)
