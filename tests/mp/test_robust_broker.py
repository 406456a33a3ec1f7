# mqtt.robust against real mosquitto, through the harness fault proxy: the outage suite.
# Observers are paho subscribers on the host; Wire taps what our client writes, so DUP flags
# and packet ids are checked on the wire (a broker does not pass our DUP flag on).
import needs
import time

import harness
from mqtt.robust import MQTTClient
from robust_util import Wire, check_dups, heap, pump

TIMEOUT = 120


def _client(cid, port, wire=None, **kw):
    kw.setdefault("backoff_min", 200)
    kw.setdefault("spill_bytes", 0)  # RAM outbox only, unless a test gives a folder
    kw.setdefault("backoff_max", 1000)
    kw.setdefault("connect_timeout", 2)
    if wire is not None:
        kw["sock_factory"] = wire.factory
    return MQTTClient(cid, "127.0.0.1", port, **kw)


def _payloads(msgs):
    return [m["payload"] for m in msgs]


def _wait_observer_ready(port, oid, topic):
    # After a broker restart the observer reconnects on its own within 1-2 s: wait for it to
    # see a probe, so the test knows nothing it checks is lost on the observer's side.
    before = harness.messages(oid, timeout=0, clear=True)
    for i in range(20):
        harness.publish(port, topic, "probe%d" % i, qos=1)
        got = harness.messages(oid, wait_for=1, timeout=0.5, clear=True)
        if any(m["payload"].startswith("probe") for m in got):
            return before
    raise AssertionError("observer did not come back")


def test_half_open_while_idle_detected_within_1_5_keepalive_loop_never_blocked():
    b = harness.broker()
    p = harness.proxy(b["port"])
    c = _client("rb-halfidle", p["port"], keepalive=2)
    downs = []
    c.on_disconnect = downs.append
    assert c.connect() is False
    harness.proxy_mode(p["id"], "blackhole", dir="both")
    t0 = time.ticks_ms()
    worst = 0
    while c.is_connected():
        s = time.ticks_ms()
        c.step()
        d = time.ticks_diff(time.ticks_ms(), s)
        worst = d if d > worst else worst
        assert time.ticks_diff(time.ticks_ms(), t0) < 4000, "half-open not detected"
        time.sleep_ms(20)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert took <= 3000, took  # 1.5 x keepalive
    assert worst < 100, worst
    assert downs and "110" in downs[0] or "ETIMEDOUT" in downs[0], downs
    harness.proxy_mode(p["id"], "pass")
    pump(c, until=c.is_connected, limit_ms=5000)
    assert c.status()["reconnects"] == 1


def test_half_open_during_qos1_publish_resent_with_dup_and_delivered():
    b = harness.broker()
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/hopub/#", qos=1)
    w = Wire(p["port"])
    c = _client("rb-hopub", p["port"], w, keepalive=2, clean_session=False)
    assert c.connect() is not None
    harness.proxy_mode(p["id"], "blackhole", dir="both")
    assert c.publish("rb/hopub/t", "m1", qos=1)
    pump(c, until=lambda: not c.is_connected(), limit_ms=4000)
    assert c.status()["inflight"] == 1
    harness.proxy_mode(p["id"], "pass")
    pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=5000)
    assert _payloads(harness.messages(o, wait_for=1, timeout=5)) == ["m1"]
    assert check_dups(w.publishes()) == 1
    c.disconnect()


