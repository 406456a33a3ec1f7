# Edge cases against the scripted fake broker: malformed and truncated input, stray acks,
# oversize inbound, QoS 2 exactly once, keepalive and overdue detection on an injected clock,
# packet id wrap, pipelining and the hooks the robust wrapper uses.
import needs
import gc
import micropython
from errno import ETIMEDOUT, ENOTCONN
from time import ticks_add
from mqtt.client import MQTTClient, MQTTException
from fakebroker import FakeBroker, FakeSocket, connected, packet


def _raises(exc, f, *a, **kw):
    try:
        f(*a, **kw)
    except exc as e:
        return e
    raise AssertionError("no %s" % exc.__name__)


def _malformed(data, why=None):
    # A short timeout: a packet cut short is waited for until its deadline (real time here).
    c, fb = connected(timeout=0.005)
    c.set_callback(lambda t, m: None)
    fb.feed(data)
    e = _raises(MQTTException, c.check_msg)
    assert isinstance(e.code, str), e.code
    if why:
        assert why in e.code, e.code
    assert c.sock is None and fb.sock.closed  # closed, not left out of sync
    return e


def test_malformed_packets_raise_mqttexception_and_close():
    _malformed(b"\x41\x02\x00\x01", "flags")  # PUBACK flags must be 0 (MQTT-2.2.2-2)
    _malformed(b"\x60\x02\x00\x01", "flags")  # PUBREL flags must be 0010 (MQTT-3.6.1-1)
    _malformed(b"\x40\x03\x00\x01\x00", "length")  # PUBACK remaining length is 2
    _malformed(b"\xd0\x01\x00")  # PINGRESP has no body
    _malformed(b"\x36\x05\x00\x01ahi", "PUBLISH")  # QoS 3 (MQTT-3.3.1-4)
    _malformed(b"\x30\x05\x00\x09ahi", "topic")  # topic longer than the packet
    _malformed(b"\x30\x03\x00\x00h", "topic")  # empty topic (MQTT-4.7.3-1)
    _malformed(b"\x32\x05\x00\x01a\x00\x00", "id 0")  # packet id 0 (MQTT-2.3.1-1)
    _malformed(b"\x32\x02\x00\x01")  # too short for topic + id
    _malformed(b"\x20\x02\x00\x00", "unexpected")  # a second CONNACK
    _malformed(b"\x10\x00", "unexpected")  # CONNECT from the server
    _malformed(b"\x00\x00", "unexpected")  # reserved type 0
    _malformed(b"\xf0\x00", "unexpected")  # reserved type 15
    _malformed(b"\x90\x02\x00\x01", "unexpected")  # SUBACK without a return code


def test_truncated_packets_raise_mqttexception_not_hang():
    cut = (b"\x30", b"\x30\x0a\x00\x03a/", b"\x32\x08\x00\x01t\x00", b"\x40\x02\x00", b"\x30\x80")
    for data in cut:
        _malformed(data, "truncated")


def test_truncated_then_eof_is_truncated_too():
    c, fb = connected()
    fb.feed(b"\x30\x0a\x00\x03a")
    fb.sock.eof = True
    e = _raises(MQTTException, c.check_msg)
    assert "truncated" in e.code


def test_eof_between_packets_is_a_connection_error():
    c, fb = connected()
    fb.sock.eof = True
    _raises(OSError, c.check_msg)
    assert c.sock is None
    e = _raises(OSError, c.publish, "t", "m")
    assert e.errno == ENOTCONN


def test_random_garbage_never_raises_anything_but_mqtt_or_os_errors():
    import random

    random.seed(1234)
    for _ in range(300):
        c, fb = connected(max_packet=64, timeout=0.002)
        c.set_callback(lambda t, m: None)
        fb.feed(bytes(random.getrandbits(8) for _ in range(random.getrandbits(5) + 1)))
        try:
            for _ in range(8):
                c.check_msg()
        except (MQTTException, OSError):
            assert c.sock is None or not fb.sock.rx


