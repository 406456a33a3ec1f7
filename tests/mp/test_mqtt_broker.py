# The client against a real mosquitto (through tests/mp/harness.py): plain, auth, TLS, QoS
# 0/1/2 both ways, retain, will, 70 000 pipelined QoS 1 across the packet-id wrap, half-open
# detection through the fault proxy, oversize inbound. Real time here: the broker is real.
import needs
import sys
import time
import harness
from mqtt.client import MQTTClient, MQTTException

TIMEOUT = 120

# The Unix port's `ssl` is a frozen module; a MICROPYPATH without ".frozen" hides it (the
# device's sys.path has it).
if ".frozen" not in sys.path:
    sys.path.append(".frozen")

_n = [0]


def _cid():
    _n[0] += 1
    return "mp-%d-%d" % (time.ticks_ms() & 0xFFFF, _n[0])


def _client(port=None, **kw):
    b = harness.broker()
    c = MQTTClient(_cid(), b["host"], port or b["port"], **kw)
    return c, b


def _wait(c, cond, secs=5):
    t = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t) > secs * 1000:
            raise AssertionError("timed out waiting")
        c.check_msg()
        time.sleep_ms(5)


def test_plain_connect_publish_seen_by_paho():
    c, b = _client()
    assert c.connect() == 0
    o = harness.observe(b["port"], ["plain/#"])
    c.publish("plain/a", "hello")
    m = harness.messages(o, wait_for=1, timeout=5)
    assert [(x["topic"], x["payload"]) for x in m] == [("plain/a", "hello")]
    c.disconnect()


def test_user_and_password():
    b = harness.broker()
    c = MQTTClient(_cid(), b["host"], b["auth_port"], user=b["user"], password=b["password"])
    assert c.connect() == 0
    c.publish("auth/x", "1", qos=1)
    c.disconnect()


def test_wrong_password_refused_with_code():
    b = harness.broker()
    c = MQTTClient(_cid(), b["host"], b["auth_port"], user=b["user"], password="nope")
    try:
        c.connect()
        raise AssertionError("accepted")
    except MQTTException as e:
        assert e.code in (4, 5), e.code
    assert c.sock is None


def test_user_without_password_is_sent_not_typeerror():
    b = harness.broker()
    c = MQTTClient(_cid(), b["host"], b["auth_port"], user=b["user"])
    try:
        c.connect()
        raise AssertionError("accepted without password")
    except MQTTException as e:
        assert e.code in (4, 5), e.code  # the broker refused; we did not crash
    c = MQTTClient(_cid(), b["host"], b["port"], user="anyone")  # anonymous listener
    assert c.connect() == 0
    c.disconnect()


def test_tls_with_ca_and_hostname():
    needs.ssl()
    b = harness.broker()
    c = MQTTClient(_cid(), "localhost", b["tls_port"], ssl=True, ssl_params={"cafile": b["ca"]})
    assert c.connect() == 0
    o = harness.observe(b["port"], ["tls/#"], qos=1)
    c.publish("tls/a", "secret", qos=1)
    assert harness.messages(o, wait_for=1, timeout=5)[0]["payload"] == "secret"
    c.disconnect()


def test_tls_with_sslcontext():
    needs.ssl()
    import ssl

    b = harness.broker()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    with open(b["ca"], "rb") as f:  # DER: this port's mbedTLS cannot parse PEM
        pem = f.read()
    from binascii import a2b_base64

    ctx.load_verify_locations(cadata=a2b_base64(b"".join(pem.split(b"-----")[2].split())))
    c = MQTTClient(_cid(), "localhost", b["tls_port"], ssl=ctx)
    assert c.connect() == 0
    c.disconnect()


def test_tls_wrong_ca_refused_with_clear_error():
    needs.ssl()
    b = harness.broker()
    c = MQTTClient(_cid(), "localhost", b["tls_port"], ssl=True, ssl_params={"cafile": b["bad_ca"]})
    try:
        c.connect(timeout=5)
        raise AssertionError("connected with the wrong CA")
    except MQTTException as e:
        assert "TLS" in e.code and "signed by the trusted CA" in e.code, e.code
    assert c.sock is None