def test_broker_restart_with_10_qos1_in_flight_on_persistent_session():
    b = harness.broker("rb-restart", persistence=True)
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/restart/#", qos=1)
    w = Wire(p["port"])
    c = _client("rb-restart", p["port"], w, keepalive=10, clean_session=False, max_inflight=10)
    assert c.connect() is False
    harness.proxy_mode(p["id"], "blackhole", dir="down")  # the broker gets them, acks vanish
    for i in range(10):
        c.publish("rb/restart/t", "r%d" % i, qos=1)
    c.step()
    assert c.status()["inflight"] == 10
    assert len(harness.messages(o, wait_for=10, timeout=5)) == 10
    harness.proxy_mode(p["id"], "refuse")  # the client sees its link go, retries are refused
    pump(c, until=lambda: not c.is_connected(), limit_ms=3000)
    harness.broker_restart("rb-restart")
    early = _wait_observer_ready(b["port"], o, "rb/restart/probe")
    assert len(early) == 10
    presents = []
    c.on_connect = presents.append
    harness.proxy_mode(p["id"], "pass")
    pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=5000)
    assert presents == [True]  # the session survived the restart
    # Each message reached the broker before the restart; the resends go through again
    # (QoS 1 is at least once, and a broker does not pass our DUP flag on).
    got = _payloads(harness.messages(o, wait_for=10, timeout=5))
    assert sorted(got) == sorted("r%d" % i for i in range(10)), got
    assert check_dups(w.publishes()) == 10  # each repeat: DUP=1 and its original id
    c.disconnect()


def test_puback_lost_then_link_cut_resent_with_dup():
    b = harness.broker()
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/pubacklost/#", qos=1)
    w = Wire(p["port"])
    c = _client("rb-pubacklost", p["port"], w, clean_session=False)
    c.connect()
    harness.proxy_drop(p["id"], "PUBACK", count=1)
    c.publish("rb/pubacklost/t", "a1", qos=1)
    c.publish("rb/pubacklost/t", "a2", qos=1)
    pump(c, until=lambda: c.status()["inflight"] == 1, limit_ms=2000)
    harness.proxy_mode(p["id"], "cut", how="rst")
    pump(c, until=lambda: c.status()["reconnects"] == 1 and c.idle(), limit_ms=5000)
    got = _payloads(harness.messages(o, wait_for=3, timeout=3))
    assert sorted(set(got)) == ["a1", "a2"] and got.count("a2") == 1, got
    assert check_dups(w.publishes()) == 1
    c.disconnect()


def test_publish_lost_then_link_cut_resent_with_dup_delivered_once():
    b = harness.broker()
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/publost/#", qos=1)
    w = Wire(p["port"])
    c = _client("rb-publost", p["port"], w, clean_session=False)
    c.connect()
    harness.proxy_drop(p["id"], "PUBLISH", count=1, dir="up")
    c.publish("rb/publost/t", "p1", qos=1)
    pump(c, until=lambda: c.status()["inflight"] == 1, limit_ms=2000, step_ms=50)
    harness.proxy_mode(p["id"], "cut", how="fin")
    pump(c, until=lambda: c.status()["reconnects"] == 1 and c.idle(), limit_ms=5000)
    assert _payloads(harness.messages(o, wait_for=2, timeout=2)) == ["p1"]
    assert check_dups(w.publishes()) == 1
    c.disconnect()


def test_broker_closes_cleanly_noticed_within_1s_then_reconnects():
    b = harness.broker("rb-close")
    c = _client("rb-close", b["port"])
    downs = []
    c.on_disconnect = downs.append
    assert c.connect() is False
    harness.broker_stop("rb-close")
    took = pump(c, until=lambda: not c.is_connected(), limit_ms=3000)
    assert took <= 1000, took
    assert len(downs) == 1
    assert c.publish("rb/close/t", "queued", qos=1)  # queued, not raised
    harness.broker_start("rb-close")
    pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=5000)


def test_initial_connect_while_broker_down_then_queued_messages_flow():
    b = harness.broker("rb-initdown")
    harness.broker_stop("rb-initdown")
    c = _client("rb-initdown", b["port"])
    assert c.connect() is None  # no exception, no long block
    st = c.status()
    assert st["state"] == "backoff" and st["last_error"], st
    for i in range(3):
        assert c.publish("rb/initdown/t", "q%d" % i, qos=1)
    harness.broker_start("rb-initdown")
    o = harness.observe(b["port"], "rb/initdown/#", qos=1)
    pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=5000)
    assert _payloads(harness.messages(o, wait_for=3, timeout=5)) == ["q0", "q1", "q2"]


