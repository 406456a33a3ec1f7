# The node loop with fake board, drivers and MQTT wrapper: topics, availability, spool.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node_world import World, doc

TIMEOUT = 60


def test_values_on_configured_topics_with_decimals_and_availability():
    w = World()
    w.run(100)
    mq = w.mq
    assert mq.will == ("Erdgeschoss/Wohnzimmer/status", b"offline", True, 1)
    assert mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5"]
    assert mq.topics("Erdgeschoss/Wohnzimmer/Hum") == ["45.3"]
    assert mq.topics("Erdgeschoss/Wohnzimmer/Press") == ["1013.3"]
    st = [m for m in mq.sent if m[0] == "Erdgeschoss/Wohnzimmer/status"]
    assert st == [("Erdgeschoss/Wohnzimmer/status", "online", True, 1)]
    assert ("Erdgeschoss/Wohnzimmer/status/bme280", "online", True, 1) in mq.sent
    assert "Erdgeschoss/Wohnzimmer/cmd" in mq.subs
    info = json.loads(mq.topics("Erdgeschoss/Wohnzimmer/info")[0])
    assert info["mac"] == "a4cf12345678" and info["client_id"] == "node-a4cf12345678"
    assert mq.args[0] == "node-a4cf12345678"
    w.run(10000)
    assert mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5", "21.5"]
    assert w.board.fed > 0
    d = json.loads(mq.topics("Erdgeschoss/Wohnzimmer/diag")[0])
    for k in (
        "uptime",
        "heap_free",
        "rssi",
        "reset_cause",
        "reconnects",
        "wifi_down_s",
        "spool",
        "spool_dropped",
        "sensor_errors",
        "loop_max_ms",
        "fw",
        "config",
        "synced",
    ):
        assert k in d, k
    assert d["sensor_errors"] == {"bme280": 0} and d["rssi"] == -60
    # retained: `nodectl fleet` shows the last figures of a node that is off
    assert [m[2] for m in mq.sent if m[0] == "Erdgeschoss/Wohnzimmer/diag"] == [True]
    w.run(600000)  # diag.interval 600 s: periodic
    assert len(mq.topics("Erdgeschoss/Wohnzimmer/diag")) == 2
    assert len(mq.topics("Erdgeschoss/Wohnzimmer/info")) == 1  # once per boot


def test_a_diag_without_time_is_followed_by_one_with_it_once_the_clock_syncs():
    w = World(synced=False)
    w.run(1000)
    first = [json.loads(m) for m in w.mq.topics("Erdgeschoss/Wohnzimmer/diag")]
    assert len(first) == 1 and "t" not in first[0] and first[0]["synced"] is False
    w.node.time.mark_synced()
    w.run(1000)
    d = [json.loads(m) for m in w.mq.topics("Erdgeschoss/Wohnzimmer/diag")]
    assert len(d) == 2 and d[1]["synced"] is True and d[1]["t"] > 1000000000
    w.run(60000)  # then the interval again (600 s), not one per step
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/diag")) == 2


def test_failed_reads_withhold_values_and_mark_sensor_offline():
    w = World()
    w.run(100)
    w.drv.fail = OSError(19)
    w.run(10000)  # one failure: value withheld, still online
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5"]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status/bme280") == ["online"]
    w.run(10000)  # second in a row: offline
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status/bme280") == ["online", "offline"]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5"]
    w.drv.fail = None
    w.values["temperature"] = 22.04
    w.run(10000)
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status/bme280") == ["online", "offline", "online"]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5", "22.0"]
    for _t, p, _r, _q in w.mq.sent:
        assert "nan" not in p.lower() and "inf" not in p.lower()


def test_nan_reading_is_withheld():
    w = World()
    w.values["temperature"] = float("nan")
    w.run(100)
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == []
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Hum") == ["45.3"]


def test_outage_readings_spooled_and_replayed_in_order_on_backlog():
    w = World()
    w.run(100)
    w.mq.up = False
    temps = []
    for i in range(30):  # 30 readings, 10 s apart, while the broker is gone
        w.values["temperature"] = 20 + i / 10
        temps.append("%.1f" % (20 + i / 10))
        w.run(10000)
    live_before = len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp"))
    assert w.node.delivery.pending() == 30
    w.mq.up = True
    w.run(2000)
    back = [json.loads(p) for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert [("%.1f" % b["Temp"]) for b in back] == temps
    ts = [b["t"] for b in back]
    assert ts == sorted(ts) and ts[1] - ts[0] == 10
    assert all(b["s"] == "bme280" for b in back)
    # the live topic did not get the old values
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp")) <= live_before + 1
    assert w.node.delivery.pending() == 0


def test_reboot_mid_outage_keeps_flushed_records():
    w = World(doc(spool={"ram": 4, "batch": 4}))
    w.run(100)
    w.mq.up = False
    for i in range(10):
        w.values["temperature"] = 10 + i
        w.run(10000)
    w.node.save_state()  # what a reset does before going down
    # reboot: a new node from the same files
    w.node = w.build()
    w.mq.up = True
    w.run(3000)
    back = [json.loads(p)["Temp"] for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert back == [10.0 + i for i in range(10)], back


def test_reading_refused_by_a_full_outbox_is_spooled_not_lost():
    w = World()
    w.run(100)
    w.mq.refuse = True
    w.values["temperature"] = 23.0
    w.run(10000)
    w.mq.refuse = False
    w.run(2000)
    back = [json.loads(p) for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert [b["Temp"] for b in back] == [23.0], back


def test_json_document_keeps_measurement_time_and_an_outage_cancels_a_pending_one():
    w = World(doc(json=True))
    w.run(100)
    d = w.node.delivery
    base = "Erdgeschoss/Wohnzimmer/"
    d.reading("bme280", [("Temp", "21.5")], w.clock.ms)  # online: a document is now pending
    w.clock.advance(7000)
    w.mq.up = False
    w.mq.step()  # the wrapper notices the broker is gone before the document went out
    d.reading("bme280", [("Temp", "22.5")], w.clock.ms)  # offline: stored for the backlog
    w.mq.up = True
    w.run(3000)
    back = [json.loads(p) for p in w.mq.topics(base + "backlog")]
    assert [b["Temp"] for b in back] == [22.5], back
    docs = [json.loads(p) for p in w.mq.topics(base + "json")]
    # the offline reading arrives once, on the backlog, never also as a "live" document
    assert all(d["Temp"] != 22.5 and d["t"] != back[0]["t"] for d in docs), (docs, back)
