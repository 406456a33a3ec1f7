"""The robust wrapper's cold paths: its constructor, connect(), reconnect(), disconnect(), the
subscription bookkeeping, wait_msg() and ping(). Part of mqtt.robust, kept in its own file
because a node calls them rarely: the wrapper imports this module for one call and drops it
after, so its code is off the heap while the node runs. What each does is documented on the
wrapper's methods of the same names.

    MQTTClient.connect(c)    # mqtt.robust calls connect(c, clean_session, wait) here
"""

import time

from mqtt.backoff import Backoff
from mqtt.client import MQTTClient as _Client
from mqtt.client import MQTTException
from mqtt.outbox import Inflight, Outbox
from mqtt.state import BACKOFF, CONNECTED, CONNECTING, STOPPED


def _as_bytes(t):
    return t.encode() if isinstance(t, str) else bytes(t)


def __init__(w, a, kw):
    _new(w, *a, **kw)


def _new(
    w,
    client_id,
    server,
    port=0,
    user=None,
    password=None,
    keepalive=60,
    ssl=None,
    ssl_params={},
    wlan=None,
    connect_timeout=5,
    backoff_min=1000,
    backoff_max=300000,
    healthy_ms=30000,
    max_inflight=8,
    outbox_msgs=100,
    outbox_bytes=16384,
    policy=("queue", "queue", "queue"),
    outbox_dir=None,
    spill_bytes=65536,
    clean_session=True,
    clean_at_start=False,
    clock=None,
    rng=None,
    resolver=None,
    link_poll_ms=250,
    client_factory=None,
    **options,
):
    if not 1 <= max_inflight <= 65535:
        raise ValueError("max_inflight: expected 1..65535, got %r" % (max_inflight,))
    if connect_timeout <= 0:
        raise ValueError("connect_timeout: expected > 0 s, got %r" % (connect_timeout,))
    w._clock = clk = clock or time
    w._wlan = wlan
    w._ct_ms = int(connect_timeout * 1000)
    w._healthy_ms = healthy_ms
    w._window = max_inflight
    w._link_poll_ms = link_poll_ms
    w._resolver = resolver
    w.backoff = Backoff(backoff_min, backoff_max, rng)
    w.outbox = Outbox(outbox_msgs, outbox_bytes, policy)
    w.inflight = Inflight()
    # Spill: when the RAM outbox is full, new messages go to a durable store on flash (in
    # order: once something is spilled, everything new follows it there) and come back as
    # the outbox drains. Opened on the first spill, or now if an earlier run left records.
    w._spill_path = (outbox_dir.rstrip("/") + "/" if outbox_dir else "") + "mqtt-spill"
    w._spill_max = spill_bytes
    w._spill = None
    w._spill_off = not spill_bytes  # disabled, or the filesystem refused it
    if not w._spill_off:
        from mqtt.spillrec import left, open_store

        if left(w._spill_path):
            open_store(w)
    w._clean = clean_session
    w._clean_at_start = clean_at_start
    kw = dict(options)
    # The wrapper owns the window and never waits for an ack inside a call: the client
    # only writes (its own window is made wide) and reports acks through on_ack.
    kw["max_inflight"] = 65535
    kw["on_ack"] = w._on_ack
    kw.setdefault("timeout", connect_timeout)
    kw.setdefault("ticks", clk.ticks_ms)
    w._c = (client_factory or _Client)(
        client_id, server, port, user, password, keepalive, ssl, ssl_params, **kw
    )
    w._c.set_callback(w._on_msg)  # wait_msg() notices messages even without one
    w._own_sock = "sock_factory" not in kw  # else the factory resolves and connects
    w._tcp = None  # our socket while its non-blocking TCP connect is under way
    w._cb = None
    w.on_connect = None  # f(session_present: bool)
    w.on_disconnect = None  # f(reason: str)
    w._subs = {}  # topic (bytes) -> [qos, sent in the current session]
    w._sub_order = []  # topics in the order first subscribed (replay order)
    w._unsubs = []  # unsubscribes made while offline, for a resumed session
    w._rejected = {}  # topic -> True: SUBACK 0x80, not replayed until subscribed again
    w._state = STOPPED
    w._present = False
    w._next_at = 0
    w._link_at = 0
    w._up_at = 0
    w._try_at = 0
    w._phase_clean = False  # CONNECTING: the power-up clean connect of clean_at_start
    w._healthy = False
    w._booted = False  # a connection was made since power-up
    w._got_msg = False
    w._quick_kicks = 0
    w._fails = 0  # failed attempts in a row
    w._poll = None
    w.reconnects = 0
    w.attempts = 0
    w.connects = 0
    w.callback_errors = 0
    w.late_acks = 0  # acks for nothing we had in flight (the client's own count added)
    w.last_error = None
    w.config_error = False
    w.kicks_suspect = False


