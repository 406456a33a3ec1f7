# The node loop with fake board, drivers and MQTT wrapper: topics, availability, spool, commands.
import json
import os


import node_fakes as F
from node import app, config


def _uid():
    # a per-process number: tests may run in parallel
    return int.from_bytes(os.urandom(4), "little")

TIMEOUT = 60

_n = [0]


def tmp():
    _n[0] += 1
    d = "/tmp/node_app_%d_%d" % (_uid(), _n[0])
    try:
        os.mkdir(d)
    except OSError:
        pass
    for f in os.listdir(d):
        os.remove(d + "/" + f)
    os.chdir(d)
    return d


def doc(**kw):
    d = {"version": 1, "board": "sim", "topic": "Erdgeschoss/Wohnzimmer", "interval": 10,
         "wifi": [{"ssid": "simnet", "password": "secret123"}], "mqtt": {"host": "127.0.0.1"},
         "discovery": False, "diag": {"interval": 600},
         "sensors": [{"type": "bme280", "address": "0x76",
                      "quantities": {"humidity": {"decimals": 1}}}],
         "time": {"ntp": None}}
    d.update(kw)
    return d


class World:
    def __init__(self, d=None, sleeper=None, values=None):
        tmp()
        d = d or doc()
        with open("config.json", "w") as f:
            json.dump(d, f)
        self.clock = F.Clock()
        self.board = F.Board()
        self.values = values or {"temperature": 21.53, "humidity": 45.26, "pressure": 1013.27}
        self.drv = F.Sensor(("temperature", "humidity", "pressure"), lambda: dict(self.values))
        self.mq = None
        self.node = self.build()

    def build(self):
        w = self

        def factory(*a, **kw):
            w.mq = F.MQTT(*a, **kw)
            return w.mq

        node, reason, problems = app.build(lambda name: self.board, self.clock)
        node._mqtt_factory = factory
        node._make_driver = lambda scfg: self.drv
        node.time.synced = True  # a synced clock: timestamps are the fake epoch
        self.node = node
        node.start()
        return node

    def run(self, ms, step=10):
        end = self.clock.ms + ms
        while self.clock.ms < end:
            self.node.step()
            self.clock.advance(step)


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
    for t, p, r, q in w.mq.sent:
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
    assert w.node.spool.depth() == 30
    w.mq.up = True
    w.run(2000)
    back = [json.loads(p) for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert [("%.1f" % b["Temp"]) for b in back] == temps
    ts = [b["t"] for b in back]
    assert ts == sorted(ts) and ts[1] - ts[0] == 10
    assert all(b["s"] == "bme280" for b in back)
    # the live topic did not get the old values
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp")) <= live_before + 1
    assert w.node.spool.depth() == 0


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


def test_commands_retained_ignored_malformed_answered_read_now():
    w = World()
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"reboot"}', retained=True)
    w.run(100)
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/result") == [] and w.board.resets == 0
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":')
    w.run(100)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["ok"] is False and r["error"].startswith("malformed JSON")
    n = len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp"))
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"read","id":5}')
    w.run(200)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r == {"ok": True, "cmd": "read", "id": 5, "sensors": 1}
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp")) == n + 1


def test_calibrate_offset_recomputes_humidity():
    w = World(values={"temperature": 25.0, "humidity": 40.0, "pressure": 1000.0})
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd",
                 '{"cmd":"calibrate","sensor":"bme280","quantity":"temperature","offset":-3.0}')
    w.run(100)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["ok"] and r["saved"], r
    w.run(10000)
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp")[-1] == "22.0"
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Hum")[-1] == "47.9"
    with open("config.json") as f:
        d = json.load(f)
    assert d["sensors"][0]["quantities"]["temperature"]["offset"] == -3.0


def test_set_config_invalid_is_refused_with_messages():
    w = World()
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"set_config","config":{"mqtt":{"port":"abc"}}}')
    w.run(100)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["ok"] is False
    assert r["problems"] == ['mqtt.port: expected an integer 1..65535, got "abc"']
    with open("config.json") as f:
        assert json.load(f)["mqtt"].get("port") is None


