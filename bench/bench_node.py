#!/usr/bin/env python3
"""Benchmark of the whole node on the simulated board (prints figures, never passes or fails).

1. Heap: the node (lib/ compiled with mpy-cross, as deployed) running its loop for 10 000 cycles
   under `-X heapsize=64K` against a local mosquitto with the default scenario's sensors:
   heap after boot, high-water, and the allocated heap (after a collection) every 1 000 cycles,
   which must stay flat. The Unix port is 64-bit: these figures are not the device's; the
   device's come from the twin (`make bench-twin`, bench/bench_twin.py).
2. Deep sleep: a battery node, one process per wake: with the broker, through a day with the
   broker refusing connections, and back: simulated awake time per wake (median, worst, the
   day's average), the charge per wake and the days on 2xAA and an 18650 from the battery
   model in tools/nodectl/battery.py (the one `nodectl battery` uses), and whether every
   reading of the outage reached the broker's backlog topic with its measurement time.

    .venv/bin/python bench/bench_node.py [--cycles 10000] [--heap 64K] [--interval 300]
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

# Runs inside MicroPython on the simulated board, in the device directory: loads the simulated
# board and sets `base`, the heap taken before any node code (bench_heap_modules.py uses it too).
SIM_LOAD = r"""
import gc, json, sys, time
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
"""

DRIVER = (
    SIM_LOAD
    + r"""
if len(sys.argv) > 2 and sys.argv[2] == "probe":
    print("BENCH " + repr({"sim_base": base}))
    sys.exit(0)
from node import startup
# A run may end in a reset (set_config applies itself that way) and the bench boots it again:
# progress and samples live in bench_progress.json beside this file, as the board's flash would.
try:
    with open("bench_progress.json") as f:
        prog = json.load(f)
except OSError:
    prog = {"done": 0, "samples": [], "high_water": 0, "boots": 0}
prog["boots"] += 1
node, reason, problems = startup.build()
# as firmware/main.py does: start-up code runs once, its heap goes back before the loop
from node import cold
del startup
cold.unload("node.startup", "node.cfgfile")
node.start()
node.board.wdt(60000)
gc.collect()
after_boot = gc.mem_alloc()
if prog["boots"] == 1:
    prog["imports_and_boot"] = after_boot - base
low_free = gc.mem_free()
N = int(sys.argv[1])
STEP_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 2  # simulated time between loop cycles
t0 = time.ticks_ms()


def save():
    with open("bench_progress.json", "w") as f:
        json.dump(prog, f)


while prog["done"] < N:
    node.step()
    f = gc.mem_free()
    if f < low_free:
        low_free = f
    prog["done"] += 1
    if prog["done"] % 1000 == 0:
        gc.collect()
        total = gc.mem_alloc() + gc.mem_free()
        prog["samples"].append(gc.mem_alloc() - base)
        prog["high_water"] = max(prog["high_water"], total - low_free - base)
        save()
        print("CYCLE %d" % prog["done"])
    time.sleep_ms(STEP_MS)
gc.collect()
total = gc.mem_alloc() + gc.mem_free()
prog["high_water"] = max(prog["high_water"], total - low_free - base)
print("BENCH " + repr({"imports_and_boot": prog["imports_and_boot"], "sim_base": base,
       "samples": prog["samples"], "high_water": prog["high_water"],
       "total": total, "boots": prog["boots"],
       "published": node.published, "sim_ms": time.ticks_diff(time.ticks_ms(), t0),
       "loop_max_ms": node.loop_max_ms, "safe": node.safe_reason,
       "spool": node.delivery.pending()}))
node.stop()
"""
)


def compile_lib(dst: Path) -> None:
    mpy_cross = REPO / ".venv" / "bin" / "mpy-cross"
    for src in (REPO / "lib").rglob("*.py"):
        out = dst / src.relative_to(REPO / "lib").with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(mpy_cross), "-o", str(out), str(src)], check=True)


def device(work: Path, cfg: dict, secrets: dict, frozen: bool = False) -> Path:
    """The device filesystem with lib/ as .mpy, or without lib/'s code when it is frozen in."""
    dev = work / "device"
    RUN.write_device(dev, "sim", cfg, secrets, None, None)
    shutil.rmtree(dev / "lib")
    if not frozen:
        compile_lib(dev / "lib")
    return dev