def test_connack_unknown_code_and_bad_flags():
    fb = FakeBroker(connack=(0, 6))
    e = _raises(MQTTException, MQTTClient("c", "f", sock_factory=fb.factory).connect)
    assert e.code == 6
    fb = FakeBroker(connack=(2, 0))
    _raises(MQTTException, MQTTClient("c", "f", sock_factory=fb.factory).connect)
    fb = FakeBroker(connack=(1, 0))  # session present although we asked for a clean one
    e = _raises(MQTTException, MQTTClient("c", "f", sock_factory=fb.factory).connect)
    assert "CONNACK" in e.code


def test_connect_times_out_without_connack():
    from time import ticks_ms, ticks_diff

    fb = FakeBroker(connack=None)
    c = MQTTClient("c", "f", sock_factory=fb.factory)
    t0 = ticks_ms()
    e = _raises(OSError, c.connect, True, 0.1)
    assert e.errno == ETIMEDOUT and fb.sock.closed and c.sock is None
    assert ticks_diff(ticks_ms(), t0) < 2000  # the connect timeout bounded the wait, not 10 s


def test_link_is_non_blocking_after_connect():
    # Waits are polls against one deadline per packet, never a blocking read.
    c, fb = connected(timeout=3)
    assert fb.sock.timeout == 0


def test_stray_acks_are_consumed():
    c, fb = connected()
    fb.feed(b"\x40\x02\x00\x07\x50\x02\x00\x08\x70\x02\x00\x09\x90\x03\x00\x0a\x01\xb0\x02\x00\x0b")
    for t in (0x40, 0x50, 0x70, 0x90, 0xB0):
        assert c.check_msg() == t
    assert c.stray == 5 and c.sock is not None
    c.publish(b"t", b"m", qos=1)  # still in sync
    assert not c.inflight


def test_late_duplicate_puback_is_stray():
    c, fb = connected()
    pid = c.publish(b"t", b"m", qos=1)
    fb.feed(packet(0x40, bytes((0, pid))))
    c.check_msg()
    assert c.stray == 1 and c.sock is not None


def test_check_msg_returns_none_at_once_when_idle():
    c, fb = connected()
    assert c.check_msg() is None


def test_oversize_inbound_is_drained_acked_reported_and_stream_stays_usable():
    got = []
    sizes = []
    c, fb = connected(max_packet=100, on_drop=sizes.append)
    c.set_callback(lambda t, m: got.append((t, m)))
    big = b"\x00\x03big\x00\x05" + b"x" * 5000
    fb.feed(packet(0x32, big))
    fb.feed(b"\x30\x05\x00\x01tok")
    assert c.check_msg() == 0x30
    assert sizes == [len(big)] and c.dropped == 1 and not got
    assert fb.sock.tx.endswith(b"\x40\x02\x00\x05")  # QoS 1: acked so the broker moves on
    c.check_msg()
    assert got == [(b"t", b"ok")]


class _PatternSocket(FakeSocket):
    # Serves a header, then `fill` filler bytes, without allocating (for heap_lock tests).
    def __init__(self, head, fill):
        super().__init__()
        self.head = head
        self.left = len(head) + fill
        self.pos = 0
        self.written = 0

    def ioctl(self, req, arg):
        return (arg & 1 if self.left else 0) if req == 3 else -1

    def readinto(self, buf, n=-1):
        if not self.left:
            return None
        if n < 0 or n > len(buf):
            n = len(buf)
        if n > self.left:
            n = self.left
        h = self.head
        p = self.pos
        for i in range(n):
            buf[i] = h[p + i] if p + i < len(h) else 120
        self.pos = p + n
        self.left -= n
        return n

    def write(self, b, n=-1):
        self.written += n
        return n


