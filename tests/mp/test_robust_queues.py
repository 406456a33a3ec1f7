# Backoff and outbox/in-flight queues of the robust MQTT wrapper, without any network.
from mqtt.backoff import Backoff
from mqtt.outbox import ENTRY_OVERHEAD as OVH
from mqtt.outbox import Inflight, Outbox
from robust_util import SeqRNG


def test_backoff_doubles_ceiling_within_bounds_with_full_jitter():
    r = SeqRNG(1.0)  # always the top of the window
    b = Backoff(1000, 300000, r)
    got = [b.next() for _ in range(11)]
    want = [2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000]
    assert got == want, got
    r.frac = 0.0  # the bottom of the window is the lower bound, never 0 (no busy loop)
    assert b.next() == 1000
    b.reset()
    r.frac = 1.0
    assert b.next() == 2000  # jittered from the first retry on: [1 s, 2 s]


def test_backoff_default_rng_stays_within_window():
    b = Backoff(1000, 8000)
    for i in range(200):
        c = b.ceiling()
        d = b.next()
        assert 1000 <= d <= c <= 8000, (i, d, c)
    # after many failures no huge integers: still capped
    b.attempts = 100000
    assert b.ceiling() == 8000


def test_backoff_slowest_pace_near_upper_bound():
    b = Backoff(1000, 300000, SeqRNG(0.0))
    assert b.slowest() == 150000
    b = Backoff(1000, 300000, SeqRNG(1.0))
    assert b.slowest() == 300000


def test_backoff_rejects_bad_bounds():
    for lo, hi in ((0, 10), (10, 5)):
        try:
            Backoff(lo, hi)
        except ValueError as e:
            assert str(lo) in str(e)
        else:
            raise AssertionError("accepted %r..%r" % (lo, hi))


def test_outbox_keeps_order_and_byte_count():
    ob = Outbox(10, 1000)
    for i in range(5):
        assert ob.put("t/%d" % i, b"x" * i, False, 1)
    assert len(ob) == 5
    assert ob.bytes == sum(3 + i + OVH for i in range(5))
    got = []
    while len(ob):
        got.append(ob.pop()[0])
    assert got == ["t/0", "t/1", "t/2", "t/3", "t/4"]
    assert ob.bytes == 0


def test_outbox_drops_oldest_lowest_qos_first_and_counts():
    ob = Outbox(3, 10000)
    ob.put("a", b"1", False, 1)
    ob.put("b", b"2", False, 0)
    ob.put("c", b"3", False, 1)
    ob.put("d", b"4", False, 1)  # full: the QoS 0 "b" goes although "a" is older
    assert [e[0] for e in ob._q] == ["a", "c", "d"]
    assert ob.drops == [1, 0, 0]
    ob.put("e", b"5", False, 1)  # no QoS 0 left: the oldest QoS 1 goes
    assert [e[0] for e in ob._q] == ["c", "d", "e"]
    assert ob.drops == [1, 1, 0] and ob.dropped() == 2


def test_outbox_bounded_in_bytes():
    ob = Outbox(100, 5 * (10 + OVH))
    for _ in range(10):
        ob.put("t", b"x" * 9, False, 1)  # 10 bytes + overhead each
    assert len(ob) == 5 and ob.bytes == 5 * (10 + OVH)
    assert ob.dropped() == 5
    assert not ob.put("t", b"x" * 400, False, 1)  # bigger than the whole outbox: refused
    assert len(ob) == 5 and ob.dropped() == 6


def test_outbox_policy_drops_qos0_while_offline_only():
    ob = Outbox(10, 1000, ("drop", "queue", "queue"))
    assert not ob.put("t", b"0", False, 0, offline=True)
    assert ob.put("t", b"0", False, 0, offline=False)
    assert ob.put("t", b"1", False, 1, offline=True)
    assert len(ob) == 2 and ob.drops == [1, 0, 0]
    try:
        Outbox(10, 10, ("keep", "queue", "queue"))
    except ValueError as e:
        assert "keep" in str(e)
    else:
        raise AssertionError("bad policy accepted")


def test_requeue_puts_inflight_back_at_head_as_new():
    ob = Outbox(10, 1000)
    ob.put("later", b"l", False, 1)
    infl = Inflight()
    for i, pid in enumerate((7, 8)):
        e = ["f%d" % i, b"m", False, 1, pid, 0]
        infl.add(e)
    assert infl.find(8)[0] == "f1" and infl.find(9) is None
    ob.requeue(infl.take_all())
    assert len(infl) == 0
    assert [(e[0], e[4]) for e in ob._q] == [("f0", 0), ("f1", 0), ("later", 0)]