def _kb(heap: str) -> int:
    return int(heap[:-1]) * 1024 if heap[-1] in "kK" else int(heap)


class Interp:
    """An interpreter to run the node with: the Unix port (the simulated board from source) or
    the device twin (the simulated board frozen in, and maybe lib/ too)."""

    def __init__(self, path: str | None = None, twin: bool = False, frozen: bool = False):
        self.path = path or RUN.find_micropython()
        self.twin = twin
        self.frozen = frozen

    def env(self, dev: Path, state: Path, scenario: Path, speed: str) -> dict:
        env = RUN.node_env(dev, state, scenario, "sim", speed)
        if self.twin:
            env["MICROPYPATH"] = os.pathsep.join([".frozen", str(dev / "lib"), str(dev)])
            env["SIM_ROOT"] = str(REPO)
        return env


def bench_config(port: int) -> tuple[dict, dict, Path]:
    scen_path = REPO / "tools" / "sim" / "scenarios" / "default.json"
    scenario = json.loads(scen_path.read_text())
    cfg, secrets = RUN.default_config("Bench/Heap", "127.0.0.1", port, scenario, 2)
    cfg["diag"] = {"interval": 30}
    if os.environ.get("BENCH_GOOD_AFTER"):
        cfg["safe_mode"] = {"good_after": int(os.environ["BENCH_GOOD_AFTER"])}
    return cfg, secrets, scen_path


def prepare(port: int, work: Path, interp: Interp) -> tuple[Path, dict, int]:
    """A device for the heap runs and the simulated board's own share of the heap (bytes)."""
    cfg, secrets, scen_path = bench_config(port)
    dev = device(work, cfg, secrets, frozen=interp.frozen)
    (dev / "bench_main.py").write_text(DRIVER)
    env = interp.env(dev, work / "state", scen_path, "20")
    r = subprocess.run(
        [interp.path, "bench_main.py", "0", "probe"],
        cwd=dev,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise RuntimeError("probe failed:\n" + (r.stdout + r.stderr)[-3000:])
    return dev, env, eval(line[-1][6:])["sim_base"]  # noqa: S307 - our own repr


class Events:
    """What happens to the node during a heap run, by cycle: two broker outages (refused,
    then a half-open link), a set_config (applied by a reset, confirmed after the reboot) and
    a Home Assistant restart (discovery re-announced). Driven through a fault proxy between
    the node and the broker and a paho client."""

    PLAN = {
        2000: "outage",
        3000: "restore",
        4000: "set_config",
        5000: "confirm",
        6000: "half_open",
        7000: "restore",
        8000: "ha_restart",
    }

    def __init__(self, port: int, base: str):
        from tests.fixtures.proxy import FaultProxy

        self.broker_port = port
        self.base = base
        self.proxy = FaultProxy("127.0.0.1", port)
        self.done: list[str] = []

    def at(self, cycle: int) -> None:
        what = self.PLAN.get(cycle)
        if what is None:
            return
        if what == "outage":
            self.proxy.mode("refuse", how="rst")
        elif what == "half_open":
            self.proxy.mode("blackhole", dir="both")
        elif what == "restore":
            self.proxy.mode("pass")
        elif what == "set_config":
            cmd = {"cmd": "set_config", "id": "bench", "config": {"interval": 3}}
            self._publish(self.base + "/cmd", json.dumps(cmd))
        elif what == "confirm":
            self._publish(self.base + "/cmd", json.dumps({"cmd": "confirm", "id": "bench"}))
        elif what == "ha_restart":
            self._publish("homeassistant/status", "online")
        self.done.append("%d:%s" % (cycle, what))

    def _publish(self, topic: str, payload: str) -> None:
        import paho.mqtt.publish as publish

        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=self.broker_port)

    def close(self) -> None:
        self.proxy.close()


