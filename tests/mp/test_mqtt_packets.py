# Byte-exact encoding and decoding of every MQTT 3.1.1 packet type (spec chapter 3), and the
# Remaining Length boundaries of MQTT 2.2.3. Expected bytes are written out by hand from the
# spec, not produced by the client's own encoder.
from mqtt.client import MQTTClient, MQTTException, _hdr
from fakebroker import FakeBroker, connected, encode_rl, packet


def _raises(exc, f, *a):
    try:
        f(*a)
    except exc as e:
        return e
    raise AssertionError("no %s" % exc.__name__)


def _connect_bytes(**kw):
    fb = FakeBroker()
    clean = kw.pop("clean", True)
    will = kw.pop("will", None)
    c = MQTTClient(kw.pop("cid", "cid"), "fake", sock_factory=fb.factory, **kw)
    if will:
        c.set_last_will(*will)
    c.connect(clean_session=clean)
    return bytes(fb.sock.tx)


def test_connect_minimal_clean_session():
    # 10 bytes variable header: "MQTT", level 4, flags 0x02 (clean), keepalive 60; id "cid".
    assert _connect_bytes() == b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03cid"


def test_connect_persistent_session_keepalive_300():
    b = _connect_bytes(clean=False, keepalive=300)
    assert b == b"\x10\x0f\x00\x04MQTT\x04\x00\x01\x2c\x00\x03cid"


def test_connect_user_and_password():
    b = _connect_bytes(user="u", password="pw")
    assert b == b"\x10\x16\x00\x04MQTT\x04\xc2\x00\x3c\x00\x03cid\x00\x01u\x00\x02pw"


def test_connect_user_without_password():
    # umqtt.simple raised TypeError here; MQTT-3.1.2-19 allows a user name alone.
    b = _connect_bytes(user=b"u")
    assert b == b"\x10\x12\x00\x04MQTT\x04\x82\x00\x3c\x00\x03cid\x00\x01u"


def test_connect_password_without_user_is_rejected():
    _raises(ValueError, MQTTClient, "c", "h", 0, None, "pw")  # MQTT-3.1.2-22


def test_connect_will_qos1_retain():
    b = _connect_bytes(will=("w/t", "bye", True, 1))
    # flags: will 0x04 | qos1 0x08 | retain 0x20 | clean 0x02 = 0x2e
    assert b == b"\x10\x19\x00\x04MQTT\x04\x2e\x00\x3c\x00\x03cid\x00\x03w/t\x00\x03bye"


def test_connect_will_qos2_with_user_and_password():
    b = _connect_bytes(will=(b"w", b"x", False, 2), user="u", password="p", keepalive=0)
    assert b == (
        b"\x10\x1b\x00\x04MQTT\x04\xd6\x00\x00\x00\x03cid\x00\x01w\x00\x01x\x00\x01u\x00\x01p"
    )


def test_connect_empty_client_id():
    assert _connect_bytes(cid="") == b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"


def test_connect_default_ports():
    assert MQTTClient("c", "h").port == 1883
    assert MQTTClient("c", "h", ssl=True).port == 8883
    assert MQTTClient("c", "h", 1234, ssl=True).port == 1234


def test_connack_session_present_returned():
    c, fb = connected(FakeBroker(connack=(0, 0)))
    assert not c.connect(clean_session=False)
    fb.connack = (1, 0)
    assert c.connect(clean_session=False) == 1


def test_connack_refusal_codes_1_to_5():
    for rc in (1, 2, 3, 4, 5):
        fb = FakeBroker(connack=(0, rc))
        c = MQTTClient("c", "fake", sock_factory=fb.factory)
        e = _raises(MQTTException, c.connect)
        assert e.code == rc and e.args[0] == rc
        assert fb.sock.closed and c.sock is None


def test_publish_qos0():
    c, fb = connected()
    c.publish(b"a/b", b"hello")
    assert fb.sock.tx[-12:] == b"\x30\x0a\x00\x03a/bhello"


def test_publish_qos0_retain_str_topic_and_payload():
    c, fb = connected()
    c.publish("a/b", "hi", retain=True)
    assert fb.sock.tx[-9:] == b"\x31\x07\x00\x03a/bhi"