def test_oversize_inbound_drains_without_allocating():
    fb = FakeBroker()
    c, fb = connected(fb, max_packet=64)
    n = 100000
    s = _PatternSocket(b"\x30" + bytes((0xA0, 0x8D, 0x06)) + b"\x00\x01t", n - 3)
    c.sock = s
    c._p.register(s, 1)
    c.check_msg()  # warm up poll's result tuple
    assert c.dropped == 1
    s.left = n + 4
    s.pos = 0
    gc.collect()
    micropython.heap_lock()
    try:
        c.check_msg()
    finally:
        micropython.heap_unlock()
    assert c.dropped == 2 and not s.left


def test_publish_qos0_does_not_allocate():
    c, fb = connected()
    s = _PatternSocket(b"", 0)
    c.sock = s
    c.publish(b"t/x", b"payload")
    micropython.heap_lock()
    try:
        for _ in range(10):
            c.publish(b"t/x", b"payload")
    finally:
        micropython.heap_unlock()
    assert s.written == 11 * 14


def test_inbound_qos2_redelivery_delivered_exactly_once():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append(m))
    fb.feed(b"\x34\x06\x00\x01t\x00\x05A")
    fb.feed(b"\x3c\x06\x00\x01t\x00\x05A")  # DUP redelivery before PUBREL
    c.check_msg()
    c.check_msg()
    assert got == [b"A"]
    assert fb.types()[-2:] == [0x50, 0x50]  # PUBREC both times
    fb.feed(b"\x62\x02\x00\x05")
    c.check_msg()
    assert fb.packets[-1] == (0x70, b"\x00\x05")
    fb.feed(b"\x34\x06\x00\x01t\x00\x05B")  # id reused after completion: a new message
    c.check_msg()
    assert got == [b"A", b"B"]


def test_inbound_qos2_state_survives_session_resume_but_not_clean_session():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append(m))
    fb.feed(b"\x34\x06\x00\x01t\x00\x05A")
    c.check_msg()
    fb.connack = (1, 0)
    assert c.connect(clean_session=False) == 1
    fb.feed(b"\x3c\x06\x00\x01t\x00\x05A")  # broker resends after resume: still a duplicate
    c.check_msg()
    assert got == [b"A"]
    fb.connack = (0, 0)
    c.connect()
    fb.feed(b"\x34\x06\x00\x01t\x00\x05C")
    c.check_msg()
    assert got == [b"A", b"C"]


def test_keepalive_pingreq_every_half_keepalive_answered_by_pingresp():
    c, fb = connected(keepalive=10)
    fb.clock.advance(4999)
    c.check_msg()
    assert 0xC0 not in fb.types()
    fb.clock.advance(1)
    c.check_msg()
    assert fb.types()[-1] == 0xC0
    assert not c._pend  # the PINGRESP was read in the same call and cleared the ping
    fb.clock.advance(6000)
    c.check_msg()
    assert fb.types().count(0xC0) == 2 and c.sock is not None


def test_half_open_detected_within_keepalive_on_injected_clock():
    c, fb = connected(keepalive=10)
    fb.drop.add(0xC0)  # PINGRESP never comes
    fb.clock.advance(5000)
    c.check_msg()
    assert fb.types()[-1] == 0xC0
    fb.clock.advance(4999)
    c.check_msg()
    assert c.sock is not None
    fb.clock.advance(1)  # 10 s after the last packet from the broker: <= 1.5 x keepalive
    e = _raises(OSError, c.check_msg)
    assert e.errno == ETIMEDOUT and c.sock is None and fb.sock.closed


def test_unread_pingresp_is_not_mistaken_for_a_dead_link():
    c, fb = connected(keepalive=10)
    fb.drop.add(0xC0)
    fb.clock.advance(5000)
    c.check_msg()
    fb.feed(b"\xd0\x00")  # the answer arrived, but the app did not call us for a while
    fb.clock.advance(20000)
    c.publish(b"t", b"m")  # overdue by the clock, yet the PINGRESP is waiting: no error
    assert c.check_msg() == 0xD0 and not c._pend and c.sock is not None


def test_publish_sends_pingreq_when_only_publishing_qos0():
    c, fb = connected(keepalive=10)
    for _ in range(6):
        fb.clock.advance(1000)
        c.publish(b"t", b"m")  # tx keeps flowing, but nothing comes back
    assert 0xC0 in fb.types()


