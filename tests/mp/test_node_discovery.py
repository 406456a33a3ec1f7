# Home Assistant discovery rules, and command parsing.
# ruff: noqa: E501 - the exact messages are the spec; they stay whole on one line
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node import config
from node.commands import parse, result, redact
from node.discovery import Announcer, config_topic, slug, unique_id
from node.payload import Topics
from tmpdir import fresh_dir


def cfg(**kw):
    d = {
        "version": 1,
        "board": "esp32-devkitc",
        "topic": "Erdgeschoss/K\u00fcche",
        "wifi": [{"ssid": "home", "password": "secret123"}],
        "mqtt": {"host": "10.0.0.2"},
        "interval": 60,
        "sensors": [
            {"type": "bme280", "address": "0x76"},
            {"type": "bh1750", "name": "licht", "interval": 30},
        ],
    }
    d.update(kw)
    c = config.normalize(d)
    assert c is not None, config.validate(d)
    return c


def _ok_id(s):
    for ch in s:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-"):
            return False
    return len(s) > 0


def test_slugify():
    assert slug("K\u00fcche") == "kueche"
    assert slug("Erdgeschoss/Wohnzimmer") == "erdgeschoss_wohnzimmer"
    assert slug("  Stra\u00dfe  Nr. 5!") == "strasse_nr_5"
    assert slug("\u00c4rger") == "aerger"


def all_messages(c, mac="a4cf12345678", memory=None):
    if memory is None:
        memory = fresh_dir("disc") + "/discovery.json"
    a = Announcer(c, Topics(c["topic"]), mac, fw="1.2.3", rand=lambda n: 5, memory=memory)
    a.schedule(0)
    out = []
    while True:
        m = a.step(0)
        if m is None:
            break
        out.append(m)
    return a, out


def test_one_retained_config_per_quantity_with_ha_rules():
    c = cfg()
    a, msgs = all_messages(c)
    assert len(msgs) == 4  # temperature, humidity, pressure, illuminance
    uids = set()
    for topic, text in msgs:
        parts = topic.split("/")
        assert parts[0] == "homeassistant" and parts[1] == "sensor" and parts[-1] == "config"
        assert len(parts) == 5 and _ok_id(parts[2]) and _ok_id(parts[3]), topic
        d = json.loads(text)
        assert _ok_id(d["unique_id"]) and d["unique_id"].startswith("a4cf12345678_")
        uids.add(d["unique_id"])
        assert d["state_topic"].startswith("Erdgeschoss/K\u00fcche/")
        avail = [x["topic"] for x in d["availability"]]
        assert avail[0] == "Erdgeschoss/K\u00fcche/status"
        assert avail[1].startswith("Erdgeschoss/K\u00fcche/status/")
        assert d["availability_mode"] == "all"
        assert d["device"]["suggested_area"] == "K\u00fcche"
        assert d["device"]["identifiers"] == ["a4cf12345678"]
        assert d["state_class"] == "measurement"
    assert len(uids) == 4
    byq = {json.loads(t)["state_topic"].split("/")[-1]: json.loads(t) for _, t in msgs}
    assert (
        byq["Temp"]["device_class"] == "temperature"
        and byq["Temp"]["unit_of_measurement"] == "\u00b0C"
    )
    assert byq["Hum"]["device_class"] == "humidity" and byq["Hum"]["unit_of_measurement"] == "%"
    assert (
        byq["Press"]["device_class"] == "atmospheric_pressure"
        and byq["Press"]["unit_of_measurement"] == "hPa"
    )
    assert byq["Lux"]["device_class"] == "illuminance" and byq["Lux"]["unit_of_measurement"] == "lx"
    # no gating filter: a value every interval, expire_after 2.5 x the sensor's own interval
    assert byq["Temp"]["expire_after"] == 150
    assert byq["Lux"]["expire_after"] == 75
    assert byq["Temp"]["suggested_display_precision"] == 1


def test_deep_sleep_node_expires_after_its_sleep_interval():
    c = cfg(deep_sleep={"enabled": True, "interval": 600})
    _, msgs = all_messages(c)
    for _, t in msgs:
        assert 1200 <= json.loads(t)["expire_after"] <= 1800


def _bme(filters, interval=60):
    q = {"temperature": {"filters": filters}}
    c = cfg(interval=interval, sensors=[{"type": "bme280", "quantities": q}])
    _, msgs = all_messages(c)
    return {json.loads(t)["state_topic"].split("/")[-1]: json.loads(t) for _, t in msgs}