def test_tls_wrong_hostname_refused():
    needs.ssl()
    b = harness.broker()
    c = MQTTClient(_cid(), "127.0.0.1", b["tls_port"], ssl=True,
                   ssl_params={"cafile": b["ca"], "server_hostname": "not-this-host"})
    try:
        c.connect(timeout=5)
        raise AssertionError("connected to the wrong name")
    except MQTTException as e:
        assert "TLS" in e.code and "CN" in e.code, e.code
    assert c.sock is None


def test_qos_0_1_2_both_ways():
    got = []
    c, b = _client()
    c.set_callback(lambda t, m: got.append((t, m, c.rx_flags >> 1 & 3)))
    c.connect()
    for q in (0, 1, 2):
        assert c.subscribe("both/in%d" % q, q) == q
    o = harness.observe(b["port"], ["both/out/#"], qos=2)
    for q in (0, 1, 2):
        harness.publish(b["port"], "both/in%d" % q, "m%d" % q, qos=q)
        assert c.publish("both/out/%d" % q, "o%d" % q, qos=q) == (q and c.pid)
    assert not c.inflight
    _wait(c, lambda: len(got) == 3)
    assert sorted(got) == [
        (b"both/in0", b"m0", 0), (b"both/in1", b"m1", 1), (b"both/in2", b"m2", 2)]
    m = harness.messages(o, wait_for=3, timeout=5)
    assert sorted((x["topic"], x["payload"], x["qos"]) for x in m) == [
        ("both/out/0", "o0", 0), ("both/out/1", "o1", 1), ("both/out/2", "o2", 2)]
    c.disconnect()


def test_retain_flag_both_ways():
    got = []
    c, b = _client()
    c.set_callback(lambda t, m: got.append((m, c.rx_flags & 1)))
    c.connect()
    c.publish("ret/x", "kept", retain=True, qos=1)
    c.subscribe("ret/x", 1)
    _wait(c, lambda: got)
    assert got == [(b"kept", 1)]
    c.publish("ret/x", "", retain=True, qos=1)  # clear it
    c.disconnect()


def test_will_delivered_on_unclean_drop():
    c, b = _client(keepalive=5)
    c.set_last_will("will/node", "offline", retain=False, qos=1)
    c.connect()
    o = harness.observe(b["port"], ["will/#"], qos=1)
    c.sock.close()  # drop without DISCONNECT
    m = harness.messages(o, wait_for=1, timeout=5)
    assert [(x["topic"], x["payload"]) for x in m] == [("will/node", "offline")]


def test_will_not_sent_after_clean_disconnect():
    c, b = _client()
    c.set_last_will("will2/node", "offline")
    c.connect()
    o = harness.observe(b["port"], ["will2/#"])
    c.disconnect()
    assert harness.messages(o, wait_for=1, timeout=1) == []


def test_70000_qos1_pipelined_across_packet_id_wrap():
    acks = [0]

    def on_ack(pid, kind):
        acks[0] += 1

    c, b = _client(max_inflight=32, keepalive=30, on_ack=on_ack)
    c.connect()
    o = harness.observe(b["port"], ["wrap/end"], qos=1)
    seen0 = 0
    msg = b"0123456789"
    for _ in range(70000):
        p = c.publish(b"wrap/x", msg, qos=1)
        assert p
        seen0 += p == 65535
    _wait(c, lambda: not c.inflight, 10)
    assert acks[0] == 70000 and seen0 == 1 and c.stray == 0
    c.publish("wrap/end", "done", qos=1)
    assert harness.messages(o, wait_for=1, timeout=5)[0]["payload"] == "done"
    c.disconnect()


def test_half_open_detected_through_blackhole_within_1_5_keepalive():
    b = harness.broker()
    p = harness.proxy(b["port"])
    c = MQTTClient(_cid(), b["host"], p["port"], keepalive=2)
    c.connect()
    c.check_msg()
    harness.proxy_mode(p["id"], "blackhole", dir="both")
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < 6000:
            c.check_msg()
            time.sleep_ms(20)
        raise AssertionError("half-open link not detected")
    except OSError:
        pass
    dt = time.ticks_diff(time.ticks_ms(), t0)
    assert dt <= 3000, dt
    assert c.sock is None