def test_keepalive_zero_never_pings():
    c, fb = connected(keepalive=0)
    fb.clock.advance(10000000)
    c.check_msg()
    assert 0xC0 not in fb.types()


def test_overdue_ack_detected_with_injected_clock():
    c, fb = connected(max_inflight=4, timeout=5)
    fb.drop.add(0x30)
    pid = c.publish(b"t", b"m", qos=1)
    assert c.inflight == {pid: 0x40}
    fb.clock.advance(4999)
    c.check_msg()
    fb.clock.advance(1)
    e = _raises(OSError, c.check_msg)
    assert e.errno == ETIMEDOUT and c.sock is None


def test_blocking_publish_times_out_instead_of_hanging():
    fb = FakeBroker()
    c = MQTTClient("c", "f", sock_factory=fb.factory, timeout=0.2)
    c.connect()
    fb.drop.add(0x30)
    e = _raises(OSError, c.publish, b"t", b"m", qos=1)
    assert e.errno == ETIMEDOUT


def test_ticks_wrap_through_injected_clock():
    from time import ticks_add

    c, fb = connected(keepalive=10)
    fb.clock.t = ticks_add(0, -3000)  # 3 s before the tick counter wraps
    c.connect()
    fb.clock.advance(4999)
    c.check_msg()
    assert 0xC0 not in fb.types()
    fb.clock.advance(1)
    c.check_msg()
    assert fb.types()[-1] == 0xC0


def test_packet_ids_wrap_to_1_never_0():
    c, fb = connected()
    c.pid = 65534
    pids = [c.publish(b"t", b"m", qos=1) for _ in range(3)]
    assert pids == [65535, 1, 2]
    ids = [p[1][3:5] for p in fb.packets if p[0] == 0x32]
    assert ids == [b"\xff\xff", b"\x00\x01", b"\x00\x02"]


def test_packet_id_in_use_is_skipped():
    c, fb = connected(max_inflight=10)
    fb.drop.add(0x30)
    c.pid = 65535
    assert c.publish(b"t", b"m", qos=1) == 1
    c.pid = 65535
    assert c.publish(b"t", b"m", qos=1) == 2


def test_pipelined_window_and_ack_callback():
    acks = []
    c, fb = connected(max_inflight=4, on_ack=lambda p, k: acks.append((p, k)))
    for _ in range(4):
        c.publish(b"t", b"m", qos=1)
    assert len(c.inflight) == 4 and not acks  # returned once written, acks unread
    c.publish(b"t", b"m", qos=1)  # window full: takes one ack first
    assert acks == [(1, 0x40)] and len(c.inflight) == 4
    while c.check_msg():
        pass
    assert acks == [(p, 0x40) for p in range(1, 6)] and not c.inflight


def test_ack_callback_kinds_for_qos2_subscribe_unsubscribe():
    acks = []
    c, fb = connected(on_ack=lambda p, k: acks.append(k))
    c.publish("t", "m", qos=2)
    c.subscribe("a")
    c.unsubscribe("a")
    assert acks == [0x70, 0x90, 0xB0]


def test_pubrel_resend_hook():
    c, fb = connected(max_inflight=4)
    fb.drop.add(0x60)
    c.publish(b"t", b"m", qos=2)
    c.check_msg()
    assert c.inflight == {1: 0x70}  # PUBREC came, PUBCOMP did not
    fb.connack = (1, 0)
    c.connect(clean_session=False)
    assert not c.inflight  # connect clears: the wrapper snapshots first
    fb.drop.clear()
    c.pubrel(1)
    assert fb.packets[-1] == (0x62, b"\x00\x01")
    c.check_msg()
    assert not c.inflight


def test_operations_when_not_connected_raise_oserror():
    c = MQTTClient("c", "f")
    for f, a in ((c.publish, ("t", "m")), (c.check_msg, ()), (c.ping, ()), (c.subscribe, ("t",))):
        e = _raises(OSError, f, *a)
        assert e.errno == ENOTCONN
    c.disconnect()  # harmless


