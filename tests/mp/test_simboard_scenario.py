# Scenarios: value curves, device wiring from JSON, WiFi outages and NTP failures.
from driver_util import expect  # first: skips under a 64K heap (see driver_util.py)

import os
import sys

import simenv
import scenario

TIMEOUT = 60
simenv.clock.set_speed(0)


def run(code, env):
    d = "/tmp/simscen-%s" % "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    with open(d + "/prog.py", "w") as f:
        f.write(code)
    st = os.system("%s %s %s/prog.py > %s/out.txt 2>&1" % (env, sys.executable, d, d))
    with open(d + "/out.txt") as f:
        return (st >> 8) & 0xFF, f.read()


def scenario_path(name):
    return simenv.ROOT + "/tools/sim/scenarios/" + name


def test_curves():
    assert scenario.curve(5)(100) == 5
    assert scenario.curve({"const": 2.5})(0) == 2.5
    r = scenario.curve({"ramp": {"from_t": 10, "to_t": 20, "from": 0, "to": 100}})
    assert (r(0), r(15), r(30)) == (0, 50, 100)
    p = scenario.curve({"points": [[0, 0], [10, 10], [20, 0]]})
    assert (p(5), p(10), p(15), p(99)) == (5, 10, 5, 0)
    s = scenario.curve({"steps": [[0, 1], [60, 2]]})
    assert (s(59), s(60)) == (1, 2)
    expect(ValueError, lambda: scenario.curve({"wobble": 1}))


def test_daily_curve_follows_the_world_clock():
    import machine

    d = scenario.curve({"daily": {"mean": 20, "amplitude": 5, "peak_hour": 15}})
    offset = simenv.clock.rtc_offset_us
    machine.RTC().datetime((2026, 6, 1, 0, 15, 0, 0, 0))
    simenv.clock.rtc_offset_us = offset  # move the world, not just the board's RTC
    simenv.clock._base = (
        simenv._rt.mktime((2026, 6, 1, 15, 0, 0, 0, 0)) * 1000000 - simenv.clock._elapsed()
    )
    assert abs(d(0) - 25) < 1e-6
    simenv.clock.advance(12 * 3600 * 1000)
    assert abs(d(0) - 15) < 1e-6
    simenv.clock.advance(6 * 3600 * 1000)
    assert abs(d(0) - 20) < 1e-6


def test_wifi_connects_and_drops_in_outage_windows():
    import network

    simenv.scenario_data["wifi"] = {
        "ssid": "lab",
        "password": "pw",
        "rssi": -55,
        "connect_ms": 1000,
        "outages": [{"from_t": 100, "to_t": 200}],
    }
    base = simenv.scenario_t()
    simenv.scenario_data["wifi"]["outages"][0] = {"from_t": base + 100, "to_t": base + 200}
    w = network.WLAN(network.STA_IF)
    expect(OSError, lambda: w.connect("lab", "pw"))  # not active yet
    w.active(True)
    w.connect("lab", "wrong")
    assert w.status() == network.STAT_WRONG_PASSWORD
    w.connect("nolab", "pw")
    assert w.status() == network.STAT_NO_AP_FOUND
    w.connect("lab", "pw")
    assert w.status() == network.STAT_CONNECTING and not w.isconnected()
    simenv.clock.advance(1000)
    assert w.isconnected() and w.status("rssi") == -55
    assert w.ifconfig()[0] == "127.0.0.1"
    assert len(w.config("mac")) == 6
    simenv.clock.advance(100 * 1000)
    assert not w.isconnected()
    assert w.scan() == []
    simenv.clock.advance(100 * 1000)
    assert w.status() == network.STAT_CONNECTING  # the AP is back: reconnecting on its own
    simenv.clock.advance(1000)
    assert w.isconnected()
    w.config(reconnects=2)
    assert w.config("reconnects") == 2