def test_wait_msg_detects_half_open_too():
    b = harness.broker()
    p = harness.proxy(b["port"])
    c = MQTTClient(_cid(), b["host"], p["port"], keepalive=2)
    c.connect()
    harness.proxy_mode(p["id"], "blackhole", dir="both")
    t0 = time.ticks_ms()
    try:
        while True:
            c.wait_msg()
    except OSError:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) <= 3000


def test_oversized_inbound_message_dropped_connection_usable():
    got = []
    sizes = []
    c, b = _client(max_packet=1000, on_drop=sizes.append)
    c.set_callback(lambda t, m: got.append(m))
    c.connect()
    c.subscribe("big/#", 1)
    harness.publish(b["port"], "big/a", "x" * 5000, qos=1)
    harness.publish(b["port"], "big/b", "small", qos=1)
    _wait(c, lambda: got)
    assert got == [b"small"] and c.dropped == 1 and sizes[0] > 5000
    c.publish("big/c", "still here", qos=1)
    c.disconnect()


def test_session_present_on_resume():
    b = harness.broker()
    cid = _cid()
    c = MQTTClient(cid, b["host"], b["port"])
    assert c.connect(clean_session=False) == 0
    c.subscribe("sess/x", 1)
    c.disconnect()
    got = []
    c.set_callback(lambda t, m: got.append(m))
    harness.publish(b["port"], "sess/x", "queued", qos=1)
    assert c.connect(clean_session=False) == 1
    _wait(c, lambda: got)
    assert got == [b"queued"]
    c.disconnect()
    c.connect(clean_session=True)
    c.disconnect()


def test_check_msg_returns_at_once_when_idle():
    c, b = _client()
    c.connect()
    t0 = time.ticks_us()
    for _ in range(100):
        assert c.check_msg() is None
    assert time.ticks_diff(time.ticks_us(), t0) < 100 * 5000  # well under 5 ms each
    c.disconnect()


def test_lost_puback_raises_within_timeout_instead_of_hanging():
    b = harness.broker()
    p = harness.proxy(b["port"])
    c = MQTTClient(_cid(), b["host"], p["port"], timeout=1)
    c.connect()
    harness.proxy_drop(p["id"], "PUBACK", count=1)
    t0 = time.ticks_ms()
    try:
        c.publish("lost/x", "1", qos=1)
        raise AssertionError("publish returned without its PUBACK")
    except OSError:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) < 2500
    assert c.sock is None


def test_connect_times_out_when_connack_never_comes():
    b = harness.broker()
    p = harness.proxy(b["port"])
    harness.proxy_mode(p["id"], "blackhole", dir="down")
    c = MQTTClient(_cid(), b["host"], p["port"])
    t0 = time.ticks_ms()
    try:
        c.connect(timeout=1)
        raise AssertionError("connected without a CONNACK")
    except OSError:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) < 2500 and c.sock is None


def test_idle_link_kept_alive_by_automatic_pings():
    # mosquitto drops a client silent for 1.5 x keepalive; our pings must prevent that.
    c, b = _client(keepalive=2)
    c.connect()
    o = harness.observe(b["port"], ["alive/#"])
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 4000:
        c.check_msg()
        time.sleep_ms(50)
    c.publish("alive/x", "still")
    assert harness.messages(o, wait_for=1, timeout=5)[0]["payload"] == "still"
    c.disconnect()


def test_tls_without_ca_or_with_cert_reqs_none_connects_unverified():
    needs.ssl()
    import ssl

    b = harness.broker()
    c = MQTTClient(_cid(), "localhost", b["tls_port"], ssl=True)
    assert c.port == b["tls_port"] and c.connect() == 0
    c.disconnect()
    params = {"cafile": b["bad_ca"], "cert_reqs": ssl.CERT_NONE}
    c = MQTTClient(_cid(), "localhost", b["tls_port"], ssl=True, ssl_params=params)
    assert c.connect() == 0  # the caller turned verification off explicitly
    c.disconnect()
