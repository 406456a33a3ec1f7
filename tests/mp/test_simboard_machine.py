# The simulated board's machine module, and runs that end like a real board (deep sleep, WDT).
from driver_util import expect  # first: skips under a 64K heap (see driver_util.py)

import errno
import os
import sys

import machine
import simenv

TIMEOUT = 60


def tmpdir():
    d = "/tmp/simboard-%s" % "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def run(code, state=None, extra=""):
    """Run code in a fresh micropython on the simulated board; returns (exit code, stdout)."""
    d = tmpdir()
    with open(d + "/prog.py", "w") as f:
        f.write(code)
    env = "SIM_STATE_DIR=%s " % state if state else ""
    st = os.system("%s%s %s %s/prog.py > %s/out.txt 2>&1" % (env, extra, sys.executable, d, d))
    with open(d + "/out.txt") as f:
        out = f.read()
    return (st >> 8) & 0xFF, out


def test_pin_modes_values_and_irq():
    seen = []
    p = machine.Pin(12, machine.Pin.IN, machine.Pin.PULL_UP)
    assert p.value() == 1
    p.irq(handler=lambda pin: seen.append(pin.value()), trigger=machine.Pin.IRQ_FALLING)
    p.sim_drive(0)
    p.sim_drive(1)
    p.sim_drive(0)
    assert seen == [0, 0], seen
    p.sim_drive(None)
    d = machine.Pin(11, machine.Pin.IN, machine.Pin.PULL_DOWN)
    assert d.value() == 0
    o = machine.Pin(10, machine.Pin.OUT, value=1)
    assert o.value() == 1
    o.off()
    assert o() == 0
    od = machine.Pin(9, machine.Pin.OPEN_DRAIN, value=1)
    assert od.value() == 1
    simenv.drive(9, 0)  # another device pulls the shared line low
    assert od.value() == 0
    expect(ValueError, lambda: machine.Pin(99))


def test_i2c_errors_enodev_and_etimedout():
    i2c = machine.I2C(0)
    assert i2c.scan() == []
    e = expect(OSError, lambda: i2c.readfrom_mem(0x50, 0, 2))
    assert e.errno == errno.ENODEV
    e = expect(OSError, lambda: i2c.writeto(0x50, b"\x00"))
    assert e.errno == errno.ENODEV
    i2c._w.stuck = True
    e = expect(OSError, i2c.scan)
    assert e.errno == errno.ETIMEDOUT
    i2c._w.stuck = False


def test_i2c_devices_are_found_by_their_wires():
    from simdev.bh1750 import BH1750Model

    a = machine.I2C(0)  # board sim: SDA 21, SCL 22
    a.sim_attach(BH1750Model(0x23))
    b = machine.SoftI2C(scl=machine.Pin(22), sda=machine.Pin(21))
    assert 0x23 in b.scan()
    c = machine.I2C(1)  # other pins: another bus
    assert 0x23 not in c.scan()


def test_adc_rtc_and_ids():
    assert len(machine.unique_id()) == 6
    assert machine.reset_cause() == machine.PWRON_RESET  # no state dir: every run is power-on
    assert machine.freq() == 160000000
    machine.freq(240000000)
    assert machine.freq() == 240000000
    r = machine.RTC()
    r.datetime((2026, 6, 1, 0, 12, 30, 15, 0))
    dt = r.datetime()
    assert dt[:3] == (2026, 6, 1) and dt[4:7] == (12, 30, 15), dt
    assert dt[3] == 0  # a Monday
    import time

    assert time.gmtime()[:5] == (2026, 6, 1, 12, 30), time.gmtime()
    r.memory(b"abc")
    assert r.memory() == b"abc"
    expect(ValueError, lambda: r.memory(bytes(2049)))
    r.memory(bytes(2048))


