#!/usr/bin/env python3
"""Benchmark of the whole node on the simulated board (prints figures, never passes or fails).

1. Heap: the node (lib/ compiled with mpy-cross, as deployed) running its loop for 10 000 cycles
   under `-X heapsize=64K` against a local mosquitto with the default scenario's sensors:
   heap after boot, high-water, and the allocated heap (after a collection) every 1 000 cycles,
   which must stay flat. The Unix port is 64-bit: halve heap figures for the 32-bit ESP32.
2. Deep sleep: five wake cycles of a battery node (broker up, then gone): simulated awake time
   per cycle against the configured cap, and real time per cycle on this machine.

    .venv/bin/python bench/bench_node.py [--cycles 10000] [--heap 64K]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("sim_run", REPO / "tools" / "sim" / "run.py")
RUN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RUN)

# Runs inside MicroPython on the simulated board, in the device directory.
DRIVER = r"""
import gc, sys, time
# The simulated board's own modules and device models live in this heap too (on an ESP32
# they are C code): load them first and count the node from there.
import machine, network, esp32, ntptime, onewire
machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21)).scan()
for _n in ("WDT", "RTC", "ADC", "Pin", "SoftI2C", "reset_cause", "unique_id", "deepsleep", "reset"):
    getattr(machine, _n)
machine.RTC().memory()
network.WLAN(network.STA_IF).active(True)
onewire.OneWire(machine.Pin(4)).scan()
machine.ADC(machine.Pin(35)).read_uv()
gc.collect()
base = gc.mem_alloc()
if len(sys.argv) > 2 and sys.argv[2] == "probe":
    print("BENCH " + repr({"sim_base": base}))
    sys.exit(0)
from node import startup
node, reason, problems = startup.build()
node.start()
node.board.wdt(60000)
gc.collect()
after_boot = gc.mem_alloc()
samples = []
low_free = gc.mem_free()
N = int(sys.argv[1])
t0 = time.ticks_ms()
for i in range(N):
    node.step()
    f = gc.mem_free()
    if f < low_free:
        low_free = f
    if i % 1000 == 999:
        gc.collect()
        samples.append(gc.mem_alloc())
    time.sleep_ms(2)
gc.collect()
total = gc.mem_alloc() + gc.mem_free()
print("BENCH " + repr({"imports_and_boot": after_boot - base, "sim_base": base,
       "samples": [x - base for x in samples], "high_water": total - low_free - base,
       "total": total,
       "published": node.published, "sim_ms": time.ticks_diff(time.ticks_ms(), t0),
       "loop_max_ms": node.loop_max_ms, "safe": node.safe_reason, "spool": node.spool.depth()}))
