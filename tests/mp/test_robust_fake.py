# mqtt.robust against the scripted FakeBroker with an injected clock: the protocol-level
# behaviours (refusals, resume with DUP, late acks, backoff pacing, wrap) run fast and exactly.
import gc
import time

from fakebroker import packet, u16
from robust_util import FakeClock, FakeWLAN, SeqRNG, fake_robust, heap, publishes

TIMEOUT = 60


def _run(c, clk, ms, every=10):
    # Drive the node loop for ms of fake time, one step every `every` ms; returns the longest
    # real time one step took (ms).
    worst = 0
    t = 0
    while t < ms:
        t0 = time.ticks_ms()
        c.step()
        d = time.ticks_diff(time.ticks_ms(), t0)
        worst = d if d > worst else worst
        clk.advance(every)
        t += every
    return worst


def test_connack_refusals_1_2_4_5_are_config_errors_retried_at_slowest_pace():
    for code in (1, 2, 4, 5):
        c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=60000, rng=SeqRNG(0.0))
        fb.connack = (0, code)
        downs = []
        c.on_disconnect = downs.append
        assert c.connect() is None  # refused, not raised
        st = c.status()
        assert st["state"] == "backoff" and st["config_error"], st
        assert ("CONNACK %d" % code) in st["last_error"] and "configuration" in st["last_error"], st
        # slowest pace: never sooner than backoff_max / 2, every time
        assert st["retry_in_ms"] >= 30000, st
        _run(c, clk, 29000, every=100)
        assert sw.calls == 1, (code, sw.calls)
        _run(c, clk, 2000, every=100)
        assert sw.calls == 2 and c.status()["retry_in_ms"] >= 29000
        # fixed configuration: connects on the next attempt, error cleared
        fb.connack = (0, 0)
        _run(c, clk, 31000, every=100)
        assert c.is_connected() and not c.status()["config_error"]
        assert not downs  # no connection was up, so nothing went down


def test_connack_3_server_unavailable_is_transient_with_normal_backoff():
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=60000, rng=SeqRNG(1.0))
    fb.connack = (0, 3)
    c.connect()
    st = c.status()
    assert not st["config_error"] and "CONNACK 3" in st["last_error"], st
    assert st["retry_in_ms"] == 2000, st  # the top of the first window, [1 s, 2 s]
    _run(c, clk, 2010)
    assert sw.calls == 2 and 3980 <= c.status()["retry_in_ms"] <= 4000
    fb.connack = (0, 0)
    _run(c, clk, 4010)
    assert c.is_connected() and c.status()["reconnects"] == 0 and c.status()["connects"] == 1


def test_late_duplicate_puback_is_counted_without_reconnect():
    c, fb, clk, sw = fake_robust()
    c.connect()
    assert c.publish("t", "m", qos=1)
    c.step()
    pid = publishes(fb)[0][2]
    assert c.idle()
    fb.feed(packet(0x40, u16(pid)))  # the same PUBACK again, late
    fb.feed(packet(0x40, u16(4321)))  # and one for an id never used
    _run(c, clk, 50)
    st = c.status()
    assert st["late_acks"] == 2 and st["state"] == "connected" and st["connects"] == 1, st
    assert sw.calls == 1
    assert c.publish("t", "m2", qos=1)  # still usable
    c.step()
    assert c.idle()


def test_tcp_accepted_but_no_connack_times_out_without_blocking_then_backs_off():
    c, fb, clk, sw = fake_robust(connect_timeout=5, backoff_min=2000, backoff_max=60000)
    fb.connack = None  # the broker never answers CONNECT
    t0 = time.ticks_ms()
    c.connect(wait=False)
    assert c.status()["state"] == "connecting"
    worst = _run(c, clk, 4900)
    assert c.status()["state"] == "connecting"
    _run(c, clk, 200)
    st = c.status()
    assert st["state"] == "backoff" and "timed out" in st["last_error"], st
    assert 0 < st["retry_in_ms"] <= 2000
    assert fb.socks[0].closed  # the half-made connection is not leaked
    assert worst < 50 and time.ticks_diff(time.ticks_ms(), t0) < 5000, worst