def test_resubscribes_after_broker_restart_without_session():
    b = harness.broker("rb-resub")
    got = []
    c = _client("rb-resub", b["port"], clean_session=False)
    c.set_callback(lambda t, m: got.append((t, m)))
    c.subscribe("rb/resub/cmd", 1)
    presents = []
    c.on_connect = presents.append
    c.connect()
    harness.publish(b["port"], "rb/resub/cmd", "one", qos=1)
    pump(c, until=lambda: got, limit_ms=3000)
    harness.broker_restart("rb-resub")  # no persistence: the broker forgets our session
    pump(c, until=lambda: c.status()["reconnects"] == 1, limit_ms=5000)
    assert presents == [False, False]
    harness.publish(b["port"], "rb/resub/cmd", "two", qos=1)
    pump(c, until=lambda: len(got) == 2, limit_ms=3000)
    assert got == [(b"rb/resub/cmd", b"one"), (b"rb/resub/cmd", b"two")], got


def test_persistent_session_receives_broker_queued_messages():
    b = harness.broker("rb-queued", persistence=True)
    got = []
    c = _client("rb-queued", b["port"], clean_session=False, clean_at_start=True)
    c.set_callback(lambda t, m: got.append((m, c._c.rx_flags & 8)))  # (payload, DUP bit)
    c.subscribe("rb/queued/#", 1)
    assert c.connect() is False  # clean at power-up, then a new persistent session
    c.disconnect()
    for i in range(3):
        harness.publish(b["port"], "rb/queued/t", "k%d" % i, qos=1)
    presents = []
    c.on_connect = presents.append
    assert c.connect() is True
    pump(c, until=lambda: len(got) == 3, limit_ms=3000)
    assert got == [(b"k0", 0), (b"k1", 0), (b"k2", 0)] and presents == [True]
    # and after a link drop (no DISCONNECT) as well; the broker may redeliver a message whose
    # PUBACK it had not read yet, with DUP=1
    c.reconnect()
    c.disconnect()
    harness.publish(b["port"], "rb/queued/t", "k3", qos=1)
    c.connect()
    pump(c, until=lambda: (b"k3", 0) in got, limit_ms=3000)
    assert all(d for m, d in got[3:] if m != b"k3"), got


def test_connack_refusal_from_mosquitto_reported_and_slow():
    b = harness.broker()
    c = MQTTClient("rb-badpw", "127.0.0.1", b["auth_port"], user=b["user"], password="wrong",
                   backoff_min=1000, backoff_max=60000)  # fmt: skip
    assert c.connect() is None
    st = c.status()
    assert st["config_error"] and "CONNACK" in st["last_error"], st
    assert st["retry_in_ms"] >= 29000, st
    pw = b["password"]
    ok = MQTTClient("rb-goodpw", "127.0.0.1", b["auth_port"], user=b["user"], password=pw)
    assert ok.connect() is False


def test_500_queued_qos1_after_outage_with_bounded_heap():
    b = harness.broker()
    p = harness.proxy(b["port"])
    harness.proxy_mode(p["id"], "refuse")
    o = harness.observe(b["port"], "rb/q500/#", qos=1)
    c = _client("rb-q500", p["port"], outbox_msgs=500, outbox_bytes=32000, max_inflight=16)
    c.connect()
    h0 = heap()
    for i in range(600):  # 100 more than fit: the oldest are dropped and counted
        assert c.publish("rb/q500/t", "%05d" % i, qos=1)
        c.step()
    h1 = heap()
    st = c.status()
    assert st["outbox"] == 500 and st["drops"] == 100, st
    per_msg = (h1 - h0) / 500
    # a 6-slot entry list, a 5-byte str payload, the shared topic: 64-bit Unix port, about
    # half of this on the ESP32
    assert per_msg < 200, per_msg
    harness.proxy_mode(p["id"], "pass")
    pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=15000, step_ms=1)
    h2 = heap()
    assert h2 - h0 < 4096, (h0, h1, h2)  # the queue's memory is back
    got = harness.messages(o, wait_for=500, timeout=10, field="payload")
    assert got == ["%05d" % i for i in range(100, 600)], (len(got), got[:3])


