# DHT22 (through the firmware-style dht module), ADC input, debounced input, pulse counter.
# driver_util first: it skips the test under a 64K heap (see driver_util.py)
from driver_util import driver_ticks, expect, heap_growth

import errno
import time

import machine
import simenv
from simdev.dht22 import DHT22Model
from simdev.adc import VoltageSource
from sensors import NoReadingError
from sensors.crc import CRCError
import sensors.dht22
from sensors.dht22 import DHT22
from sensors.analog import AnalogInput
import sensors.digital
from sensors.digital import DigitalInput, PulseCounter

simenv.clock.set_speed(0)


def dht(pin=15):
    m = simenv.dht_devices[pin] = DHT22Model()
    return m, DHT22(machine.Pin(pin))


def test_dht22_target_in_same_value_out():
    m, s = dht()
    for t, h in ((-10.1, 65.8), (21.5, 45.2), (0.0, 0.0), (79.9, 100.0), (-0.1, 99.9)):
        m.set(temperature=t, humidity=h)
        simenv.clock.advance(2000)
        assert s.read() == {"temperature": t, "humidity": h}, (t, h, s.read())


def test_dht22_honours_two_second_interval_with_a_new_measurement():
    m, s = dht()
    m.set(temperature=20.0)
    simenv.clock.advance(2000)
    t0 = time.ticks_ms()
    assert s.read()["temperature"] == 20.0
    m.set(temperature=25.0)
    simenv.clock.advance(500)
    # too soon for the sensor: read() waits out the 2 s and measures, never repeats itself
    assert s.read()["temperature"] == 25.0
    assert time.ticks_diff(time.ticks_ms(), t0) == 2000 + 5  # + the 5 ms transfer
    simenv.clock.advance(3000)
    t1 = time.ticks_ms()
    assert s.read()["temperature"] == 25.0
    assert time.ticks_diff(time.ticks_ms(), t1) == 5  # nothing to wait for


# ticks_diff() is meaningful for less than 2^29 ms (6.2 days); ticks_ms() wraps at 2^30 ms.
DAY_MS = 86400000
TICKS_PERIOD = 1 << 30


def test_dht22_silent_for_days_never_returns_the_old_reading():
    driver_ticks(sensors.dht22)
    m, s = dht()
    simenv.clock.advance(2000)
    assert s.read() == {"temperature": 21.0, "humidity": 45.0}
    m.fault = "absent"  # the sensor goes silent
    for gap in (DAY_MS, 6 * DAY_MS + 5000000, TICKS_PERIOD - 2000, TICKS_PERIOD, 3 * DAY_MS):
        simenv.clock.advance(gap)
        assert expect(OSError, s.read).errno == errno.ETIMEDOUT, gap
    m.fault = None
    m.set(temperature=-3.5)
    simenv.clock.advance(DAY_MS)
    assert s.read()["temperature"] == -3.5


def test_dht22_faults():
    m, s = dht()
    simenv.clock.advance(2000)
    m.fault = "crc"
    expect(CRCError, s.read)
    m.fault = "absent"
    assert expect(OSError, s.read).errno == errno.ETIMEDOUT
    m.fault = None
    assert s.read()["humidity"] == 45.0


def test_dht22_implausible_frame_is_no_reading():
    m, s = dht()
    m.set(humidity=150.0)  # checksum fine, value impossible
    simenv.clock.advance(2000)
    expect(NoReadingError, s.read)


def test_adc_divider_and_calibration():
    src = simenv.adc_sources[34] = VoltageSource(divider=2.0)
    src.set(voltage=4.12)
    a = AnalogInput(machine.Pin(34), divider=2.0)
    assert a.read() == {"voltage": 4.12}
    # a meter says 4.20 V where we measure 4.12: one-point calibration scales
    a.calibrate(4.12, 4.20)
    assert a.read() == {"voltage": 4.2}
    # two points: gain and offset
    a.calibrate(3.0, 3.1, 4.0, 4.0)
    src.set(voltage=3.5)
    assert a.read() == {"voltage": 3.55}
    expect(ValueError, lambda: AnalogInput(machine.Pin(34), samples=0))


