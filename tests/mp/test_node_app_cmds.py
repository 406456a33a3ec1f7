# The node loop with fakes: commands, set-config trial, safe mode, deep sleep.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node_world import World, doc, tmp

TIMEOUT = 60


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


def test_error_results_carry_the_request_id():
    w = World()
    w.run(100)
    sent = [
        ('{"cmd":"explode","id":"x"}', "x", "cmd: expected one of"),
        ('{"cmd":"interval","seconds":0,"id":7}', 7, "seconds"),
        ('{"cmd":"calibrate","sensor":"nope","id":[1]}', [1], "sensor"),
    ]
    for text, want_id, why in sent:
        w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", text)
        w.run(100)
        r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
        assert r["ok"] is False and r["id"] == want_id and why in r["error"], r


def test_calibrate_offset_recomputes_humidity():
    w = World(values={"temperature": 25.0, "humidity": 40.0, "pressure": 1000.0})
    w.run(100)
    w.mq.deliver(
        "Erdgeschoss/Wohnzimmer/cmd",
        '{"cmd":"calibrate","sensor":"bme280","quantity":"temperature","offset":-3.0}',
    )
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
    w.mq.deliver(
        "Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"set_config","config":{"mqtt":{"port":"abc"}}}'
    )
    w.run(100)
    r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
    assert r["ok"] is False
    assert r["problems"] == ['mqtt.port: expected an integer 1..65535, got "abc"']
    with open("config.json") as f:
        assert json.load(f)["mqtt"].get("port") is None


def test_set_config_cannot_move_the_node_to_another_broker_or_lock_commands():
    w = World()
    w.run(100)
    evil = ('{"mqtt":{"host":"evil.example","tls":false}}', '{"commands":{"enabled":false}}')
    for change in evil:
        w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd", '{"cmd":"set_config","config":%s}' % change)
        w.run(100)  # no reset: nothing was applied
        r = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/result")[-1])
        assert r["ok"] is False, r
        assert any("cannot be changed over MQTT" in p for p in r["problems"]), r
    with open("config.json") as f:
        d = json.load(f)
    assert d["mqtt"]["host"] != "evil.example" and "commands" not in d, d


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
    w.board.cause = "wdt"  # each boot dies early and the watchdog resets the board
    for _ in range(2):  # two boots that die early
        w.node = w.build()
        w.run(1000)
    w.node = w.build()
    assert w.node.safe_reason == "2 boots in a row failed before becoming healthy"
    w.run(500)
    assert w.node.sensing.sensors == []
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


def test_power_cuts_before_healthy_are_not_failed_boots():
    # A power flicker: every boot cut off early by the supply (a power-on reset follows).
    w = World(doc(safe_mode={"bad_boots": 2, "good_after": 30}))
    for _ in range(5):
        w.run(1000)
        w.node = w.build()
        assert w.node.safe_reason is None
    # The same early ends with a watchdog reset after them are failures, counted as before.
    w.board.cause = "wdt"
    for _ in range(2):
        w.run(1000)
        w.node = w.build()
    assert w.node.safe_reason == "2 boots in a row failed before becoming healthy"


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
    assert info["config_problems"] == [
        'sensors[0].address: expected an I2C address like "0x76", got "76x"'
    ]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status") == ["online"]


def test_deep_sleep_cycle_starts_conversions_before_wifi_and_sleeps():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    assert w.drv.started == 1 and w.mq is not None  # conversion started, then the network
    assert _reboot(w, 10000)
    assert w.board.sleeps and 290000 <= w.board.sleeps[0] <= 300000
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["21.5"]
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/status")[-1] == "sleeping"


def test_deep_sleep_awake_cap_with_broker_gone_keeps_readings():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    start = w.clock.ms
    w.node.step()
    w.clock.advance(20)
    w.node.step()
    # broker unreachable for this wake
    w.node.start_network()
    w.mq.up = False
    assert _reboot(w, 30000)
    assert w.clock.ms - start <= 20000 + 100
    assert w.board.sleeps
    import os

    # the reading waits in the durable store on flash (RTC memory is lost on a power cut)
    assert [f for f in os.listdir() if f.startswith("spool.dat.")], os.listdir()
    # next wake, broker back: the kept reading goes to the backlog, the new one live
    w.values["temperature"] = 19.0
    w.node = w.build()
    assert _reboot(w, 10000)
    back = [json.loads(p) for p in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    # every reading of the failed wake (one per sensor interval), each with its own time
    assert back and [b["Temp"] for b in back] == [21.5] * len(back), back
    times = [b["t"] for b in back]
    assert times == sorted(set(times)) and times[0] == 1763784000, times
    assert w.mq.topics("Erdgeschoss/Wohnzimmer/Temp") == ["19.0"]


def test_deep_sleep_honours_retained_stay_awake():
    w = World(doc(deep_sleep={"enabled": True, "interval": 300, "awake_cap": 20}))
    # a broker sends the retained switch right after the SUBACK, before any PUBACK of ours
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd/awake", "1", retained=True)
    assert not _reboot(w, 60000)  # past the cap: stays up
    w.mq.deliver("Erdgeschoss/Wohnzimmer/cmd/awake", "0", retained=True)
    assert _reboot(w, 5000)