def run_cycles(
    interp: Interp,
    dev: Path,
    env: dict,
    heap_bytes: int,
    cycles: int,
    events: Events | None = None,
    step_ms: int = 2,
) -> dict:
    """Runs the node for `cycles` loop cycles, `step_ms` of simulated time apart, in a heap of
    `heap_bytes`, booting it again after each reset. Returns the DRIVER's figures plus
    "wall_s", "memory_error" and "exit"."""
    prog = dev / "bench_progress.json"
    prog.unlink(missing_ok=True)
    t0 = time.monotonic()
    out: list[str] = []
    d = None
    for _boot in range(6):  # a set_config costs a reset or two; more means something is wrong
        proc = subprocess.Popen(
            [
                interp.path,
                "-X",
                "heapsize=%d" % heap_bytes,
                "bench_main.py",
                str(cycles),
                str(step_ms),
            ],
            cwd=dev,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("CYCLE ") and events is not None:
                events.at(int(line.split()[1]))
            elif line.startswith("BENCH "):
                d = eval(line[6:], {"None": None, "True": True, "False": False})  # noqa: S307
        rc = proc.wait(timeout=1200)
        if d is not None or rc != 76:  # 76: machine.reset(), boot again
            break
    text = "".join(out)
    if d is None:
        d = {"failed": "exit %s:\n%s" % (rc, text[-3000:])}
    d["exit"] = rc
    # the node says "too big to read in the memory available" where it catches a MemoryError
    d["memory_error"] = "MemoryError" in text or "in the memory available" in text
    d["wall_s"] = time.monotonic() - t0
    return d


def heap_bench(port: int, cycles: int, heap: str, work: Path) -> dict:
    interp = Interp()
    dev, env, sim_base = prepare(port, work / "heap", interp)
    # The node gets `heap` on top of what the simulated board itself occupies.
    d = run_cycles(interp, dev, env, sim_base + _kb(heap), cycles)
    if "failed" in d:
        raise RuntimeError("node bench failed " + d["failed"])
    return d


def _wake(dev: Path, env: dict, state: Path, prev: dict | None) -> tuple[dict, dict]:
    """One wake of the battery node: (its figures, its boot record)."""
    t0 = time.monotonic()
    r = subprocess.run(
        [RUN.find_micropython(), "main.py"],
        cwd=dev,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rec = json.loads((state / "boot.json").read_text())
    awake = None
    if prev is not None and rec.get("reason") == "deepsleep":
        # the sim records the wake-up time (sleep included) in epoch_us
        awake = (rec["epoch_us"] - rec["sleep_ms"] * 1000 - prev["epoch_us"]) / 1e6
    if os.environ.get("BENCH_DEBUG"):
        print(r.stdout[-2000:], r.stderr[-2000:])
    radio = "wifi: connecting" in r.stdout  # the node brought WiFi up on this wake
    w = {"exit": r.returncode, "awake_s": awake, "radio": radio, "real_s": time.monotonic() - t0}
    return w, rec


def sleep_bench(port: int, work: Path, interval: int = 300, cap: int = 10) -> dict:
    """A battery node on the simulated board, one process per wake: six wakes with the
    broker, a day of wakes with the broker refusing connections, then wakes with it back
    until the backlog is out (at most 5). A paho observer on the broker counts the backlog."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.control import Observer  # noqa: I001 - from tests/, put on the path above
    from tests.fixtures.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", port)
    scen_path = REPO / "tools" / "sim" / "scenarios" / "default.json"
    scenario = json.loads(scen_path.read_text())
    cfg, secrets = RUN.default_config("Bench/Sleep", "127.0.0.1", proxy.port, scenario, interval)
    cfg["deep_sleep"] = {"enabled": True, "interval": interval, "awake_cap": cap}
    cfg["discovery"] = {"enabled": False}
    # a day's readings must fit: about 90 B per reading and sensor (nodectl battery says so)
    cfg["spool"] = {"max_bytes": 262144}
    dev = device(work / "sleep", cfg, secrets)
    state = work / "sleep" / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = RUN.node_env(dev, state, scen_path, "sim", "5")
    obs = Observer(port, ["Bench/Sleep/backlog"], qos=1)
    phases: dict[str, list[dict]] = {"up": [], "down": [], "back": []}
    prev = None
    t0 = time.monotonic()
    try:
        for _ in range(6):
            w, prev = _wake(dev, env, state, prev)
            phases["up"].append(w)
        proxy.mode("refuse")
        for _ in range(86400 // interval):
            w, prev = _wake(dev, env, state, prev)
            phases["down"].append(w)
        proxy.mode("pass")
        expected = len(cfg["sensors"]) * len(phases["down"])
        for _ in range(5):
            w, prev = _wake(dev, env, state, prev)
            phases["back"].append(w)
            if len(obs.wait(expected, timeout=2)) >= expected:
                break
        got = obs.wait(expected, timeout=5)
    finally:
        obs.close()
        proxy.close()
    recs = [json.loads(m["payload"]) for m in got]
    timed = {(r.get("s"), r.get("t")) for r in recs if r.get("t") is not None}
    return {
        "interval": interval,
        "cap": cap,
        "sensors": len(cfg["sensors"]),
        "phases": phases,
        "expected": expected,
        "timed": len(timed),
        "untimed": sum(1 for r in recs if r.get("t") is None),
        "wall_s": time.monotonic() - t0,
    }


def _stats(ws: list[dict]) -> tuple[list[tuple[float, float]], float, float, float]:
    """[(awake_s, radio_s)], median, worst, mean of the wakes with a measured awake time."""
    pairs = [(w["awake_s"], w["awake_s"] if w["radio"] else 0.0) for w in ws if w["awake_s"]]
    a = sorted(p[0] for p in pairs)
    return pairs, a[len(a) // 2], a[-1], sum(a) / len(a)


def report_sleep(d: dict) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    from nodectl import battery  # the one battery model, shared with `nodectl battery`

    iv, ph = d["interval"], d["phases"]
    print(
        "deep-sleep wakes (sim, default scenario, a wake every %d s, awake cap %d s, speed 5,"
        " %.0f s real):" % (iv, d["cap"], d["wall_s"])
    )
    up, med, worst, _ = _stats(ph["up"][1:])  # the first is the power-on boot
    print(
        "  broker up: awake per wake median %.2f s, worst %.2f s (%d wakes; goal <= 1.65 s)"
        % (med, worst, len(up))
    )
    for chip in battery.CHIPS:
        for line in battery.battery_lines(chip, up, iv, indent="    "):
            print(line)
    down, med, worst, mean = _stats(ph["down"])
    tried = sum(1 for w in ph["down"] if w["radio"])
    print(
        "  broker down for a day: awake per wake average %.2f s (goal <= 2.0 s), median %.2f s,"
        " worst %.2f s; network tried on %d of %d wakes"
        % (mean, med, worst, tried, len(ph["down"]))
    )
    for chip in battery.CHIPS:
        for line in battery.battery_lines(chip, down, iv, indent="    "):
            print(line)
    back = ph["back"]
    secs = sum(w["awake_s"] or 0 for w in back)
    print(
        "  broker back: backlog of the outage (%d readings) out after %d wake(s), %.2f s awake"
        " in all (%s); on B/backlog with their time: %d of %d (lost %d), without a time: %d"
        % (
            d["expected"],
            len(back),
            secs,
            ", ".join("%.2f s" % (w["awake_s"] or 0) for w in back),
            d["timed"],
            d["expected"],
            d["expected"] - d["timed"],
            d["untimed"],
        )
    )


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
    print("  (64-bit Unix port, not the device: `make bench-twin` gives the ESP32's figures)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument(
        "--interval", type=int, default=300, help="deep-sleep interval of the battery runs, s"
    )
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
        report_sleep(sleep_bench(broker.port, work, args.interval))
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
