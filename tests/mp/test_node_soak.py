# Nothing stale published as live: a plain value (no time in it) goes out within its interval
# or goes to the backlog with its measurement time.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node_world import World

TIMEOUT = 120
B = "Erdgeschoss/Wohnzimmer/"


def _numbered(w, drop_at=None):
    # reading k (from now) says 30+k degrees; the broker goes away as reading drop_at is sent
    calls = [0]

    def values():
        calls[0] += 1
        if calls[0] == drop_at:
            w.mq.up = False
        v = dict(w.values)
        v["temperature"] = 30.0 + calls[0]
        return v

    w.drv.values = values


def test_reading_caught_by_a_broker_drop_goes_to_backlog_not_late_live():
    w = World()
    w.run(100)
    _numbered(w, 1)
    w.run(10000)  # reading "31.0" handed to the wrapper, then the broker is gone
    assert w.mq.topics(B + "Temp") == ["21.5"]
    w.run(15000)
    w.mq.up = True
    w.run(1000)
    assert "31.0" not in w.mq.topics(B + "Temp")  # never later as if current
    recs = [json.loads(r) for r in w.mq.topics(B + "backlog")]
    assert recs and recs[0]["Temp"] == 31.0, recs
    assert w.clock.epoch + 10 <= recs[0]["t"] <= w.clock.epoch + 11, recs[0]
    assert w.node.delivery.late == 1


def test_reading_stuck_in_the_outbox_past_its_interval_goes_to_backlog():
    w = World()
    w.run(100)
    _numbered(w)
    w.mq.stall = True  # connected, nothing goes out
    w.run(10500)  # "31.0" queued at ~10 s; its interval ends at ~20 s
    w.run(10000)  # "32.0" queued at ~20 s
    w.mq.stall = False
    w.run(1000)
    assert w.mq.topics(B + "Temp") == ["21.5", "32.0"]
    recs = [json.loads(r) for r in w.mq.topics(B + "backlog")]
    assert [r["Temp"] for r in recs] == [31.0], recs


def test_outbox_withdraw_takes_back_only_a_queued_message():
    from mqtt.outbox import Outbox

    ob = Outbox(10, 4096)
    ob.put("B/Temp", "21.5", False, 1)
    ob.put("B/Hum", "45.3", False, 1)
    n = ob.bytes
    assert ob.withdraw("B/Temp", "21.5") is True
    assert ob.withdraw("B/Temp", "21.5") is False  # only one was queued
    assert ob.withdraw("B/Hum", "45.0") is False  # same topic, other value: not ours
    assert len(ob) == 1 and ob.first()[0] == "B/Hum" and ob.bytes < n