def test_slow_pubacks_with_window_pipeline_without_reconnect():
    b = harness.broker()
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/slow/#", qos=1)
    c = _client("rb-slow", p["port"], max_inflight=8)
    c.connect()
    harness.proxy_mode(p["id"], "delay", ms=300, dir="down")
    t0 = time.ticks_ms()
    for i in range(40):
        c.publish("rb/slow/t", "s%d" % i, qos=1)
    most = 0
    while not c.idle():
        c.step()
        most = max(most, c.status()["inflight"])
        assert time.ticks_diff(time.ticks_ms(), t0) < 8000, c.status()
        time.sleep_ms(5)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert most == 8, most
    assert took < 4000, took  # 5 windows of 300 ms, not 40 round trips of 300 ms
    st = c.status()
    assert st["connects"] == 1 and st["state"] == "connected", st
    assert _payloads(harness.messages(o, wait_for=40, timeout=5)) == ["s%d" % i for i in range(40)]


def _listener(backlog):
    # A loopback listener that never accepts (MicroPython has no getsockname: pick a port).
    import os
    import socket

    for _ in range(20):
        port = 40000 + int.from_bytes(os.urandom(2), "little") % 20000
        s = socket.socket()
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            s.listen(backlog)
            return s, port
        except OSError:
            s.close()
    raise AssertionError("no free port")


def _step_until_backoff(c, limit_ms):
    worst = 0
    t0 = time.ticks_ms()
    while c.status()["state"] == "connecting":
        s = time.ticks_ms()
        c.step()
        d = time.ticks_diff(time.ticks_ms(), s)
        worst = d if d > worst else worst
        assert time.ticks_diff(time.ticks_ms(), t0) < limit_ms, c.status()
        time.sleep_ms(10)
    return worst, time.ticks_diff(time.ticks_ms(), t0)


def test_tcp_accepted_but_no_connack_real_socket_times_out_loop_never_blocked():
    lst, port = _listener(5)  # the kernel completes the handshake; nobody answers CONNECT
    try:
        c = MQTTClient("rb-noconnack", "127.0.0.1", port, connect_timeout=1, backoff_min=500)
        t0 = time.ticks_ms()
        assert c.connect(wait=False) is None
        assert time.ticks_diff(time.ticks_ms(), t0) < 100
        worst, took = _step_until_backoff(c, 3000)
        st = c.status()
        assert worst < 100 and 900 <= took <= 1500, (worst, took)
        assert "timed out" in st["last_error"] and 0 < st["retry_in_ms"] <= 1000, st
    finally:
        lst.close()


def test_tcp_connect_pending_does_not_block_the_loop():
    import socket

    lst, port = _listener(0)
    fill = []
    try:
        for _ in range(4):  # fill the accept queue: further SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            except OSError:
                pass
            fill.append(s)
        time.sleep_ms(100)
        c = MQTTClient("rb-syn", "127.0.0.1", port, connect_timeout=1)
        t0 = time.ticks_ms()
        c.connect(wait=False)
        assert time.ticks_diff(time.ticks_ms(), t0) < 100
        worst, took = _step_until_backoff(c, 3000)
        assert worst < 100 and took <= 1500, (worst, took)
        assert c.status()["state"] == "backoff"
    finally:
        for s in fill:
            s.close()
        lst.close()


def test_1000_reconnect_cycles_real_broker_no_socket_leak_flat_heap():
    import socket

    b = harness.broker()
    c = _client("rb-cycles", b["port"], clean_session=False)
    c.subscribe("rb/cycles/cmd", 1)
    assert c.connect() is not None

    def fd():
        s = socket.socket()
        n = s.fileno()
        s.close()
        return n

    fd0 = fd()
    h0 = None
    for i in range(1000):
        c.publish("rb/cycles/t", "m", qos=1)
        c.reconnect()  # drop the link (no DISCONNECT) and connect again at once
        pump(c, until=lambda: c.is_connected() and c.idle(), limit_ms=3000, step_ms=0)
        if i == 99:
            h0 = heap()
    h1 = heap()
    st = c.status()
    assert st["reconnects"] == 1000 and st["connects"] == 1001, st
    assert fd() == fd0  # every old socket was closed
    assert h1 - h0 < 2048, (h0, h1)
    c.disconnect()