def _reboot(w, ms=5000):
    try:
        w.run(ms)
    except SystemExit:
        return True
    return False


def test_set_config_reverts_unless_confirmed():
    w = World(doc(commands={"confirm_timeout": 30}))
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"set_config","config":{"interval":20}}')
    assert _reboot(w)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["ok"] and r["confirm_within"] == 30
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status")[-1] == "offline"  # before the reset
    w.node = w.build()
    assert w.node.cfg["interval"] == 20 and w.node.trial is not None
    assert not _reboot(w, 25000)
    assert _reboot(w, 10000)  # 30 s without confirm: reverted and reset
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["error"] == "not confirmed in time: reverted"
    w.node = w.build()
    assert w.node.cfg["interval"] == 10 and w.node.trial is None


def test_set_config_confirmed_is_kept():
    w = World(doc(commands={"confirm_timeout": 30}))
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"set_config","config":{"interval":20}}')
    assert _reboot(w)
    w.node = w.build()
    w.run(100)
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"confirm"}')
    w.run(100)
    assert json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])["ok"]
    assert not _reboot(w, 60000)
    w.node = w.build()
    assert w.node.cfg["interval"] == 20
    with open("config.lastgood.json") as f:
        assert json.load(f)["interval"] == 20


def test_safe_mode_after_bad_boots_and_leave():
    w = World(doc(safe_mode={"bad_boots": 2, "good_after": 30}))
    for _ in range(2):  # two boots that die early
        w.node = w.build()
        w.run(1000)
    w.node = w.build()
    assert w.node.safe_reason == "2 boots in a row failed before becoming healthy"
    w.run(500)
    assert w.node.sensors == []
    info = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/info")[-1])
    assert info["safe_mode"] == w.node.safe_reason
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"read"}')
    w.run(100)
    assert "safe mode" in json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])["error"]
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"leave_safe_mode"}')
    assert _reboot(w)
    w.node = w.build()
    assert w.node.safe_reason is None
    w.run(31000)  # healthy long enough: a good boot
    w.node = w.build()
    assert w.node.safe_reason is None


def test_invalid_config_without_last_good_starts_safe_mode_reachable():
    tmp()
    w = World()
    d = doc()
    d["sensors"][0]["address"] = "76x"
    with open("config.json", "w") as f:
        json.dump(d, f)
    w.node = w.build()
    assert w.node.safe_reason == "invalid config and no last-good copy"
    w.run(200)
    info = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/info")[-1])
    assert info["config_problems"] == ['sensors[0].address: expected an I2C address like "0x76", got "76x"']
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status") == ["online"]


def test_deep_sleep_cycle_reads_before_wifi_and_sleeps():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    assert w.node.mqtt is None  # no network before the readings
    assert _reboot(w, 10000)
    assert w.board.sleeps and 290000 <= w.board.sleeps[0] <= 300000
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5"]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status")[-1] == "sleeping"


def test_deep_sleep_awake_cap_with_broker_gone_keeps_readings():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    w.drv  # first read happens before the network
    start = w.clock.ms
    w.node.step()
    w.clock.advance(20)
    w.node.step()
    w.mq and None
    # broker unreachable for this wake
    w.node._start_network()
    w.mq.up = False
    assert _reboot(w, 30000)
    assert w.clock.ms - start <= 20000 + 100
    assert w.board.sleeps
    assert w.board.rtc  # the reading waits in RTC memory
    # next wake, broker back: the kept reading goes to the backlog, the new one live
    w.values["temperature"] = 19.0
    w.node = w.build()
    assert _reboot(w, 10000)
    back = [json.loads(p) for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert [b["Temp"] for b in back] == [21.5]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["19.0"]


def test_deep_sleep_honours_retained_stay_awake():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    w.run(100)
    w.node._start_network() if w.mq is None else None
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd/awake", "1", retained=True)
    assert not _reboot(w, 60000)  # past the cap: stays up
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd/awake", "0", retained=True)
    assert _reboot(w, 5000)