def test_adc_clips_at_attenuation_full_scale():
    src = simenv.adc_sources[33] = VoltageSource()
    src.set(voltage=5.0)
    assert machine.ADC(machine.Pin(33), atten=machine.ADC.ATTN_11DB).read_uv() == 3100000
    # clipped at 0.95 V: the driver does not pass that off as the voltage
    a = AnalogInput(machine.ADC(machine.Pin(33), atten=machine.ADC.ATTN_0DB))
    e = expect(NoReadingError, a.read)
    assert "full scale" in str(e), e
    src.set(voltage=0.9)
    assert a.read() == {"voltage": 0.9}


def test_debounced_input_ignores_bounces():
    d = DigitalInput(machine.Pin(27), pull="up", debounce_ms=20)
    assert d.read() == {"state": 1}
    for _ in range(5):  # contact bounce: 2 ms low, 2 ms high
        simenv.drive(27, 0)
        simenv.clock.advance(2)
        assert d.read() == {"state": 1}
        simenv.drive(27, 1)
        simenv.clock.advance(2)
        assert d.read() == {"state": 1}
    simenv.drive(27, 0)
    assert d.read() == {"state": 1}
    simenv.clock.advance(20)
    assert d.read() == {"state": 0}
    assert d.changes == 1
    inv = DigitalInput(machine.Pin(28), pull="up", invert=True)
    assert inv.read() == {"state": 0}


def test_pulse_counter_counts_with_debounce():
    p = PulseCounter(machine.Pin(26), debounce_ms=50, scale=0.2794)
    simenv.pulse(26, 10, low_ms=30, high_ms=70)
    assert p.read() == {"count": 10, "total": 2.794}, p.read()
    # a bouncing reed switch: three edges within 5 ms count once
    for _ in range(3):
        simenv.drive(26, 0)
        simenv.clock.advance(1)
        simenv.drive(26, 1)
        simenv.clock.advance(1)
    assert p.count() == 11
    p.reset()
    assert p.read()["count"] == 0


def tip(pin):
    simenv.drive(pin, 0)  # falling edge: one pulse
    simenv.clock.advance(100)
    simenv.drive(pin, 1)


def test_pulse_counter_counts_after_days_without_a_pulse():
    driver_ticks(sensors.digital)
    p = PulseCounter(machine.Pin(31), debounce_ms=50)
    counts = []
    for idle_days in (0, 3, 7, 10):  # a rain gauge in a dry spell, nobody reading in between
        simenv.clock.advance(idle_days * DAY_MS)
        tip(31)
        counts.append(p.read()["count"])
    assert counts == [1, 2, 3, 4], counts


def test_pulse_counter_read_hourly_counts_a_pulse_one_tick_period_later():
    driver_ticks(sensors.digital)
    p = PulseCounter(machine.Pin(32), debounce_ms=50)
    tip(32)  # at T; returns at T + 100 ms
    hours = 298
    for _ in range(hours):  # the node reads every hour
        simenv.clock.advance(3600000)
        assert p.read()["count"] == 1
    # the next pulse comes at T + 2^30 + 20 ms: 20 ms "after" the first in wrapped ticks
    simenv.clock.advance(TICKS_PERIOD + 20 - 100 - hours * 3600000)
    tip(32)
    assert p.count() == 2, p.count()


def test_debounced_input_settles_after_days_without_a_read():
    driver_ticks(sensors.digital)
    d = DigitalInput(machine.Pin(33), pull="up", debounce_ms=20)
    assert d.read() == {"state": 1}
    simenv.drive(33, 0)  # the door opens, then nobody looks for a week
    simenv.clock.advance(7 * DAY_MS)
    assert d.read() == {"state": 0}
    simenv.drive(33, 1)
    assert d.read() == {"state": 0}  # not yet steady for 20 ms
    simenv.clock.advance(TICKS_PERIOD - 10000)
    assert d.read() == {"state": 1}
    assert d.changes == 2


def test_1000_reads_keep_the_heap_flat():
    m, s = dht(16)
    a = AnalogInput(machine.Pin(34), divider=2.0)
    d = DigitalInput(machine.Pin(29))
    p = PulseCounter(machine.Pin(30))

    def step(i):  # nothing to start: DHT22 wants 2 s between reads; the counter gets edges
        simenv.clock.advance(2000)
        if x is p:
            simenv.drive(30, i & 1)

    for x in (s, a, d, p):
        grown = heap_growth(x, step=step)
        print(x.NAME, "heap growth after 1000 reads:", grown)
        assert grown < 512, (x.NAME, grown)