def test_begin_and_finish_connect_step_wise():
    fb = FakeBroker()
    c = MQTTClient("c", "f", sock_factory=fb.factory)
    c.begin_connect(False)
    assert fb.types() == [0x10] and fb.sock.rx  # CONNACK waiting, not yet read
    assert c.finish_connect() == 0


def test_plain_connection_never_loads_the_tls_module_or_ssl():
    import sys

    c, fb = connected()
    c.publish(b"t", b"m", qos=1)
    c.disconnect()
    assert "mqtt.tls" not in sys.modules and "ssl" not in sys.modules


class _Ctx:
    # An SSLContext stand-in: records what the client asked for, or fails like mbedTLS.
    def __init__(self, fail=None):
        self.fail = fail
        self.hostname = None

    def wrap_socket(self, sock, server_hostname=None):
        self.hostname = server_hostname
        if self.fail:
            raise ValueError(self.fail)
        return sock


def test_tls_context_gets_server_hostname_and_wraps_the_link():
    needs.ssl()
    fb = FakeBroker()
    ctx = _Ctx()
    c = MQTTClient("c", "broker.lan", ssl=ctx, sock_factory=fb.factory)
    assert c.port == 8883 and c.connect() == 0
    assert ctx.hostname == "broker.lan" and c.sock is fb.sock
    ctx = _Ctx()
    params = {"server_hostname": "other.lan"}
    c = MQTTClient("c", "h", ssl=ctx, ssl_params=params, sock_factory=fb.factory)
    c.connect()
    assert ctx.hostname == "other.lan"


def test_tls_verification_failure_is_mqttexception_and_closes_the_link():
    needs.ssl()
    fb = FakeBroker()
    c = MQTTClient("c", "h", ssl=_Ctx("certificate verify failed\nsecond line"),
                   sock_factory=fb.factory)
    e = _raises(MQTTException, c.connect)
    assert e.code == "TLS certificate verify failed second line", e.code
    assert fb.sock.closed and c.sock is None


def test_tls_ca_file_that_does_not_load_is_mqttexception():
    needs.ssl()
    # This source file as "cafile": neither PEM nor DER. A configuration fault, not a link one.
    fb = FakeBroker()
    c = MQTTClient("c", "h", ssl=True, ssl_params={"cafile": __file__}, sock_factory=fb.factory)
    e = _raises(MQTTException, c.connect)
    assert e.code.startswith("TLS "), e.code
    assert fb.sock.closed and c.sock is None


def _gap(clock):
    # Jump over more than half the ticks period (2^29 ms on the ESP32): a remembered tick
    # now reads as being in the future.
    half = ticks_add(0, -1) // 2 + 1
    clock.advance(half - 1)
    clock.advance(10000)


def test_qos0_publish_after_a_gap_over_half_the_ticks_period_still_pings():
    c, fb = connected(keepalive=10)
    c.publish(b"t", b"m")
    _gap(fb.clock)
    c.publish(b"t", b"m")  # the keepalive deadline was passed long ago: ping now
    assert 0xC0 in fb.types()


def test_inflight_ack_overdue_after_a_gap_over_half_the_ticks_period():
    c, fb = connected(keepalive=0, max_inflight=4)
    fb.drop.add(0x30)  # the PUBLISH is never acked
    c.publish(b"t", b"m", qos=1)
    _gap(fb.clock)
    e = _raises(OSError, c.check_msg)
    assert e.errno == ETIMEDOUT and c.sock is None


def test_cold_paths_leave_the_heap_after_connect_and_subscribe():
    import sys

    c, fb = connected()
    c.subscribe(b"a/+", 1)
    c.publish(b"t", b"m", qos=1)
    fb.feed(b"\x30\x05\x00\x01tok")  # an inbound topic checked for the first time
    c.check_msg()
    for m in ("session", "topic"):
        assert "mqtt." + m not in sys.modules, m
        assert not hasattr(sys.modules["mqtt"], m), m