def test_broker_down_long_time_backs_off_within_bounds_then_flushes_in_order():
    rng = SeqRNG(0.5)
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=300000, rng=rng, outbox_msgs=50)
    sw.up = False
    c.connect()
    attempts_at = []
    last = sw.calls
    for i in range(20):
        c.publish("r", "%d" % i, qos=1)
    # 2 hours of outage in 1 s steps of the node loop
    for s in range(7200):
        c.step()
        if sw.calls != last:
            attempts_at.append(s)
            last = sw.calls
        clk.advance(1000)
    gaps = [attempts_at[i + 1] - attempts_at[i] for i in range(len(attempts_at) - 1)]
    # window doubles from 1 s, jitter takes its middle; never faster than the lower bound,
    # never slower than the upper bound (+1 s for the step granularity)
    assert all(1 <= g <= 301 for g in gaps), gaps
    # the middle of each window: 2.5, 4.5, 8.5 ... s, then 150.5 s at the 300 s ceiling
    assert gaps[:8] == [3, 5, 9, 17, 33, 65, 129, 151], gaps
    assert sw.calls <= 60, sw.calls  # no busy loop: 8 + 7200 / 151 attempts
    assert len(c.outbox) == 20
    sw.up = True
    _run(c, clk, 301000, every=1000)
    assert c.is_connected()
    got = [p[4] for p in publishes(fb)]
    assert got == [b"%d" % i for i in range(20)], got
    assert c.idle()


def test_healthy_connection_resets_backoff_but_quick_kicks_keep_it_and_are_reported():
    c, fb, clk, sw = fake_robust(
        backoff_min=1000, backoff_max=60000, healthy_ms=10000, rng=SeqRNG(1.0)
    )
    downs = []
    c.on_disconnect = downs.append
    c.connect()
    delays = []
    for _ in range(4):  # accepted, then kicked at once (another node with our client id)
        _run(c, clk, 100)
        fb.sock.eof = True
        _run(c, clk, 10)
        assert c.status()["state"] == "backoff"
        delays.append(c.status()["retry_in_ms"])
        _run(c, clk, delays[-1] + 10)
        assert c.is_connected()
    # the backoff never reset (10 ms of the delay already passed when it is read)
    assert delays == [1990, 3990, 7990, 15990], delays
    assert c.status()["duplicate_id_suspected"]
    assert "duplicate client id" in downs[-1] and "duplicate client id" not in downs[1], downs
    # a connection that lasts resets the pace
    _run(c, clk, 10100)
    assert not c.status()["duplicate_id_suspected"]
    fb.sock.eof = True
    _run(c, clk, 10)
    assert c.status()["retry_in_ms"] == 1990


def test_suback_failure_reported_and_not_replayed_on_new_sessions():
    c2, fb2, clk2, sw2 = fake_robust()
    real = fb2.answer

    def answer(first, body):
        if first & 0xF0 == 0x80 and b"denied" in body:
            return packet(0x90, body[:2] + b"\x80")
        return real(first, body)

    fb2.answer = answer
    c2.subscribe("ok/#", 1)
    c2.subscribe("denied/#", 1)
    c2.connect()
    st = c2.status()
    assert st["state"] == "connected" and st["rejected"] == [b"denied/#"], st
    assert "denied/#" in st["last_error"] and "0x80" in st["last_error"]
    subs = [b for f, b in fb2.packets if f & 0xF0 == 0x80]
    assert len(subs) == 2
    fb2.sock.eof = True  # new connection, new session: only the accepted filter is replayed
    _run(c2, clk2, 2000)
    assert c2.is_connected() and c2.status()["reconnects"] == 1
    subs = [b for f, b in fb2.packets if f & 0xF0 == 0x80]
    assert len(subs) == 3 and b"ok/#" in subs[2], subs
    c2.subscribe("denied/#", 1)  # asked again explicitly: tried again
    assert len([1 for f, b in fb2.packets if f & 0xF0 == 0x80]) == 4


def test_resumed_session_resends_inflight_with_dup_and_same_ids_new_session_as_new():
    c, fb, clk, sw = fake_robust(clean_session=False, max_inflight=10)
    fb.connack = (0, 0)
    c.connect()
    fb.drop = {0x30}  # the broker takes PUBLISH but no PUBACK comes back
    for i in range(5):
        c.publish("t", "m%d" % i, qos=1)
    c.step()
    first = publishes(fb)
    assert [p[0] for p in first] == [0] * 5 and len(c.inflight) == 5
    ids = [p[2] for p in first]
    fb.sock.eof = True
    _run(c, clk, 10)
    assert c.status()["state"] == "backoff" and c.status()["inflight"] == 5
    fb.drop = set()
    fb.connack = (1, 0)  # session resumed
    n = len(fb.packets)
    presents = []
    c.on_connect = presents.append
    _run(c, clk, 2000)
    again = publishes(fb, n)
    assert presents == [True]
    assert [(p[0], p[2], p[4]) for p in again] == [(1, ids[i], b"m%d" % i) for i in range(5)], again
    assert c.idle()
    # lost session: resent as new messages (no DUP), in order
    fb.drop = {0x30}
    for i in range(3):
        c.publish("t", "n%d" % i, qos=1)
    c.step()
    fb.sock.eof = True
    _run(c, clk, 10)
    fb.drop = set()
    fb.connack = (0, 0)
    n = len(fb.packets)
    _run(c, clk, 5000)
    again = publishes(fb, n)
    assert [(p[0], p[4]) for p in again] == [(0, b"n0"), (0, b"n1"), (0, b"n2")], again
    assert presents == [True, False] and c.idle()