def test_ntp_sets_the_rtc_and_can_fail():
    import ntptime
    import time

    simenv.clock.set_rtc_us(946684800 * 1000000)  # RTC at 2000-01-01 as after power-on
    assert time.gmtime()[0] == 2000
    ntptime.settime()
    assert abs(time.time() - simenv.clock.true_us() // 1000000) <= 1
    simenv.scenario_data["ntp"] = {"fail": True}
    expect(OSError, ntptime.time)
    simenv.scenario_data["ntp"] = {}


def test_default_scenario_drives_the_real_drivers():
    code, out = run(
        """
import machine, time, onewire
from sensors import make
i2c = machine.I2C(0)
print("scan", i2c.scan())
b = make("bme280", i2c, address=0x76).read()
l = make("bh1750", i2c).read()
d = make("ds18b20", machine.Pin(4)).read()
v = make("adc", machine.Pin(35), divider=2.0).read()
print("ok", b["temperature"], b["pressure"], l["illuminance"], d["temperature"], v["voltage"])
import network
w = network.WLAN(network.STA_IF); w.active(True); w.connect("simnet", "simnet-password")
time.sleep_ms(1300)
print("wifi", w.isconnected())
""",
        "SIM_SCENARIO=%s SIM_SPEED=0" % scenario_path("default.json"),
    )
    assert code == 0, out
    assert "scan [35, 118]" in out and "wifi True" in out, out
    vals = [float(x) for x in out.split("ok ")[1].split()[:5]]
    assert 19.4 <= vals[0] <= 22.6 and 1008 <= vals[1] <= 1014 and 0 <= vals[2] <= 300, vals
    assert 3.9 <= vals[3] + 0 <= 14.1 and abs(vals[4] - 4.15) < 0.01, vals


def test_faults_scenario_windows():
    code, out = run(
        """
import machine, time, simenv
from sensors import make
i2c = machine.I2C(0)
b = make("bme280", i2c)
s = make("sht3x", i2c)
print("t", time.gmtime()[0])
time.sleep(65)
try:
    b.read(); print("no error")
except OSError as e:
    print("bme nack", e.errno)
time.sleep(60)
try:
    s.read(); print("no error")
except ValueError as e:
    print("sht", type(e).__name__)
time.sleep(40)
print("sht ok", s.read())
import ntptime
ntptime.settime()
print("t", time.gmtime()[0])
""",
        "SIM_SCENARIO=%s SIM_SPEED=0" % scenario_path("faults.json"),
    )
    assert code == 0, out
    assert "t 2000" in out and "bme nack 19" in out and "sht CRCError" in out and "t 2026" in out, (
        out
    )


def test_scripted_inputs_drive_pins_and_irqs_at_their_own_time():
    d = "/tmp/simscen-%s.json" % "".join("%02x" % b for b in os.urandom(6))
    with open(d, "w") as f:
        f.write("""{"devices": [
          {"type": "pulses", "pin": 26, "per_minute": {"steps": [[0, 0], [60, 12], [360, 0]]},
           "low_ms": 40},
          {"type": "input", "pin": 27, "level": {"steps": [[0, 1], [100, 0], [200, 1]]}}]}""")
    code, out = run(
        """
import machine, time
from sensors.digital import DigitalInput, PulseCounter
rain = PulseCounter(machine.Pin(26), debounce_ms=30)
door = DigitalInput(machine.Pin(27), debounce_ms=20)
seen = []
for _ in range(8):
    time.sleep(60)
    seen.append((rain.read()["count"], door.read()["state"]))
print("seen", seen)
""",
        "SIM_SCENARIO=%s SIM_SPEED=0" % d,
    )
    assert code == 0, out
    # 12 pulses a minute from t=60 s (the first at 60 s) to t=360 s: the debounced counter
    # sees every one; the door opens at 100 s and closes at 200 s
    want = "seen [(1, 1), (13, 0), (25, 0), (37, 1), (49, 1), (60, 1), (60, 1), (60, 1)]"
    assert want in out, out