def test_publish_non_ascii_str_counts_utf8_bytes():
    c, fb = connected()
    c.publish("t/\u00e9", "\u00b0C")  # e-acute and degree sign: 2 UTF-8 bytes each
    assert fb.packets[-1] == (0x30, b"\x00\x04t/\xc3\xa9\xc2\xb0C")
    c.publish("t/\u00e9", b"x", qos=1)
    assert fb.packets[-1] == (0x32, b"\x00\x04t/\xc3\xa9\x00\x01x")


def test_publish_qos1_then_puback_decoded():
    c, fb = connected()
    pid = c.publish(b"t", b"m", qos=1)
    assert pid == 1
    assert fb.packets[-1] == (0x32, b"\x00\x01t\x00\x01m")
    assert not c.inflight  # the PUBACK 40 02 00 01 completed it


def test_publish_qos2_full_handshake():
    c, fb = connected()
    pid = c.publish(b"t", b"m", qos=2)
    assert fb.packets[-2] == (0x34, b"\x00\x01t" + bytes((0, pid)) + b"m")
    assert fb.packets[-1] == (0x62, bytes((0, pid)))  # PUBREL has flags 0010 (MQTT-3.6.1-1)
    assert not c.inflight


def test_publish_dup_with_explicit_pid():
    c, fb = connected(max_inflight=4)
    fb.drop.add(0x30)
    assert c.publish(b"t", b"m", qos=1, pid=77, dup=True) == 77
    assert fb.packets[-1] == (0x3A, b"\x00\x01t\x00\x4dm")
    assert c.inflight == {77: 0x40}


def test_publish_large_payload_beyond_buffer_is_byte_exact_and_one_write():
    c, fb = connected(wbuf=32)
    msg = bytes(range(256)) * 2
    w = fb.sock.writes
    c.publish(b"big/t", msg, qos=1)
    assert fb.packets[-1] == (0x32, b"\x00\x05big/t\x00\x01" + msg)
    assert fb.sock.writes == w + 1


def test_publish_fits_buffer_is_one_write():
    c, fb = connected()
    w = fb.sock.writes
    c.publish(b"t", b"x" * 200, qos=1)
    assert fb.sock.writes == w + 1


def test_publish_remaining_length_127_and_128_around_the_short_header():
    # 127 is the last Remaining Length with a one-byte encoding, 128 the first with two.
    for n, rl in ((127, b"\x7f"), (128, b"\x80\x01")):
        for qos in (0, 1):
            c, fb = connected(wbuf=16)  # a tiny wbuf still holds every short PUBLISH
            topic = b"t" * 60
            msg = b"m" * (n - 62 - 2 * qos)
            w = fb.sock.writes
            c.publish(topic, msg, qos=qos)
            pid = b"\x00\x01" if qos else b""
            first = b"\x32" if qos else b"\x30"
            assert fb.sock.writes == w + 1
            assert fb.sock.tx.endswith(first + rl + b"\x00\x3c" + topic + pid + msg)
            assert fb.packets[-1] == (first[0], b"\x00\x3c" + topic + pid + msg)


def test_publish_topic_of_256_bytes_encodes_both_length_bytes():
    c, fb = connected()
    topic = bytes(b"abcdefgh"[i % 8] for i in range(256))
    c.publish(topic, b"x")
    assert fb.packets[-1] == (0x30, b"\x01\x00" + topic + b"x")


def test_publish_dup_ignored_for_qos0_and_bad_qos_rejected():
    c, fb = connected()
    c.publish(b"t", b"m", dup=True)  # MQTT-3.3.1-2: DUP is 0 for QoS 0
    assert fb.packets[-1] == (0x30, b"\x00\x01tm")
    for q in (3, -1):
        _raises(ValueError, c.publish, b"t", b"m", False, q)
    assert not c.inflight and c.sock is not None


def test_publish_bytearray_and_memoryview_arguments():
    c, fb = connected()
    c.publish(bytearray(b"a/b"), memoryview(b"xhelloy")[1:6])
    assert fb.packets[-1] == (0x30, b"\x00\x03a/bhello")


def test_ack_written_after_a_publish_from_inside_the_callback():
    # Acks and PUBLISHes share the write buffer: a callback that publishes must not leave
    # its bytes in the PUBACK that follows it.
    c, fb = connected()
    c.set_callback(lambda t, m: c.publish(b"echo", m))
    fb.feed(b"\x32\x07\x00\x01a\x12\x34hi")
    assert c.check_msg() == 0x30
    assert fb.sock.tx.endswith(b"\x30\x08\x00\x04echohi\x40\x02\x12\x34")