def test_qos2_resume_sends_pubrel_for_pubrecd_and_dup_publish_for_the_rest():
    c, fb, clk, sw = fake_robust(clean_session=False)
    c.connect()
    fb.drop = {0x60}  # PUBREC comes, PUBCOMP never
    c.publish("t", "a", qos=2)
    c.step()
    fb.drop = {0x30}  # no PUBREC at all
    c.publish("t", "b", qos=2)
    c.step()
    pa, pb = [p[2] for p in publishes(fb)]
    fb.sock.eof = True
    _run(c, clk, 10)
    fb.drop = set()
    fb.connack = (1, 0)
    n = len(fb.packets)
    _run(c, clk, 2000)
    sent = fb.packets[n:]
    assert (0x62, u16(pa)) in sent, sent
    again = publishes(fb, n)
    assert [(p[0], p[2], p[4]) for p in again] == [(1, pb, b"b")], again
    _run(c, clk, 20)
    assert c.idle(), c.status()


def test_clean_at_start_connects_clean_disconnects_then_persistent():
    c, fb, clk, sw = fake_robust(clean_session=False, clean_at_start=True)
    c.subscribe("cmd/#", 1)
    assert c.connect() is False
    conns = [(f, b) for f, b in fb.packets if f in (0x10, 0xE0)]
    flags = [b[7] & 2 for f, b in conns if f == 0x10]
    assert [f for f, b in conns] == [0x10, 0xE0, 0x10] and flags == [2, 0], fb.packets
    assert fb.packets[-1][0] & 0xF0 == 0x80  # subscription made on the new persistent session
    # later reconnects stay persistent and resume
    fb.sock.eof = True
    fb.connack = (1, 0)
    _run(c, clk, 2000)
    conns = [b for f, b in fb.packets if f == 0x10]
    assert len(conns) == 3 and conns[2][7] & 2 == 0
    assert c.status()["connects"] == 2


def test_station_drop_detected_within_a_second_and_wifi_never_bounced():
    wlan = FakeWLAN(up=False)
    c, fb, clk, sw = fake_robust(wlan=wlan, link_poll_ms=250)
    c.connect()
    assert c.status()["state"] == "link_down" and sw.calls == 0  # no dialling into nothing
    _run(c, clk, 5000)
    assert sw.calls == 0
    wlan.up = True
    _run(c, clk, 300)
    assert c.is_connected()
    downs = []
    c.on_disconnect = downs.append
    wlan.up = False
    t = 0
    while c.is_connected():
        c.step()
        clk.advance(10)
        t += 10
    assert t <= 1000, t
    assert downs and "wifi" in downs[0]
    c.publish("t", "queued", qos=1)
    _run(c, clk, 3000)
    assert len(c.outbox) == 1 and c.status()["state"] == "link_down"
    wlan.up = True
    _run(c, clk, 3000)
    assert c.is_connected() and c.idle()
    assert wlan.bounces == 0


def test_dns_cached_and_re_resolved_after_repeated_failures_keeping_last_good():
    import socket

    calls = []
    dns_up = [True]

    def resolver(host, port, *a):
        calls.append(host)
        if not dns_up[0]:
            raise OSError(-2)
        return socket.getaddrinfo("127.0.0.1", 1, 0, socket.SOCK_STREAM)

    # a port nothing listens on: every connect fails with ECONNREFUSED
    from mqtt.robust import MQTTClient

    clk = FakeClock(start=0)
    c = MQTTClient("cid", "broker.example", clock=clk, resolver=resolver, rng=SeqRNG(0.0),
                   backoff_min=100, backoff_max=1000)  # fmt: skip
    c.connect()
    assert calls == ["broker.example"]
    _run(c, clk, 250, every=10)
    assert c.status()["attempts"] == 3 and len(calls) == 1  # cached for the retries
    dns_up[0] = False
    while c.status()["attempts"] < 4:
        _run(c, clk, 10)
    # third failure in a row: resolved again; DNS down too, the last good address is used
    st = c.status()
    assert len(calls) == 2 and st["attempts"] == 4, (calls, st)
    assert "111" in st["last_error"] or "ECONNREFUSED" in st["last_error"], st


