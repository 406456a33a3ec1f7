"""nodectl battery: the current model (one home, shared with bench/bench_node.py) and the
estimate for a user's config, with the device's own defaults and outage schedule."""

import json

import pytest
from tools_util import run_nodectl  # puts tools/ on sys.path

import nodectl.battery as B  # noqa: E402


def test_wake_charge_splits_cpu_and_radio_time():
    cpu, rx, tx, sleep_ua, _ = B.CHIPS["esp32"]
    radio = rx + B.TX_SHARE * (tx - rx)
    assert B.radio_ma("esp32") == pytest.approx(radio)
    # 0.8 s of CPU only, then 1.2 s with the radio on
    assert B.wake_mas("esp32", 2.0, 1.2) == pytest.approx(cpu * 0.8 + radio * 1.2)
    # a cycle: the wake plus deep sleep for the rest of the interval
    c = B.cycle_mas("esp32", [(2.0, 2.0), (1.0, 0.0)], 300)
    want = (radio * 2.0 + cpu * 1.0) / 2 + sleep_ua / 1000 * (300 - 1.5)
    assert c == pytest.approx(want)
    # a board drawing 5 mA asleep dominates everything else
    assert B.cycle_mas("esp32", [(2.0, 2.0)], 300, board_ua=5000) > 4 * c


def test_chip_figures_are_the_datasheets_station_figures():
    # (CPU at 160 MHz radio off, RX, TX 802.11b at full power, deep sleep with RTC memory):
    # ESP32-C3 Series Datasheet v2.2 table 5-7 gives RX 84 mA for HT20 (87 mA is HT40);
    # ESP32-S3 Series Datasheet v2.2 tables 5-7, 5-9, 5-10
    assert B.CHIPS["esp32c3"][:4] == (28.0, 84.0, 335.0, 5.0)
    assert B.CHIPS["esp32s3"][:4] == (54.6, 88.0, 340.0, 8.0)
    assert B.radio_ma("esp32c3") == pytest.approx(84 + 0.1 * (335 - 84))


def test_days_from_capacity_usable_share_and_cycle_charge():
    # 2500 mAh, all usable, 100 mAs per 300 s cycle: 90 000 cycles of 300 s
    assert B.days(2500, 1.0, 100.0, 300) == pytest.approx(2500 * 3600 / 100 * 300 / 86400)
    line = B.battery_lines("esp32", [(1.5, 1.5)], 300)[0]
    c = B.cycle_mas("esp32", [(1.5, 1.5)], 300)
    for name, mah, use in B.BATTERIES:
        assert "%s %d mAh: %.0f days" % (name, mah, B.days(mah, use, c, 300)) in line


def test_outage_estimate_counts_the_devices_own_retry_schedule():
    ds = {"enabled": True, "interval": 300, "awake_cap": 30, "outage_after": 3, "retry_max": 1800}
    cfg = {"deep_sleep": ds, "sensors": [{"type": "ds18b20"}, {"type": "bme280"}]}
    e = B.estimate_wakes(cfg)
    assert e["per_day"] == 288
    assert e["tries"] == B.sleep_policy().network_wakes(288, ds)
    assert 40 < e["tries"] < 60  # about every 6th wake after the back-off
    radio = [w for w in e["outage"] if w[1]]
    assert len(radio) == e["tries"] and radio[0] == (30.0, 30.0)  # the first waits the cap
    skipped = [w for w in e["outage"] if not w[1]]
    assert skipped[0][0] == pytest.approx(B.BOOT_S + 0.75)  # the DS18B20 sets the floor
    assert e["spool_day_bytes"] == 2 * 288 * B.REC_BYTES
    cfg["sensors"][0]["params"] = {"resolution": 9}  # 94 ms: the floor drops
    skipped = [w for w in B.estimate_wakes(cfg)["outage"] if not w[1]]
    assert skipped[0][0] == pytest.approx(B.BOOT_S + 0.094)


def write(tmp_path, doc):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(doc))
    return p


def node_doc(**over):
    d = {
        "version": 1,
        "board": "esp32-c3-supermini",
        "topic": "Garten/Beet",
        "interval": 300,
        "mqtt": {"host": "pi.lan"},
        "deep_sleep": {"enabled": True, "interval": 600},
        "sensors": [{"type": "ds18b20", "pin": 4}],
    }
    d.update(over)
    return d


def test_cli_prints_the_estimate_for_a_config_with_the_device_defaults(tmp_path):
    r = run_nodectl("battery", write(tmp_path, node_doc()))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "estimate for esp32c3, wake every 600 s, awake cap 30 s" in out  # default cap
    assert "esp32c3: " in out and "2xAA 2500 mAh: " in out and "18650 2500 mAh: " in out
    assert "network tried on" in out and "of 144 wakes" in out
    # the deep-sleep default spool, and it holds more than a day of this config
    assert "spool: 262144 B holds about" in out and "raise spool.max_bytes" not in out
    r2 = run_nodectl("battery", write(tmp_path, node_doc()), "--board-ua", "5000")
    days = [float(x.split(": ")[-1].split()[0]) for x in out.splitlines() if "18650" in x]
    days2 = [float(x.split(": ")[-1].split()[0]) for x in r2.stdout.splitlines() if "18650" in x]
    assert days2[0] < days[0] / 4  # a dev board's regulator eats the battery


def test_cli_warns_when_the_spool_cannot_hold_a_days_outage(tmp_path):
    sensors = [{"type": "bme280", "address": "0x76"}, {"type": "bh1750", "address": "0x23"}]
    doc = node_doc(deep_sleep={"enabled": True, "interval": 60}, sensors=sensors)
    r = run_nodectl("battery", write(tmp_path, doc))
    assert r.returncode == 0, r.stderr
    assert "raise spool.max_bytes to keep a day's outage" in r.stdout
    doc["spool"] = {"max_bytes": 1048576}
    r = run_nodectl("battery", write(tmp_path, doc))
    assert "raise spool.max_bytes" not in r.stdout


def test_cli_refuses_an_invalid_config_with_the_validators_line(tmp_path):
    r = run_nodectl("battery", write(tmp_path, node_doc(deep_sleep={"interval": 5})))
    assert r.returncode == 1
    assert "deep_sleep.interval: expected an integer 10..86400, got 5" in r.stderr
