# What the client accepts, from the application and from the broker: topics checked as a
# broker checks them on publish and subscribe; inbound PUBLISH with a topic no client may
# publish dropped and counted; the QoS 2 receive bound enforced before delivery; one deadline
# per packet, so a broker that trickles bytes cannot hold a read.
from errno import ETIMEDOUT
from time import ticks_diff

from mqtt.client import MQTTException
from fakebroker import FakeSocket, Trickle, connected, mstr, packet, u16

# Topic names a broker refuses (mosquitto 2 drops the connection for each of them).
BAD_NAMES = (
    b"",
    b"a/+",
    "a/#",
    b"+",
    b"a\x00b",  # MQTT-1.5.3-2
    b"a\x01b",  # a control character
    b"a\x7f",
    "a\x85",  # a C1 control as a str
    b"\xff\xfe",  # not UTF-8
    b"a\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # a UTF-16 surrogate, as a JSON "\ud800" escape becomes
    "x\ud800",
    b"a\xef\xbf\xbf",  # U+FFFF, a non-character
    b"a\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xe2\x82",  # cut short
)
GOOD_NAMES = (b"a/b", "Erdgeschoss/K\u00fcche/Temp", b"/", b"$SYS/x", "\U0001f600", b"a" * 200)
BAD_FILTERS = (b"", b"a/#/b", b"a+", b"a/b#", b"#/", b"+a/b", b"a\x00", b"\xed\xa0\x80")
GOOD_FILTERS = (b"a/+/b", b"#", b"+", b"a/#", "K\u00fcche/+", b"+/+", b"/#")


def _raises(exc, f, *a, **kw):
    try:
        f(*a, **kw)
    except exc as e:
        return e
    raise AssertionError("no %s from %r" % (exc.__name__, a))


def test_publish_refuses_bad_topic_names_with_a_valueerror_naming_them():
    c, fb = connected()
    for qos in (0, 1):
        for t in BAD_NAMES:
            n = len(fb.packets)
            e = _raises(ValueError, c.publish, t, b"m", False, qos)
            msg = str(e)
            assert msg.startswith("topic "), msg
            if 0 < len(t) <= 60:
                assert repr(t) in msg, (msg, t)
            assert len(fb.packets) == n and c.sock is not None  # nothing sent, link kept
    assert not c.inflight


def test_topic_length_limit_is_65535_bytes():
    c, fb = connected()
    t = bytearray(65535)
    for i in range(len(t)):
        t[i] = 97
    c.check_topic(t)
    c.check_topic(t, True)
    t.append(97)
    e = _raises(ValueError, c.check_topic, t)
    assert "65536" in str(e) and "..." in str(e), str(e)  # the topic cut short in the message
    _raises(ValueError, c.publish, t, b"m")
    assert not c.inflight and fb.types() == [0x10]


def test_publish_accepts_good_topic_names_str_or_bytes():
    c, fb = connected()
    for t in GOOD_NAMES:
        c.publish(t, b"m")
        c.publish(t, "m", qos=1)
        body = fb.packets[-1][1]
        tb = t.encode() if isinstance(t, str) else t
        assert body[2 : 2 + len(tb)] == tb and body[0] << 8 | body[1] == len(tb)
    assert fb.types().count(0x30) == len(GOOD_NAMES)


def test_a_topic_checked_once_is_not_trusted_after_it_changes():
    # The identity shortcut holds only for immutable topics: a bytearray is checked each time.
    c, fb = connected()
    t = bytearray(b"a/b")
    c.publish(t, b"m")
    t[1] = ord("+")
    _raises(ValueError, c.publish, t, b"m")
    assert fb.types().count(0x30) == 1
    s = "a/b"  # a str topic published twice goes out the same both times
    c.publish(s, b"m")
    c.publish(s, b"m")
    assert fb.packets[-1] == fb.packets[-2] == (0x30, b"\x00\x03a/bm")


def test_subscribe_and_unsubscribe_refuse_malformed_filters():
    c, fb = connected()
    for t in BAD_FILTERS:
        n = len(fb.packets)
        e = _raises(ValueError, c.subscribe, t)
        assert str(e).startswith("topic filter "), str(e)
        _raises(ValueError, c.unsubscribe, t)
        assert len(fb.packets) == n and c.sock is not None
    for t in GOOD_FILTERS:
        assert c.subscribe(t, 1) == 1
        c.unsubscribe(t)
    assert fb.types().count(0x82) == len(GOOD_FILTERS)