def test_ticks_wrap_through_injected_clock():
    period = FakeClock().period
    # Start 3 s before the clock wraps: acks, keepalive pings and deadlines work across it.
    clk = FakeClock(start=period - 3000)
    c, fb, _, sw = fake_robust(clock=clk, keepalive=4, backoff_min=1000, backoff_max=8000)
    c.connect()
    for _ in range(100):  # 10 s across the wrap, a QoS 1 message every 100 ms
        c.publish("t", "x", qos=1)
        _run(c, clk, 100)
    assert c.is_connected() and c.idle() and c.status()["connects"] == 1, c.status()
    # Half-open just before the wrap: found within 1.5 x keepalive, the deadline past the wrap.
    clk = FakeClock(start=period - 3000)
    c, fb, _, sw = fake_robust(clock=clk, keepalive=4, backoff_min=1000, backoff_max=8000)
    c.connect()
    fb.drop = {0xC0}  # PINGRESP never comes
    n = 0
    while c.is_connected():
        _run(c, clk, 100)
        n += 100
    assert 3000 < n <= 6000, n
    assert [f for f, b in fb.packets if f == 0xC0]
    # Backoff scheduled just before the wrap: the retry comes after its delay, not at once
    # and not never.
    clk = FakeClock(start=period - 500)
    c, fb, _, sw = fake_robust(clock=clk, backoff_min=2000, backoff_max=8000, rng=SeqRNG(0.0))
    sw.up = False
    c.connect()
    assert sw.calls == 1 and c.status()["retry_in_ms"] == 2000
    _run(c, clk, 1990)
    assert sw.calls == 1
    sw.up = True
    _run(c, clk, 20)
    assert sw.calls == 2 and c.is_connected()
    assert clk.ticks_ms() < 5000  # it did cross the wrap


def test_1000_reconnect_cycles_no_socket_leak_flat_heap():
    c, fb, clk, sw = fake_robust(backoff_min=10, backoff_max=40, clean_session=False)
    c.subscribe("cmd/#", 1)
    c.connect()
    h0 = None
    for i in range(1000):
        c.publish("t", "m", qos=1)
        _run(c, clk, 10)
        fb.sock.eof = True  # broker goes away
        _run(c, clk, 60)
        assert c.is_connected(), (i, c.status())
        if i % 10 == 9:
            assert all(s.closed for s in fb.socks[:-1]), i  # every old socket closed
            del fb.socks[:-1]
            fb.packets = []
        if i % 100 == 99:
            gc.collect()
            h = heap()
            if h0 is None:
                h0 = h
            assert h - h0 < 4096, (i, h0, h)
    st = c.status()
    assert st["reconnects"] == 1000 and st["connects"] == 1001 and c.idle(), st


def test_step_never_blocks_and_idle_reflects_queue():
    c, fb, clk, sw = fake_robust(max_inflight=4)
    assert c.idle()
    c.connect()
    fb.drop = {0x30}
    for _ in range(10):
        c.publish("t", "m", qos=1)
    assert not c.idle()
    st = c.status()
    assert st["inflight"] == 4 and st["outbox"] == 6, st  # the window holds the rest back
    worst = _run(c, clk, 1000)
    assert worst < 100
    fb.drop = set()
    # acks arrive: the window slides, everything goes
    for p in publishes(fb):
        fb.feed(packet(0x40, u16(p[2])))
    _run(c, clk, 200)
    assert c.idle(), c.status()


def test_bad_topic_refused_at_publish_and_callback_errors_do_not_drop_the_link():
    c, fb, clk, sw = fake_robust()
    c.connect()
    for t in ("", "a/#", b"a/+/b", b"a/\xff", "a\0b"):
        try:
            c.publish(t, "m", qos=1)
        except ValueError as e:
            assert "topic" in str(e)
        else:
            raise AssertionError("accepted %r" % (t,))
    assert c.idle()

    def bad(topic, msg):
        raise OSError(5)  # a user bug that looks like a network fault

    c.set_callback(bad)
    c.on_connect = lambda present: 1 / 0
    fb.feed(packet(0x32, u16(3) + b"a/b" + u16(9) + b"hi"))
    _run(c, clk, 50)
    st = c.status()
    assert st["state"] == "connected" and st["callback_errors"] == 1, st
    assert (0x40, u16(9)) in fb.packets  # the message was still acknowledged
    fb.sock.eof = True
    _run(c, clk, 2000)
    st = c.status()
    assert c.is_connected() and st["callback_errors"] == 2 and "callback" in st["last_error"], st


