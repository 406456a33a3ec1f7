# DS18B20 driver over the firmware-style onewire module and the bit-level DS18B20 model.
from driver_util import expect, heap_growth  # first: skips under a 64K heap (see driver_util.py)

import time

import machine
import onewire
import simenv
from simdev.ds18b20 import DS18B20Model
from sensors import NoReadingError
from sensors.crc import CRCError
from sensors.ds18b20 import DS18B20, scan, start_all, rom_hex, rom_bytes

TIMEOUT = 60
simenv.clock.set_speed(0)
_pin = [20]


def bus(*temps):
    _pin[0] += 1  # a fresh 1-Wire pin per test
    w = simenv.ow_wires(_pin[0])
    models = []
    for t in temps:
        m = w.attach(DS18B20Model())
        m.set(temperature=t)
        models.append(m)
    return onewire.OneWire(machine.Pin(_pin[0])), models


def test_scan_finds_every_sensor_by_rom():
    ow, models = bus(1.0, 2.0, 3.0, 4.0, 5.0)
    roms = scan(ow)
    assert sorted(roms) == sorted(m.rom for m in models), [rom_hex(r) for r in roms]


def test_several_on_one_bus_each_reads_its_own():
    temps = (21.5, -10.125, 0.0625, 85.5, -55.0, 125.0)
    ow, models = bus(*temps)
    for m in models:
        s = DS18B20(ow, rom_hex(m.rom))
        assert s.read() == {"temperature": m.value("temperature")}


def test_start_all_then_read_each_without_waiting():
    ow, models = bus(20.0, 25.5)
    sensors = [DS18B20(ow, m.rom) for m in models]
    start_all(ow)
    simenv.clock.advance(750)
    t0 = time.ticks_ms()
    for s, m in zip(sensors, models):  # noqa: B905 (no strict= in MicroPython)
        s.mark_started()
        assert s.read()["temperature"] == m.value("temperature")
    assert time.ticks_diff(time.ticks_ms(), t0) < 10


def test_power_on_value_is_not_a_reading():
    ow, models = bus(85.0)
    s = DS18B20(ow)
    s.mark_started()  # read the scratchpad as it is after power-on: 0x0550
    e = expect(NoReadingError, s.read)
    assert "85" in str(e)
    # a real conversion of a real 85.0 degC would also read 0x0550: the driver never returns it
    expect(NoReadingError, s.read)
    models[0].set(temperature=21.0)
    assert s.read() == {"temperature": 21.0}
    models[0].fault = "reset85"
    expect(NoReadingError, s.read)


def test_resolution_sets_config_and_conversion_time():
    ow, models = bus(23.5678)
    for bits, ms, want in ((9, 94, 23.5), (10, 188, 23.5), (11, 375, 23.5), (12, 750, 23.5625)):
        s = DS18B20(ow, resolution=bits)
        assert s.conversion_ms == ms
        assert models[0].sp[4] == (0x1F | ((bits - 9) << 5))
        s.start()
        simenv.clock.advance(ms)
        assert s.read() == {"temperature": want}, (bits, s.read())


def test_crc_corruption_is_crc_error():
    ow, models = bus(10.0)
    s = DS18B20(ow)
    models[0].fault = "crc"
    expect(CRCError, s.read)


def test_absent_sensor_and_empty_bus():
    ow, models = bus(10.0)
    s = DS18B20(ow)
    models[0].fault = "absent"
    e = expect(OSError, s.read)
    assert "no DS18B20 " + rom_hex(models[0].rom) in e.args[0], e.args
    ow2, _ = bus()
    e = expect(OSError, lambda: DS18B20(ow2))
    assert e.args[0] == "no DS18B20 on the 1-Wire bus", e.args


def test_several_sensors_need_a_rom():
    ow, _ = bus(1.0, 2.0)
    e = expect(OSError, lambda: DS18B20(ow))
    assert "give the rom" in e.args[0]