def test_expire_after_outlasts_the_heartbeat_a_delta_filter_allows():
    # the shipped example: delta 0.1 with a 600 s heartbeat; readings every 60 s
    d = _bme([{"type": "delta", "min": 0.1}, {"type": "heartbeat", "seconds": 600}])
    assert d["Temp"]["expire_after"] == 600 + 90
    assert d["Hum"]["expire_after"] == 150  # no filter on humidity
    # a heartbeat between readings waits for the next one: 100 s -> the reading at 120 s
    d = _bme([{"type": "delta", "min": 0.1}, {"type": "heartbeat", "seconds": 100}])
    assert d["Temp"]["expire_after"] == 120 + 90


def test_expire_after_left_out_when_delta_has_no_heartbeat():
    d = _bme([{"type": "delta", "min": 0.5}])
    assert "expire_after" not in d["Temp"] and d["Hum"]["expire_after"] == 150


def test_expire_after_spans_a_throttle():
    d = _bme([{"type": "throttle", "seconds": 300}], interval=30)
    assert d["Temp"]["expire_after"] == 300 + 45


def _ids(msgs):
    return [(t.split("/")[3], p) for t, p in msgs]


def test_removed_and_renamed_sensors_are_cleared_once_on_the_next_announce():
    mem = fresh_dir("disc") + "/discovery.json"
    _, first = all_messages(cfg(), memory=mem)
    assert all(p for _, p in first) and len(first) == 4
    # licht renamed to lux, and bme280's pressure no longer published
    c = cfg(
        sensors=[
            {"type": "bme280", "quantities": {"pressure": False}},
            {"type": "bh1750", "name": "lux", "interval": 30},
        ]
    )
    _, second = all_messages(c, memory=mem)
    cleared = sorted(i for i, p in _ids(second) if p == "")
    assert cleared == ["bme280_pressure", "licht_illuminance"]
    # the clears come first, retained empty payloads on the old config topics
    assert [p for _, p in second[:2]] == ["", ""]
    assert second[0][0].startswith("homeassistant/sensor/a4cf12345678/")
    assert sorted(i for i, p in _ids(second) if p) == [
        "bme280_humidity",
        "bme280_temperature",
        "lux_illuminance",
    ]
    # remembered: the next boot clears nothing again
    _, third = all_messages(c, memory=mem)
    assert all(p for _, p in third) and len(third) == 3


def test_a_changed_prefix_clears_the_old_prefix():
    mem = fresh_dir("disc") + "/discovery.json"
    all_messages(cfg(), memory=mem)
    _, msgs = all_messages(cfg(discovery={"prefix": "ha"}), memory=mem)
    old = [t for t, p in msgs if p == ""]
    assert len(old) == 4 and all(t.startswith("homeassistant/") for t in old)
    assert all(t.startswith("ha/") for t, p in msgs if p)


def test_memory_is_written_only_when_it_changes():
    mem = fresh_dir("disc") + "/discovery.json"
    all_messages(cfg(), memory=mem)
    with open(mem) as f:
        m = json.load(f)
    assert m["prefix"] == "homeassistant" and len(m["ids"]) == 4
    # the same content in another layout: an unchanged set leaves the file alone
    text = '{ "ids" : %s , "prefix" : "homeassistant" }' % json.dumps(m["ids"])
    with open(mem, "w") as f:
        f.write(text)
    all_messages(cfg(), memory=mem)
    with open(mem) as f:
        assert f.read() == text
    # unreadable memory: nothing to clear, written anew
    with open(mem, "w") as f:
        f.write("garbage")
    _, msgs = all_messages(cfg(), memory=mem)
    assert all(p for _, p in msgs)
    with open(mem) as f:
        assert sorted(json.load(f)["ids"]) == sorted(m["ids"])


def test_unpublished_quantity_has_no_discovery():
    c = cfg(sensors=[{"type": "bme280", "quantities": {"pressure": False}}])
    _, msgs = all_messages(c)
    assert len(msgs) == 2


def test_resent_after_ha_online_with_random_delay():
    c = cfg()
    a, _ = all_messages(c)
    assert not a.pending()
    a.on_ha_status(b"offline", 1000)
    assert not a.pending()
    a.on_ha_status(b"online", 1000)
    assert a.pending()
    assert a.step(1000) is None  # not yet: 1..10 s random delay
    assert a.step(1000 + 1005) is not None