def test_wall_clock_is_whole_seconds_exact_at_todays_epoch():
    # As on the ESP32, time.time() is an int; a float32 epoch would be off by up to 64 s here.
    import time

    simenv.clock.set_speed(0)
    simenv.clock.set_rtc_us(1795885268 * 1000000 + 999999)
    t = time.time()
    assert isinstance(t, int) and t == 1795885268, t
    simenv.clock.advance(1)
    assert time.time() == 1795885269
    assert time.gmtime()[:6] == (2026, 11, 28, 17, 1, 9), time.gmtime()


def test_clock_speed_zero_advances_only_when_told():
    import time

    simenv.clock.set_speed(0)
    t0 = time.ticks_ms()
    w0 = time.time()
    simenv.clock.advance(3600 * 1000)
    assert time.ticks_diff(time.ticks_ms(), t0) == 3600000
    assert abs(time.time() - w0 - 3600) < 0.01
    time.sleep(60)  # no real sleeping at speed 0
    assert time.ticks_diff(time.ticks_ms(), t0) == 3660000


def test_deepsleep_ends_run_with_75_and_next_boot_knows():
    st = tmpdir()
    prog = """
import machine, time
print("cause", machine.reset_cause(), "wake", machine.wake_reason())
r = machine.RTC()
n = r.memory()
print("mem", n)
r.memory(b"boot%d" % (len(n) + 1))
t = time.time()
print("time", int(t))
machine.deepsleep(60000)
print("never")
"""
    code, out = run(prog, st)
    assert code == simenv.EXIT_DEEPSLEEP == 75, (code, out)
    assert "cause 1 wake 0" in out and "mem b''" in out and "never" not in out, out
    t1 = int(out.split("time ")[1].split()[0])
    code, out = run(prog, st)
    assert code == 75, out
    assert "cause 4 wake 4" in out, out  # DEEPSLEEP_RESET, TIMER_WAKE
    assert "mem b'boot1'" in out, out  # RTC memory survived
    t2 = int(out.split("time ")[1].split()[0])
    assert 60 <= t2 - t1 <= 62, (t1, t2)  # the clock moved by the sleep, not by real time
    with open(st + "/boot.json") as f:
        rec = f.read()
    assert '"deepsleep"' in rec and '"sleep_ms": 60000' in rec, rec


def test_watchdog_not_fed_fails_loudly_with_77():
    st = tmpdir()
    code, out = run(
        """
import machine, time
w = machine.WDT(timeout=2000)
for i in range(3):
    time.sleep_ms(1500)
    w.feed()
print("fed ok")
time.sleep_ms(2500)
print("still alive")
""",
        st,
        "SIM_SPEED=0",
    )
    assert code == simenv.EXIT_WDT == 77, (code, out)
    assert "fed ok" in out and "still alive" not in out and "WDT" in out, out
    code, out = run("import machine; print('cause', machine.reset_cause())", st)
    assert code == 0 and "cause 3" in out, out  # WDT_RESET


def test_reset_exits_76_and_next_cause_is_soft_reset():
    st = tmpdir()
    code, out = run("import machine; machine.reset()", st)
    assert code == simenv.EXIT_RESET == 76, out
    code, out = run("import machine; print('cause', machine.reset_cause())", st)
    assert "cause 5" in out, out
    code, out = run("import machine; print('cause', machine.reset_cause())", st)
    assert "cause 1" in out, out  # a plain exit is followed by a power-on


def test_nvs_persists_only_on_commit():
    st = tmpdir()
    code, out = run(
        """
import esp32
n = esp32.NVS("node")
n.set_i32("boots", 7)
n.set_blob("key", b"\\x01\\x02")
n.commit()
m = esp32.NVS("other")
m.set_i32("lost", 1)
print(esp32.mcu_temperature())
""",
        st,
    )
    assert code == 0, out
    code, out = run(
        """
import esp32
n = esp32.NVS("node")
b = bytearray(8)
print(n.get_i32("boots"), n.get_blob("key", b), bytes(b[:2]))
try:
    esp32.NVS("other").get_i32("lost")
except OSError as e:
    print("missing", e.args[0])
""",
        st,
    )
    assert "7 2 b'\\x01\\x02'" in out and "missing -4354" in out, out