def test_subscribe_and_suback():
    c, fb = connected()
    assert c.subscribe(b"a/#", 1) == 1
    assert fb.packets[-1] == (0x82, b"\x00\x01\x00\x03a/#\x01")


def test_subscribe_failure_0x80_raises():
    c, fb = connected(FakeBroker(granted=0x80))
    e = _raises(MQTTException, c.subscribe, "x", 0)
    assert e.code == 0x80
    assert c.sock is not None  # the connection stays usable


def test_unsubscribe_and_unsuback():
    c, fb = connected()
    c.unsubscribe("a/#")
    assert fb.packets[-1] == (0xA2, b"\x00\x01\x00\x03a/#")
    assert not c.inflight


def test_pingreq_and_pingresp():
    c, fb = connected()
    c.ping()
    assert fb.sock.tx[-2:] == b"\xc0\x00"
    assert c.check_msg() == 0xD0


def test_disconnect():
    c, fb = connected()
    c.disconnect()
    assert fb.sock.tx[-2:] == b"\xe0\x00" and fb.sock.closed and c.sock is None


def test_inbound_publish_qos0_qos1_qos2_decoded_and_acked():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append((t, m, c.rx_flags)))
    fb.feed(b"\x30\x05\x00\x01ahi")
    fb.feed(b"\x33\x07\x00\x01b\x12\x34hi")  # QoS 1 retained, pid 0x1234
    fb.feed(b"\x3c\x07\x00\x01c\x00\x09hi")  # QoS 2 DUP, pid 9
    for _ in range(3):
        assert c.check_msg() == 0x30
    assert got == [(b"a", b"hi", 0x30), (b"b", b"hi", 0x33), (b"c", b"hi", 0x3C)]
    assert type(got[0][0]) is bytes and type(got[0][1]) is bytes
    assert fb.sock.tx.endswith(b"\x40\x02\x12\x34\x50\x02\x00\x09")
    fb.feed(b"\x62\x02\x00\x09")  # PUBREL -> PUBCOMP
    c.check_msg()
    assert fb.sock.tx.endswith(b"\x70\x02\x00\x09")


def test_inbound_publish_empty_payload():
    got = []
    c, fb = connected()
    c.set_callback(lambda t, m: got.append((t, m)))
    fb.feed(b"\x31\x03\x00\x01t")
    c.check_msg()
    assert got == [(b"t", b"")]


def test_remaining_length_encoding_boundaries():
    cases = [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ]
    b = bytearray(5)
    for n, enc in cases:
        i = _hdr(b, 0x30, n)
        assert bytes(b[1:i]) == enc, (n, b[1:i])
    _raises(ValueError, _hdr, b, 0x30, 268435456)


def test_remaining_length_decoding_boundaries():
    # Decoded by the receive path itself: a SUBACK whose declared length is n leaves n - 3
    # bytes to skip after its id and return code; the skip is recorded instead of performed
    # (draining 256 MB through a fake would take minutes).
    fb0 = FakeBroker()
    c, fb = connected(fb0)
    fb.feed(b"\xd0\x00")
    assert c.check_msg() == 0xD0
    for n in (127, 128, 16383, 16384, 2097151, 2097152, 268435455):
        c, fb = connected()
        seen = []
        c._drain = seen.append
        fb.feed(b"\x90" + encode_rl(n) + b"\x00\x01\x00")
        assert c.check_msg() == 0x90
        assert seen == [n - 3], (n, seen)


def test_remaining_length_decoding_real_packets_at_small_boundaries():
    sizes = []
    for n in (127, 128, 16383, 16384):
        c, fb = connected(max_packet=16)
        c.on_drop = sizes.append
        body = b"\x00\x01t" + b"x" * (n - 3)
        fb.feed(packet(0x30, body))
        c.check_msg()
        assert not fb.sock.rx  # drained exactly, stream in sync
    assert sizes == [127, 128, 16383, 16384]


def test_remaining_length_of_five_bytes_is_malformed():
    c, fb = connected()
    fb.feed(b"\x30\xff\xff\xff\xff\x01")
    e = _raises(MQTTException, c.check_msg)
    assert "length" in e.code and c.sock is None