def test_shorted_bus_is_not_zero_degrees():
    ow, models = bus(10.0)
    s = DS18B20(ow)
    models[0].fault = "bus_low"
    # blocking read: the line never shows "conversion done", and the scratchpad read to see
    # whether the sensor was reset is all zeros: a bus fault, not a temperature
    e = expect(OSError, s.read)
    assert "implausible" in str(e), e
    # split read: an all-zero scratchpad has a valid CRC, the config byte gives it away
    s.start()
    simenv.clock.advance(s.conversion_ms)
    expect(OSError, s.read)


def test_conversion_never_finishing_is_no_reading_not_stale():
    ow, models = bus(10.0)
    models[0].fault = "stuck"
    s = DS18B20(ow)
    expect(NoReadingError, s.read)  # the scratchpad still holds the power-on value
    models[0].fault = None
    assert s.read() == {"temperature": 10.0}
    models[0].set(temperature=30.0)
    models[0].fault = "stuck"
    e = expect(NoReadingError, s.read)  # the scratchpad holds 10.0: never returned as new
    assert "did not finish" in str(e), e


def test_after_a_conversion_that_did_not_finish_the_next_read_converts_again():
    ow, models = bus(20.0)
    s = DS18B20(ow)
    assert s.read() == {"temperature": 20.0}
    models[0].set(temperature=30.0)
    models[0].fault = "stuck"
    for _ in range(3):  # the scratchpad still holds 20.0: never returned as a new reading
        e = expect(NoReadingError, s.read)
        assert "did not finish" in str(e), e
    models[0].fault = None
    assert s.read() == {"temperature": 30.0}


def test_brownout_is_no_reading_and_the_resolution_is_restored():
    ow, models = bus(23.5678)
    m = models[0]
    s = DS18B20(ow, resolution=9)
    assert s.read() == {"temperature": 23.5}
    m.power_cycle()  # the config register is back to the EEPROM's 12 bits
    assert m.sp[4] == 0x7F
    e = expect(NoReadingError, s.read)  # a 12-bit conversion outlasts our 9-bit wait
    assert "reset" in str(e), e
    assert m.sp[4] == 0x1F
    m.set(temperature=-7.25)
    assert s.read() == {"temperature": -7.5}  # 9 bits: 0.5 degC steps, masked down
    # the split read (the node loop's): start, come back after conversion_ms
    m.power_cycle()
    m.set(temperature=40.0)
    s.start()
    simenv.clock.advance(s.conversion_ms)
    expect(NoReadingError, s.read)
    assert m.sp[4] == 0x1F
    s.start()
    simenv.clock.advance(s.conversion_ms)
    assert s.read() == {"temperature": 40.0}


def test_temperature_outside_the_measuring_range_is_no_reading():
    ow, models = bus(125.0)
    s = DS18B20(ow)
    assert s.read() == {"temperature": 125.0}
    for t in (125.0625, 150.0, -55.0625, -100.0):  # CRC-valid, but no DS18B20 measures it
        models[0].set(temperature=t)
        expect(NoReadingError, s.read)
    models[0].set(temperature=-55.0)
    assert s.read() == {"temperature": -55.0}


def test_blocking_read_returns_as_soon_as_the_conversion_is_done():
    ow, models = bus(15.0)
    s = DS18B20(ow, resolution=10)
    t0 = time.ticks_ms()
    assert s.read() == {"temperature": 15.0}
    waited = time.ticks_diff(time.ticks_ms(), t0)
    assert 188 <= waited < 200, waited  # 187.5 ms conversion, polled in 10 ms steps


def test_bad_rom_arguments():
    expect(ValueError, lambda: rom_bytes("10ff4a1b0316036c"))  # family 0x10 is a DS18S20
    expect(CRCError, lambda: rom_bytes("28ff4a1b0316036c"))
    expect(ValueError, lambda: rom_bytes("28ff"))
    assert rom_hex(rom_bytes("28ff4a1b031603f0")) == "28ff4a1b031603f0"


def test_takes_a_pin_and_wraps_it_in_onewire():
    ow, models = bus(12.5)
    s = DS18B20(machine.Pin(_pin[0]))
    assert s.read() == {"temperature": 12.5}


def test_1000_reads_keep_the_heap_flat():
    ow, models = bus(19.5, 20.5)
    grown = heap_growth(DS18B20(ow, models[1].rom))
    print("DS18B20 heap growth after 1000 reads:", grown)
    assert grown < 512, grown
