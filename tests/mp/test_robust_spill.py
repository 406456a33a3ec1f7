# The wrapper's spill to flash: a umqtt.robust-style caller (QoS 1 in a loop, publish()'s
# return ignored) loses nothing when an outage outlasts the RAM outbox. Fake broker and clock
# for the mechanism; a real mosquitto behind the fault proxy for the acceptance run.
import time

import harness
from mqtt.spillrec import decode, encode
from robust_util import check_dups, fake_robust, publishes, Wire
from tmpdir import fresh_dir

TIMEOUT = 90


def _run(c, clk, ms, every=10):
    t = 0
    while t < ms:
        c.step()
        clk.advance(every)
        t += every


def test_record_roundtrip_keeps_topic_payload_flags_and_newlines():
    for e in (["a/b", "21.5", False, 1], [b"a b/c", b"x\ny\\n", True, 2], ["t", b"", False, 0]):
        t, m, r, q = e
        got = decode(encode([t, m, r, q, 0, 0]))
        tb = t.encode() if isinstance(t, str) else t
        mb = m.encode() if isinstance(m, str) else m
        assert got[:4] == [tb, mb, r, q], got


def test_full_outbox_spills_in_order_and_nothing_is_dropped():
    d = fresh_dir("spill")
    c, fb, clk, sw = fake_robust(outbox_msgs=5, outbox_dir=d, spill_bytes=65536)
    sw.up = False
    c.connect()
    for i in range(40):
        assert c.publish("s/t", "%d" % i, qos=1) is True
    st = c.status()
    assert st["outbox"] == 5 and st["spilled"] == 35 and st["drops"] == 0, st
    assert not c.idle()
    sw.up = True
    _run(c, clk, 3000)
    got = [p[4] for p in publishes(fb)]
    assert got == [b"%d" % i for i in range(40)], got
    assert c.idle() and c.status()["spilled"] == 0


def test_spilled_messages_survive_a_new_wrapper_on_the_same_folder():
    d = fresh_dir("spill")
    c, fb, clk, sw = fake_robust(outbox_msgs=2, outbox_dir=d, spill_bytes=65536)
    sw.up = False
    c.connect()
    for i in range(12):
        c.publish("s/t", "m%d" % i, qos=1)
    c.disconnect()  # flushes the store's RAM ring to flash
    # A reboot: the RAM outbox (m0, m1) is gone; what was spilled comes back.
    c2, fb2, clk2, sw2 = fake_robust(outbox_msgs=2, outbox_dir=d, spill_bytes=65536)
    c2.connect()
    _run(c2, clk2, 3000)
    assert [p[4] for p in publishes(fb2)] == [b"m%d" % i for i in range(2, 12)]


def test_unwritable_folder_turns_spill_off_and_the_outbox_evicts_as_before():
    c, fb, clk, sw = fake_robust(outbox_msgs=3, outbox_dir="/proc/no/such", spill_bytes=4096)
    sw.up = False
    c.connect()
    for i in range(6):
        c.publish("s/t", "%d" % i, qos=1)
    st = c.status()
    assert st["spill_off"] is True and st["outbox"] == 3 and st["drops"] == 3, st


def test_qos0_drop_policy_is_not_bypassed_by_the_spill():
    d = fresh_dir("spill")
    c, fb, clk, sw = fake_robust(outbox_msgs=2, outbox_dir=d, spill_bytes=65536,
                                 policy=("drop", "queue", "queue"))  # fmt: skip
    sw.up = False
    c.connect()
    c.publish("s/t", "a", qos=1)
    c.publish("s/t", "b", qos=1)
    c.publish("s/t", "c", qos=1)  # spilled
    assert c.publish("s/t", "z", qos=0) is False  # refused while offline, as configured
    assert c.status()["spilled"] == 1


