# Home Assistant discovery rules, and command parsing.
# ruff: noqa: E501 - the exact messages are the spec; they stay whole on one line
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node import config
from node.commands import parse, result, redact
from node.discovery import Announcer, config_topic, slug, unique_id
from node.payload import Topics


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


def all_messages(c, mac="a4cf12345678"):
    a = Announcer(c, Topics(c["topic"]), mac, fw="1.2.3", rand=lambda n: 5)
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
    # expire_after 2..3 x the sensor's own interval
    assert 120 <= byq["Temp"]["expire_after"] <= 180
    assert 60 <= byq["Lux"]["expire_after"] <= 90
    assert byq["Temp"]["suggested_display_precision"] == 1


def test_deep_sleep_node_expires_after_its_sleep_interval():
    c = cfg(deep_sleep={"enabled": True, "interval": 600})
    _, msgs = all_messages(c)
    for _, t in msgs:
        assert 1200 <= json.loads(t)["expire_after"] <= 1800


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
        assert c is None and e == want, (msg, e)


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