def connect(w, clean_session=None, wait=True):
    if clean_session is not None:
        w._clean = clean_session
    if w._state == STOPPED:
        w._state = BACKOFF
        w._next_at = w._clock.ticks_ms()
        w._link_at = w._next_at
    w.step()
    t0 = time.ticks_ms()
    while wait and w._state == CONNECTING:
        left = w._ct_ms - time.ticks_diff(time.ticks_ms(), t0)
        if left <= 0:
            break
        p = w._poll
        if p is not None:
            p.poll(left if left < 50 else 50)
        else:
            time.sleep_ms(1)
        w.step()
    return w._present if w._state == CONNECTED else None


def reconnect(w):
    if w._state in (CONNECTED, CONNECTING):
        w._drop("reconnect requested", False)
        w._next_at = w._clock.ticks_ms()
    elif w._state == STOPPED:
        return w.connect() is not None
    w.step()
    return w._state == CONNECTED


def disconnect(w, drain_ms=100):
    t0 = time.ticks_ms()
    while w._state == CONNECTED and not w.idle():
        if time.ticks_diff(time.ticks_ms(), t0) >= drain_ms:
            break
        w._service(w._clock.ticks_ms())
        time.sleep_ms(1)
    st = w._state
    w._state = STOPPED
    if w._spill is not None:
        w._spill.flush()  # what is spilled survives a reboot
    if st == CONNECTED:
        w._sync_stages()
        try:
            w._c.disconnect()
        except Exception:  # noqa: BLE001 - the link may already be gone
            pass
        w._after_link_lost()
        w._notify_down("disconnect requested")
    elif st == CONNECTING:
        w._abort()


def subscribe(w, topic, qos=0):
    if qos not in (0, 1, 2):
        raise ValueError("qos: expected 0..2, got %r" % (qos,))
    w._c.check_topic(topic, True)  # a filter the broker refuses costs every connection
    t = _as_bytes(topic)
    if t not in w._subs:
        w._sub_order.append(t)
    w._subs[t] = [qos, False]
    w._rejected.pop(t, None)
    if t in w._unsubs:
        w._unsubs.remove(t)
    if w._state == CONNECTED:
        try:
            w._sub_one(t)
        except (OSError, MQTTException) as e:
            w._drop(e)


def unsubscribe(w, topic):
    w._c.check_topic(topic, True)
    t = _as_bytes(topic)
    if t in w._subs:
        del w._subs[t]
        w._sub_order.remove(t)
    w._rejected.pop(t, None)
    if w._state == CONNECTED:
        try:
            w._c.unsubscribe(t)
        except (OSError, MQTTException) as e:
            w._drop(e)
    elif t not in w._unsubs:
        w._unsubs.append(t)


def wait_msg(w, timeout_ms=None):
    start = time.ticks_ms()
    w._got_msg = False
    while True:
        w.step()
        if w._got_msg:
            return True
        if timeout_ms is not None and time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
            return False
        time.sleep_ms(5 if w._state == CONNECTED else 50)


def ping(w):
    if w._state == CONNECTED:
        try:
            w._c.ping()
        except (OSError, MQTTException) as e:
            w._drop(e)