def test_umqtt_robust_style_loop_through_restart_resets_and_half_open_loses_nothing():
    # 300 QoS 1 publishes at about 30/s, return ignored, as a umqtt.robust user writes them,
    # through a 3 s broker restart, two link resets and a 10 s half-open link. Spilling is on
    # by default: only its folder is given, to keep the test's files apart. A persistent
    # session, so a message resent after a drop goes out with DUP=1 and its first packet id
    # (on a clean session a resend is a new message with a new id).
    import gc

    from mqtt.robust import MQTTClient
    from needs import SkipTest

    gc.collect()
    if gc.mem_free() + gc.mem_alloc() < 512 * 1024:
        # The wire recorder keeps every PUBLISH sent (300 and more) for the DUP check.
        raise SkipTest("the acceptance run records the whole wire: needs more than this heap")
    b = harness.broker("spill-acc", persistence=True)
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "spill/acc/#", qos=1)
    w = Wire(p["port"])
    c = MQTTClient("spill-acc", "127.0.0.1", p["port"], keepalive=4, clean_session=False,
                   outbox_dir=fresh_dir("spill"), backoff_min=200, backoff_max=1000,
                   connect_timeout=1, sock_factory=w.factory)  # fmt: skip
    c.connect()
    worst = 0
    seen = bytearray(300)  # which payloads the observer got (a list of 300 strings would not
    # fit the small heap of `make test-heap`; the observer is drained as the run goes)
    stopped_at = half_at = None
    for i in range(300):
        now = time.ticks_ms()
        if i in (15, 140):  # link resets
            harness.proxy_mode(p["id"], "cut", how="rst")
            harness.proxy_mode(p["id"], "pass")
        elif i == 30:  # the broker goes away for 3 s
            harness.proxy_mode(p["id"], "refuse")
            harness.broker_stop("spill-acc")
            stopped_at = now
        elif i == 150:  # half-open for 10 s: no FIN, no RST, nothing through (more than the
            # RAM outbox holds is published meanwhile)
            harness.proxy_mode(p["id"], "blackhole", dir="both")
            half_at = now
        if stopped_at is not None and time.ticks_diff(now, stopped_at) >= 3000:
            harness.broker_start("spill-acc")
            _wait_ready(b["port"], o, seen)  # nothing the client sends is missed by the observer
            harness.proxy_mode(p["id"], "pass")
            stopped_at = None
        if half_at is not None and time.ticks_diff(now, half_at) >= 10000:
            harness.proxy_mode(p["id"], "pass")
            half_at = None
        t0 = time.ticks_ms()
        c.publish("spill/acc/t", "%03d" % i, qos=1)  # return value ignored
        c.check_msg()
        worst = max(worst, time.ticks_diff(time.ticks_ms(), t0))
        if i % 25 == 24:
            _drain(o, seen)
        time.sleep_ms(33)
    # Drain: the half-open link is noticed within 1.5 keepalives, then everything flushes.
    t_end = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t_end) < 40000:
        now = time.ticks_ms()
        if half_at is not None and time.ticks_diff(now, half_at) >= 10000:
            harness.proxy_mode(p["id"], "pass")
            half_at = None
        c.check_msg()
        worst = max(worst, time.ticks_diff(time.ticks_ms(), now))
        if half_at is None and c.idle():
            break
        time.sleep_ms(20)
    assert c.idle(), c.status()
    for _ in range(20):
        _drain(o, seen, timeout=0.5)
        if all(seen):
            break
    missing = [n for n in range(300) if not seen[n]]
    assert not missing, (missing, c.status())
    check_dups(w.publishes())  # every repeat on the wire went out with DUP=1 and its id
    assert worst <= 1500, worst
    assert c.status()["drops"] == 0, c.status()
    c.disconnect()


def _drain(oid, seen, timeout=0):
    """Mark the payloads the observer got since the last call; True if a probe was among them."""
    probe = False
    for p in harness.messages(oid, wait_for=1, timeout=timeout, clear=True, field="payload"):
        if p.startswith("probe"):
            probe = True
        else:
            seen[int(p)] = 1
    return probe


def _wait_ready(port, oid, seen):
    # After the restart the observer reconnects on its own: wait until it sees a probe.
    for i in range(40):
        harness.publish(port, "spill/acc/probe", "probe%d" % i, qos=1)
        if _drain(oid, seen, timeout=0.5):
            return
    raise AssertionError("observer did not come back")