def test_ids_stable_from_mac_and_sensor():
    assert (
        unique_id("a4cf12345678", "Wohnzimmer Decke", "temperature")
        == "a4cf12345678_wohnzimmer_decke_temperature"
    )
    assert (
        config_topic("homeassistant", "a4cf12345678", "bme280", "humidity")
        == "homeassistant/sensor/a4cf12345678/bme280_humidity/config"
    )


SENS = {"bme280": ("temperature", "humidity", "pressure")}


def test_commands_parse_ok():
    assert parse(b"read") == ({"cmd": "read"}, None)
    c, e = parse(b'{"cmd":"interval","seconds":30,"id":7}', sensors=SENS)
    assert e is None and c["seconds"] == 30 and c["id"] == 7
    c, e = parse(
        b'{"cmd":"calibrate","sensor":"bme280","quantity":"temperature","offset":-0.4}',
        sensors=SENS,
    )
    assert e is None
    c, e = parse(b'{"cmd":"set_config","config":{"interval":30}}')
    assert e is None


def test_retained_commands_ignored():
    assert parse(b'{"cmd":"reboot"}', retained=True) == (None, None)


def test_malformed_and_oversized_get_errors():
    cases = [
        (b"x" * 3000, "payload too large: 3000 bytes, at most 2048"),
        (b'{"cmd":', 'malformed JSON; expected an object like {"cmd": "read"}'),
        (
            b"[1,2]",
            'expected a JSON object like {"cmd": "read"} or a command name (read, interval, calibrate, get_config, set_config, confirm, reboot, leave_safe_mode, status)',
        ),
        (
            b'{"cmd":"explode"}',
            'cmd: expected one of read, interval, calibrate, get_config, set_config, confirm, reboot, leave_safe_mode, status, got "explode"',
        ),
        (b'{"cmd":"interval","seconds":0}', "seconds: expected an integer 1..86400, got 0"),
        (
            b'{"cmd":"interval","seconds":10,"sensor":"nope"}',
            'sensor: expected one of bme280, got "nope"',
        ),
        (
            b'{"cmd":"calibrate","sensor":"bme280","quantity":"lux","offset":1}',
            'quantity: expected one of temperature, humidity, pressure, got "lux"',
        ),
        (
            b'{"cmd":"calibrate","sensor":"bme280","quantity":"temperature"}',
            "expected one of offset, scale, two_point or reference",
        ),
        (
            b'{"cmd":"calibrate","sensor":"bme280","quantity":"temperature","scale":0}',
            "scale: expected a non-zero number, got 0",
        ),
        (
            b'{"cmd":"set_config","config":5}',
            "config: expected an object (the whole config or a part of it), got 5",
        ),
        (b"\xff\xfe", "payload is not UTF-8 text"),
    ]
    for msg, want in cases:
        c, e = parse(msg, sensors=SENS)
        assert e == want, (msg, e)
        # an object that parsed keeps only its id and cmd name for the error result
        assert c is None or set(c) <= {"id", "cmd"}, c


def test_result_echoes_id_and_redacts():
    d = json.loads(result({"cmd": "read", "id": "x1"}, True, values=3))
    assert d == {"ok": True, "cmd": "read", "id": "x1", "values": 3}
    d = json.loads(result(None, False, error="bad"))
    assert d == {"ok": False, "error": "bad"}
    r = redact({"mqtt": {"password": "pw", "user": "u"}, "wifi": [{"ssid": "a", "password": "p"}]})
    assert r == {
        "mqtt": {"password": "***", "user": "u"},
        "wifi": [{"ssid": "a", "password": "***"}],
    }


def test_node_clears_a_removed_quantity_after_a_reboot():
    # the node end to end: config changed between two boots in the same flash folder
    from node_world import World, doc

    w = World(doc(discovery={"enabled": True}))
    w.run(500)
    sent = [(t, p, r) for t, p, r, _ in w.mq.sent if t.endswith("/config")]
    assert len(sent) == 3 and all(p and r for _, p, r in sent)
    press = [t for t, _, _ in sent if t.endswith("_pressure/config")][0]
    q = {"humidity": {"decimals": 1}, "pressure": {"publish": False}}
    d = doc(discovery={"enabled": True})
    d["sensors"][0]["quantities"] = q
    w2 = World(d, fresh=False)
    w2.run(500)
    sent = [(t, p, r) for t, p, r, _ in w2.mq.sent if t.endswith("/config")]
    assert (press, "", True) in sent and len(sent) == 3