def test_reconnect_in_a_loop_cannot_defeat_the_backoff():
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=8000)
    sw.up = False
    c.connect()
    for _ in range(100):
        assert not c.reconnect()
        clk.advance(5)
    assert sw.calls == 1, sw.calls
    sw.up = True
    _run(c, clk, 1000)
    assert c.is_connected()
    c.reconnect()  # while connected: drop and dial again at once, no backoff wait
    _run(c, clk, 20)
    assert c.is_connected() and c.status()["reconnects"] == 1


def test_disconnect_drains_in_flight_so_a_last_message_is_not_sent_twice():
    c, fb, clk, sw = fake_robust(clean_session=True)
    c.connect()
    fb.drop = {0x30}  # the PUBACK comes only a moment later
    c.publish("t/status", "offline", qos=1, retain=True)
    c.step()
    assert c.status()["inflight"] == 1
    fb.drop = set()
    fb.feed(packet(0x40, u16(publishes(fb)[0][2])))
    c.disconnect()
    assert c.idle() and c.status()["state"] == "stopped"
    assert fb.packets[-1][0] == 0xE0  # DISCONNECT after the ack was taken
    c.connect()
    assert len(publishes(fb)) == 1  # not queued again on the new session


def test_subscription_changes_made_offline_reach_a_resumed_session():
    c, fb, clk, sw = fake_robust(clean_session=False)
    c.subscribe("a/#", 1)
    c.subscribe("b/#", 1)
    c.connect()
    subs = lambda: [(f, b[4:]) for f, b in fb.packets if f in (0x82, 0xA2)]  # noqa: E731
    assert subs() == [(0x82, b"a/#\x01"), (0x82, b"b/#\x01")], subs()
    fb.sock.eof = True
    _run(c, clk, 10)
    c.subscribe("c/#", 0)  # while offline
    c.unsubscribe("b/#")
    n = len(subs())
    fb.connack = (1, 0)  # the broker kept a/# and b/#: only the changes are sent
    _run(c, clk, 2000)
    assert c.is_connected()
    assert subs()[n:] == [(0xA2, b"b/#"), (0x82, b"c/#\x00")], subs()[n:]
    fb.sock.eof = True  # a new session: everything current is replayed, b/# is gone
    _run(c, clk, 10)
    fb.connack = (0, 0)
    n = len(subs())
    _run(c, clk, 2000)
    assert subs()[n:] == [(0x82, b"a/#\x01"), (0x82, b"c/#\x00")], subs()[n:]


def test_qos0_policy_drop_while_offline_and_clean_session_requeues_inflight():
    c, fb, clk, sw = fake_robust(policy=("drop", "queue", "queue"))
    sw.up = False
    c.connect()
    assert c.publish("t", "q0", qos=0) is False  # refused while offline, counted
    assert c.publish("t", "q1", qos=1) is True
    assert c.status()["drops"] == 1
    sw.up = True
    _run(c, clk, 2000)
    assert [p[4] for p in publishes(fb)] == [b"q1"]
    fb.drop = {0x30}
    c.publish("t", "lost-ack", qos=1)
    c.step()
    fb.sock.eof = True  # clean session: the unacknowledged message goes again, as new
    _run(c, clk, 10)
    assert c.status()["inflight"] == 0 and c.status()["outbox"] == 1
    fb.drop = set()
    _run(c, clk, 2000)
    again = publishes(fb)[-1]
    assert again[0] == 0 and again[4] == b"lost-ack" and c.idle()


def test_station_drop_while_connecting_aborts_the_attempt():
    wlan = FakeWLAN(up=True)
    c, fb, clk, sw = fake_robust(wlan=wlan)
    fb.connack = None  # CONNACK never comes
    c.connect(wait=False)
    assert c.status()["state"] == "connecting"
    wlan.up = False
    _run(c, clk, 300)
    assert c.status()["state"] == "link_down" and fb.socks[0].closed
    fb.connack = (0, 0)
    wlan.up = True
    _run(c, clk, 2000)
    assert c.is_connected()