node.stop()
"""


def compile_lib(dst: Path) -> None:
    mpy_cross = REPO / ".venv" / "bin" / "mpy-cross"
    for src in (REPO / "lib").rglob("*.py"):
        out = dst / src.relative_to(REPO / "lib").with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(mpy_cross), "-o", str(out), str(src)], check=True)


def device(work: Path, cfg: dict, secrets: dict) -> Path:
    dev = work / "device"
    RUN.write_device(dev, "sim", cfg, secrets, None, None)
    shutil.rmtree(dev / "lib")
    compile_lib(dev / "lib")
    return dev


def _kb(heap: str) -> int:
    return int(heap[:-1]) * 1024 if heap[-1] in "kK" else int(heap)


def heap_bench(port: int, cycles: int, heap: str, work: Path) -> dict:
    scen_path = REPO / "tools" / "sim" / "scenarios" / "default.json"
    scenario = json.loads(scen_path.read_text())
    cfg, secrets = RUN.default_config("Bench/Heap", "127.0.0.1", port, scenario, 2)
    cfg["diag"] = {"interval": 30}
    if os.environ.get("BENCH_GOOD_AFTER"):
        cfg["safe_mode"] = {"good_after": int(os.environ["BENCH_GOOD_AFTER"])}
    dev = device(work / "heap", cfg, secrets)
    (dev / "bench_main.py").write_text(DRIVER)
    env = RUN.node_env(dev, work / "heap" / "state", scen_path, "sim", "20")
    mp = RUN.find_micropython()
    r = subprocess.run(
        [mp, "bench_main.py", "0", "probe"],
        cwd=dev,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise RuntimeError("probe failed:\n" + (r.stdout + r.stderr)[-3000:])
    sim_base = eval(line[-1][6:])["sim_base"]  # noqa: S307 - our own repr
    # The node gets `heap` on top of what the simulated board itself occupies.
    size = sim_base + _kb(heap)
    t0 = time.monotonic()
    r = subprocess.run(
        [mp, "-X", "heapsize=%d" % size, "bench_main.py", str(cycles)],
        cwd=dev,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    wall = time.monotonic() - t0
    line = [x for x in r.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise RuntimeError(
            "node bench failed (exit %d):\n%s" % (r.returncode, (r.stdout + r.stderr)[-3000:])
        )
    d = eval(line[-1][6:], {"None": None, "True": True, "False": False})  # noqa: S307 - our own repr
    d["wall_s"] = wall
    return d


def sleep_bench(port: int, work: Path, cycles: int = 5) -> list[dict]:
    """Deep-sleep cycles: the first three with the broker, the rest with the broker gone."""
    from tests.fixtures.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", port)
    scen_path = REPO / "tools" / "sim" / "scenarios" / "default.json"
    scenario = json.loads(scen_path.read_text())
    cap = 10
    cfg, secrets = RUN.default_config("Bench/Sleep", "127.0.0.1", proxy.port, scenario, 60)
    cfg["deep_sleep"] = {"enabled": True, "interval": 60, "awake_cap": cap}
    cfg["discovery"] = {"enabled": False}
    dev = device(work / "sleep", cfg, secrets)
    state = work / "sleep" / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = RUN.node_env(dev, state, scen_path, "sim", "5")
    out = []
    prev = None
    try:
        for i in range(cycles):
            if i == 3:
                proxy.mode("refuse")
            t0 = time.monotonic()
            r = subprocess.run(
                [RUN.find_micropython(), "main.py"],
                cwd=dev,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            wall = time.monotonic() - t0
            rec = json.loads((state / "boot.json").read_text())
            awake = None
            if prev is not None and rec.get("reason") == "deepsleep":
                # the sim records the wake-up time (sleep included) in epoch_us
                awake = (rec["epoch_us"] - rec["sleep_ms"] * 1000 - prev["epoch_us"]) / 1e6
            if os.environ.get("BENCH_DEBUG"):
                print(r.stdout[-2000:], r.stderr[-2000:])
            out.append(
                {
                    "cycle": i + 1,
                    "broker": i < 3,
                    "exit": r.returncode,
                    "awake_s": awake,
                    "cap_s": cap,
                    "real_s": round(wall, 2),
                }
            )
            prev = rec
    finally:
        proxy.close()
    return out


def report_heap(h: dict, args) -> None:
    print(
        "node heap, lib compiled (.mpy), %s for the node on top of the simulated board's own"
        " %d B, %d loop cycles (%.1f s simulated, %.1f s real):"
        % (args.heap, h["sim_base"], args.cycles, h["sim_ms"] / 1000, h["wall_s"])
    )
    print(
        "  node after imports + boot: %d B; node high-water %d B of %d B; published %d messages"
        % (h["imports_and_boot"], h["high_water"], _kb(args.heap), h["published"])
    )
    print("  allocated after gc every 1000 cycles: %s" % h["samples"])
    s = h["samples"]
    if len(s) >= 2:
        print("  drift first->last sample: %+d B (flat if small and not growing)" % (s[-1] - s[0]))
    print(
        "  loop step max %d ms (simulated); safe mode: %s; spool depth %d"
        % (h["loop_max_ms"], h["safe"], h["spool"])
    )
    print("  (64-bit Unix port: roughly halve these for the 32-bit ESP32)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument(
        "--heap", default="160K", help="heap for the node on top of the simulated board"
    )
    args = ap.parse_args()
    from tests.fixtures.broker import Broker, make_certs

    work = Path(tempfile.mkdtemp(prefix="bench-node-"))
    broker = Broker(work / "broker", make_certs(work / "certs"))
    broker.start()
    try:
        h = heap_bench(broker.port, args.cycles, args.heap, work) if args.cycles else None
        if h is not None:
            report_heap(h, args)
        print("deep-sleep cycles (awake cap %d s, 60 s interval, speed 5):" % 10)
        for c in sleep_bench(broker.port, work):
            print(
                "  cycle %(cycle)d broker=%(broker)s exit=%(exit)s awake=%(awake_s)s s"
                " (cap %(cap_s)s s) real=%(real_s)s s" % c
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
