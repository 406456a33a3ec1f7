# Datasheet worked examples as the truth for the drivers' decoding (no bus involved).
from sensors.bme280 import compensate_t, compensate_p
from sensors.crc import crc8_sensirion, crc8_maxim, CRCError
from sensors import NoReadingError
from sensors import ds18b20, dht22, bh1750, aht20, sht3x, sht4x

BMP_T = (27504, 26435, -1000)
BMP_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)


def test_bmp280_temperature_example_gives_25_08():
    # BMP280 datasheet section 3.12: adc_T = 519888 -> 25.08 degC, t_fine = 128422
    t, t_fine = compensate_t(519888, *BMP_T)
    assert t == 2508, t
    assert t_fine == 128422, t_fine


def test_bmp280_pressure_example_gives_100653_pa():
    # same section: adc_P = 415148 with t_fine 128422 -> 100653 Pa (100653.27 with doubles)
    _, t_fine = compensate_t(519888, *BMP_T)
    q = compensate_p(415148, t_fine, BMP_P)
    assert q // 256 == 100653, q
    assert abs(q / 256 - 100653.27) < 0.1, q / 256


def test_sensirion_crc_example_beef_is_92():
    # SHT3x datasheet 4.12 / SHT4x 4.4: CRC(0xBEEF) = 0x92
    assert crc8_sensirion(b"\xbe\xef") == 0x92
    assert crc8_sensirion(bytearray(b"\x00\xbe\xef\x00"), 1, 3) == 0x92


def test_maxim_crc_checks_a_rom_to_zero():
    # Maxim AN27 example ROM 02 1C B8 01 00 00 00 A2: CRC over all 8 bytes is 0
    assert crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00") == 0xA2
    assert crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00\xa2") == 0


def test_crc_error_is_a_value_error():
    assert issubclass(CRCError, ValueError)
    assert issubclass(NoReadingError, ValueError)


def test_ds18b20_0550_is_recognised_not_85():
    # DS18B20 table 1: 0x0550 = +85 degC is the power-on reset value
    try:
        t = ds18b20.decode(0x0550)
    except NoReadingError:
        return
    raise AssertionError("returned %r" % t)


def test_ds18b20_table_values():
    # DS18B20 table 1
    assert ds18b20.decode(0xFF5E) == -10.125
    assert ds18b20.decode(0x07D0) == 125.0
    assert ds18b20.decode(0x0191) == 25.0625
    assert ds18b20.decode(0x00A2) == 10.125
    assert ds18b20.decode(0x0008) == 0.5
    assert ds18b20.decode(0x0000) == 0.0
    assert ds18b20.decode(0xFFF8) == -0.5
    assert ds18b20.decode(0xFE6F) == -25.0625
    assert ds18b20.decode(0xFC90) == -55.0
    # 9-bit resolution: bits 2..0 undefined, masked
    assert ds18b20.decode(0x0197, 9) == 25.0


def test_dht22_examples():
    # AM2302 datasheet section 7: RH 0x0292 = 65.8 %RH, T 0x8065 = -10.1 degC
    f = bytearray((0x02, 0x92, 0x80, 0x65, 0))
    f[4] = (f[0] + f[1] + f[2] + f[3]) & 0xFF
    t, h = dht22.decode(f)
    assert h == 65.8, h
    assert t == -10.1, t
    f[4] ^= 1
    try:
        dht22.decode(f)
    except CRCError:
        return
    raise AssertionError("bad checksum accepted")


def test_bh1750_example():
    # BH1750FVI datasheet p.7: 0x8390 (1000_0011 1001_0000) -> 28067 lx (/1.2)
    assert abs(bh1750.lux(0x8390) - 28066.7) < 0.1
    # MTreg 138 (twice the default) halves the lx per count; H-resolution mode 2 halves again
    assert abs(bh1750.lux(0x8390, 138) - 14033.3) < 0.1
    assert abs(bh1750.lux(0x8390, 69, True) - 14033.3) < 0.1


def test_aht20_formula_examples():
    # AHT20 datasheet section 6: RH = Srh / 2^20 * 100 %, T = St / 2^20 * 200 - 50
    # Srh = 0x80000 -> 50 %RH; St = 0x60000 -> 25 degC; St = 0 -> -50, Srh = 0 -> 0 %RH
    b = bytearray((0x1C, 0x80, 0x00, 0x06, 0x00, 0x00, 0))
    d = aht20.decode(b)
    assert d["humidity"] == 50.0 and d["temperature"] == 25.0, d
    d = aht20.decode(bytearray(7))
    assert d["humidity"] == 0.0 and d["temperature"] == -50.0, d


def test_sht_formula_end_points():
    # SHT3x 4.13: T = -45 + 175 * St / 65535, RH = 100 * Srh / 65535; SHT4x 4.6: RH -6..119 cropped
    b = bytearray((0xFF, 0xFF, 0, 0xFF, 0xFF, 0))
    assert sht3x.decode(b) == {"temperature": 130.0, "humidity": 100.0}
    assert sht4x.decode(b) == {"temperature": 130.0, "humidity": 100.0}
    b = bytearray(6)
    assert sht3x.decode(b) == {"temperature": -45.0, "humidity": 0.0}
    assert sht4x.decode(b) == {"temperature": -45.0, "humidity": 0.0}
    b = bytearray((0x66, 0x66, 0, 0x80, 0x00, 0))  # 0x6666 -> 25.0 degC; SHT4x 0x8000 -> 56.5 %RH
    assert sht4x.decode(b)["temperature"] == 25.0
    assert sht4x.decode(b)["humidity"] == 56.5