def _pub(topic, msg, qos=0, pid=0, dup=False):
    body = mstr(topic) + (u16(pid) if qos else b"") + msg
    return packet(0x30 | qos << 1 | dup << 3, body)


def test_inbound_publish_with_a_bad_topic_is_dropped_counted_acked_and_the_link_kept():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append(t))
    bad = (b"a/+", b"a/#", b"#", b"a\x00b", b"\xff", b"\xed\xa0\x80", b"a\x01")
    pid = 0
    for t in bad:
        for q in (0, 1, 2):
            pid += 1
            fb.feed(_pub(t, b"x", q, pid))
            assert c.check_msg() == 0x30
            if q:
                # acked so the broker does not resend it forever
                assert fb.packets[-1] == (0x40 if q == 1 else 0x50, u16(pid)), fb.packets[-1]
    assert not got and c.bad_topic == 3 * len(bad) and c.sock is not None
    fb.feed(_pub(b"ok/t", b"y", 1, 999))
    c.check_msg()
    assert got == [b"ok/t"]


def test_inbound_qos2_beyond_the_bound_is_refused_before_delivery():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append(m))
    for pid in range(1, 65):  # the broker never sends PUBREL
        fb.feed(_pub(b"t", b"%d" % pid, 2, pid))
        c.check_msg()
    assert len(got) == 64
    fb.feed(_pub(b"t", b"1", 2, 1, True))  # a redelivery of a held id is still fine
    c.check_msg()
    assert len(got) == 64 and c.sock is not None
    fb.feed(_pub(b"t", b"65", 2, 65))
    e = _raises(MQTTException, c.check_msg)
    assert "QoS 2" in e.code, e.code
    # never delivered (it would come again, and twice, on a resumed session); link closed
    assert len(got) == 64 and b"65" not in got and c.sock is None
    assert c.refused == 1
    assert fb.packets[-1] != (0x50, u16(65))


def _trickle(c, fb, data, gap):
    # Swap the client's link for a trickling one, in the mode the client left its link in.
    s = Trickle(fb.clock, gap, data, fb.sock.timeout)
    c.sock = s
    c._p.register(s, 1)
    return s


def test_a_trickling_broker_cannot_hold_a_read_past_the_timeout():
    got = []
    c, fb = connected(timeout=1)
    c.set_callback(lambda t, m: got.append(m))
    clk = fb.clock
    t0 = clk.t
    _trickle(c, fb, _pub(b"t", b"x" * 5000), 250)
    try:
        c.check_msg()
    except (MQTTException, OSError):
        pass
    spent = ticks_diff(clk.t, t0)
    # the first byte's wait, then 1 s of timeout for the packet (was 5000 x 250 ms)
    assert spent <= 250 + 1000 + 250, spent
    assert not got and c.sock is None


def test_a_packet_arriving_in_pieces_within_the_timeout_is_read_whole():
    got = []
    c, fb = connected(timeout=10)
    c.set_callback(lambda t, m: got.append((t, m)))
    _trickle(c, fb, _pub(b"top/ic", b"payload" * 30, 1, 7), 1)
    assert c.check_msg() == 0x30
    assert got == [(b"top/ic", b"payload" * 30)] and c.sock is not None


class _SlowWriter(FakeSocket):
    # Takes at most `per` bytes per write (a full send buffer), `gap` ms of the clock each.
    def __init__(self, clock, per, gap=0):
        super().__init__()
        self.clock = clock
        self.per = per
        self.gap = gap

    def ioctl(self, req, arg):
        return arg & 5 if req == 3 else -1

    def write(self, b, n=-1):
        if n < 0:
            n = len(b)
        n = min(n, self.per)
        self.clock.advance(self.gap)
        self.tx.extend(bytes(b[:n]))
        return n


def test_a_partly_written_packet_is_finished_as_the_socket_drains():
    c, fb = connected()
    s = _SlowWriter(fb.clock, 3)
    c.sock = s
    c.publish(b"a/b", b"hello")
    assert s.tx == _pub(b"a/b", b"hello")


def test_a_write_that_never_drains_times_out_within_the_timeout():
    c, fb = connected(timeout=1, keepalive=0)
    s = _SlowWriter(fb.clock, 1, gap=300)
    c.sock = s
    t0 = fb.clock.t
    e = _raises(OSError, c.publish, b"a/b", b"x" * 100)
    assert e.errno == ETIMEDOUT and c.sock is None
    # the first write, then 1 s for the rest of the packet, plus the write in progress
    assert ticks_diff(fb.clock.t, t0) <= 300 + 1000 + 300