def _gap(clk):
    # More than half the ticks period without a call (2^29 ms on the ESP32): every remembered
    # tick now reads as being in the future.
    clk.advance(clk.period // 2 + 10000)


def test_backoff_retry_not_stalled_by_a_gap_over_half_the_ticks_period():
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=8000)
    sw.up = False
    c.connect()
    assert sw.calls == 1 and c.status()["state"] == "backoff"
    _gap(clk)
    sw.up = True
    _run(c, clk, 100)
    assert c.is_connected() and sw.calls == 2


def test_healthy_timer_not_stalled_by_a_gap_over_half_the_ticks_period():
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=8000, healthy_ms=30000, keepalive=0)
    sw.up = False
    c.connect()
    _run(c, clk, 3000)
    sw.up = True
    _run(c, clk, 3000)
    assert c.is_connected() and c.backoff.attempts > 0
    _gap(clk)
    _run(c, clk, 100)
    assert c.is_connected() and c.backoff.attempts == 0  # it stayed up: the pace resets


def test_connack_wait_times_out_after_a_gap_over_half_the_ticks_period():
    c, fb, clk, sw = fake_robust(backoff_min=1000, backoff_max=8000, connect_timeout=2)
    fb.connack = None  # TCP accepted, CONNACK never comes
    c.connect(wait=False)
    c.step()
    assert c.status()["state"] == "connecting"
    _gap(clk)
    c.step()
    assert c.status()["state"] == "backoff"


def test_link_poll_not_stalled_by_a_gap_over_half_the_ticks_period():
    w = FakeWLAN()
    c, fb, clk, sw = fake_robust(wlan=w, link_poll_ms=250, keepalive=0)
    c.connect()
    _run(c, clk, 1000)
    assert c.is_connected()
    _gap(clk)
    w.up = False
    _run(c, clk, 500)
    assert c.status()["state"] == "link_down"


def test_bad_subscription_filter_refused_at_subscribe_and_never_replayed():
    c, fb, clk, sw = fake_robust()
    for t in ("a/#/b", b"a+", b"a\x00", b"\xed\xa0\x80", ""):
        try:
            c.subscribe(t, 1)
        except ValueError as e:
            assert str(e).startswith("topic filter"), str(e)
        else:
            raise AssertionError("accepted %r" % (t,))
    c.subscribe("ok/+", 1)
    c.connect()
    assert fb.types().count(0x82) == 1 and c.is_connected()


def test_inbound_bad_topics_dropped_and_counted_in_status_link_kept():
    got = []
    c, fb, clk, sw = fake_robust()
    c.set_callback(lambda t, m: got.append(t))
    c.connect()
    for t in (b"a/+", b"a/#", b"a\x00", b"\xff"):
        fb.feed(packet(0x32, u16(len(t)) + t + u16(5) + b"x"))
    fb.feed(packet(0x30, u16(4) + b"ok/t" + b"y"))
    _run(c, clk, 50)
    st = c.status()
    assert got == [b"ok/t"] and st["rx_bad_topic"] == 4 and st["state"] == "connected", st
    assert st["connects"] == 1 and fb.types().count(0x40) == 4


def test_cold_parts_leave_the_heap_after_each_call():
    import sys

    c, fb, clk, sw = fake_robust()
    c.subscribe("a/b", 1)
    c.connect()
    c.publish("t", "m", qos=1)
    _run(c, clk, 50)
    assert c.is_connected() and c.idle()
    for m in ("rcold", "rconnect", "session", "topic"):
        assert "mqtt." + m not in sys.modules, m


def test_a_trickling_broker_cannot_hold_a_step_longer_than_the_timeout():
    from fakebroker import FakeBroker

    clk = FakeClock(start=1000)
    fb = FakeBroker(trickle=(clk, 0))
    c, fb, clk, sw = fake_robust(fb, clk, connect_timeout=1)
    c.connect()
    assert c.is_connected()
    # a PUBLISH declared at 5000 bytes, then one byte every 250 ms
    fb.sock.gap = 250
    fb.feed(packet(0x30, u16(1) + b"t" + b"x" * 5000))
    t0 = clk.ticks_ms()
    c.step()
    spent = clk.ticks_diff(clk.ticks_ms(), t0)
    assert spent <= 250 + 1000 + 250, spent  # was 5000 x 250 ms in one step
    st = c.status()
    assert st["state"] == "backoff" and "truncated" in st["last_error"], st