def test_tls_connects_through_nonblocking_tcp_and_wrong_ca_is_a_config_error():
    needs.ssl()
    b = harness.broker()
    o = harness.observe(b["port"], "rb/tls/#", qos=1)
    c = MQTTClient("rb-tls", "localhost", b["tls_port"], ssl=True, ssl_params={"cafile": b["ca"]})
    assert c.connect() is False
    c.publish("rb/tls/t", "secret", qos=1)
    pump(c, until=c.idle, limit_ms=3000)
    assert _payloads(harness.messages(o, wait_for=1, timeout=5)) == ["secret"]
    c.disconnect()
    bad = MQTTClient("rb-tlsbad", "localhost", b["tls_port"], ssl=True,
                     ssl_params={"cafile": b["bad_ca"]}, backoff_max=60000)  # fmt: skip
    assert bad.connect() is None  # not raised
    st = bad.status()
    assert st["config_error"] and "TLS" in st["last_error"], st
    assert st["retry_in_ms"] >= 29000, st


def test_umqtt_robust_example_sub_runs_unchanged_but_the_import():
    # umqtt.robust's example_sub_robust.py, with our import line and a bounded loop.
    b = harness.broker()
    got = []

    def sub_cb(topic, msg):
        got.append((topic, msg))

    c = MQTTClient("rb-umqtt-example", "127.0.0.1", b["port"])
    c.DEBUG = True
    c.set_callback(sub_cb)
    if not c.connect(clean_session=False):
        c.subscribe(b"foo_topic")
    harness.publish(b["port"], "foo_topic", "hello", qos=1)
    for _ in range(3):
        if got:
            break
        c.wait_msg(timeout_ms=2000)
    assert got == [(b"foo_topic", b"hello")], got
    assert c.wait_msg(timeout_ms=100) is False  # nothing more: returns at the timeout
    c.disconnect()


def test_broker_down_long_time_backoff_within_bounds_then_flushes_in_order():
    # Two hours of outage on a fake clock (1 s per loop turn), real refused connections.
    from robust_util import FakeClock

    b = harness.broker("rb-longdown")
    harness.broker_stop("rb-longdown")
    clk = FakeClock(start=5000)
    c = MQTTClient("rb-longdown", "127.0.0.1", b["port"], clock=clk, backoff_min=1000,
                   backoff_max=300000, outbox_msgs=200)  # fmt: skip
    c.connect(wait=False)
    times = []
    last = c.status()["attempts"]
    for s in range(7200):
        if s % 60 == 0:
            c.publish("rb/longdown/t", "%04d" % (s // 60), qos=1)  # a reading a minute
        c.step()
        a = c.status()["attempts"]
        if a != last:
            times.append(s)
            last = a
        clk.advance(1000)
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert all(1 <= g <= 301 for g in gaps), gaps  # within [backoff_min, backoff_max]
    assert max(gaps[-5:]) > 100, gaps  # it did slow down
    assert last < 100, last  # no busy loop: a few dozen attempts in two hours
    assert c.status()["outbox"] == 120 and c.status()["state"] != "connected"
    harness.broker_start("rb-longdown")
    o = harness.observe(b["port"], "rb/longdown/#", qos=1)
    for _ in range(2000):  # at most the 300 s ceiling of fake time
        c.step()
        st = c.status()["state"]
        if st == "connected":
            break
        if st == "connecting":  # real I/O under way: let real time, not fake time, pass
            time.sleep_ms(5)
        else:
            clk.advance(1000)
    pump(c, clock=clk, ms=10, until=c.idle, limit_ms=5000)
    got = _payloads(harness.messages(o, wait_for=120, timeout=5))
    assert got == ["%04d" % i for i in range(120)], got[:5]
